"""``python -m sandbox``: run the provider simulators standalone."""

from __future__ import annotations

import argparse

from aiohttp import web

from .app import build_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="mediagate provider simulators")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="base latency added to every request")
    args = parser.parse_args(argv)
    print(f"sandbox: OpenAI at http://{args.host}:{args.port}/openai/v1, Gemini at http://{args.host}:{args.port}"
          f"/gemini, control at http://{args.host}:{args.port}/__control__", flush=True)
    web.run_app(build_app(args.latency_ms), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
