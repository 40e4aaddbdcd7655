"""``python -m mediagate.sandbox``: run the provider simulators standalone."""

from __future__ import annotations

import argparse

from aiohttp import web

from . import tls
from .app import build_app
from .state import DEFAULT_CHUNK_MS, DEFAULT_JOB_MS, DEFAULT_VIDEO_JOB_MS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mediagate.sandbox", description="mediagate provider simulators")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="base latency added to every request")
    parser.add_argument("--job-ms", type=float, default=DEFAULT_JOB_MS,
                        help="how long each fal request / Replicate prediction runs")
    parser.add_argument("--video-job-ms", type=float, default=DEFAULT_VIDEO_JOB_MS,
                        help="how long each video job (Sora, Veo, fal/Replicate video apps) runs")
    parser.add_argument("--chunk-ms", type=float, default=DEFAULT_CHUNK_MS,
                        help="delay between streamed chat completion chunks")
    parser.add_argument("--tls", action="store_true", help="serve https:// with a throwaway self-signed certificate")
    args = parser.parse_args(argv)
    root = f"{'https' if args.tls else 'http'}://{args.host}:{args.port}"
    print(f"sandbox: OpenAI at {root}/openai/v1, Gemini at {root}/gemini (OpenAI-compatible chat at "
          f"{root}/gemini/v1beta/openai), fal at {root}/fal/queue (and /fal/run), Replicate at {root}/replicate, "
          f"Vertex AI at {root}/vertex (token endpoint {root}/vertex/oauth2/token), OpenRouter at "
          f"{root}/openrouter/api/v1, AUTOMATIC1111 at {root}/a1111, control at {root}/__control__", flush=True)
    if args.tls:
        print(f"sandbox: trust {tls.ca_file()} to verify its certificate", flush=True)
    web.run_app(build_app(args.latency_ms, args.job_ms, args.video_job_ms, args.chunk_ms), host=args.host,
                port=args.port, print=None,
                ssl_context=tls.server_context() if args.tls else None)


if __name__ == "__main__":
    main()
