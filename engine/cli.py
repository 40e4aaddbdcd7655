"""`mediagate serve | validate | models | schema | explain` — the operator's commands."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import sys
from pathlib import Path
from typing import Any

from mediagate import catalog as catalog_mod
from mediagate import context, routing, upstream
from mediagate.config import Settings
from mediagate.errors import GatewayError

GIL_SWITCH_INTERVAL_S = 0.001   # how long a busy worker thread may keep the GIL while the event loop waits for it
                                # (Python's default is 5 ms; a /healthz answer needs several turns of the loop)


def _roots(paths: list[str] | None) -> list[Path | list[Path]]:
    """The shipped specs, MEDIAGATE_SPEC_DIRS, then the command line's roots (later ones override by id)."""
    return catalog_mod.default_spec_dirs(extra=[Path(p) for p in paths or []])


def _load(paths: list[str] | None) -> catalog_mod.Catalog:
    try:
        return catalog_mod.load(_roots(paths))
    except catalog_mod.SpecErrors as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in the specs", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_validate(args: argparse.Namespace) -> int:
    cat = _load(args.paths)
    print(f"ok: {len(cat.models)} models, {len(cat.providers)} providers, {len(cat.files)} files")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    cat = _load(args.specs)
    for m in sorted(cat.models.values(), key=lambda m: m.id):
        routes = ", ".join(f"{r.provider.id}:{r.upstream_model}" for r in m.routes)
        print(f"{m.id:28} {m.kind:6} {routes}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    cat = _load(args.specs)
    try:
        model, _ = cat.resolve(args.model)
    except GatewayError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(json.dumps(model.schemas(), indent=2))
    return 0


def explain(cat: catalog_mod.Catalog, model_name: str, body: dict[str, Any], operation: str | None = None) -> dict[str, Any]:
    """Per route, the exact upstream request(s) the engine would send, and every adjustment."""
    from mediagate import chat
    from mediagate.fanout import batches
    model, forced = cat.resolve(model_name)
    body = {"model": model_name, **body}
    op = operation or model.spec["operations"][0]
    if op not in model.validators:
        raise ValueError(f"model {model.id} has no {op!r} operation (it has {', '.join(model.validators)})")
    model.validators[op].validate(body)
    req = model.canonical(body, op)
    routes = []
    for route in routing.order(model, forced):
        target = upstream.Target(route.provider.base_url, {k: "<" + k + ">" for k in route.provider.secrets}, False)
        contexts = ([chat._ctx(model, route, body)] if op == "chat"
                    else [context.build(req, route, k) for k in batches(req.n, route.native_n)])
        calls = [upstream.render(route.provider, route.operation(op), ctx, target).redacted() for ctx in contexts]
        routes.append({"provider": route.provider.id, "upstream_model": route.model_for(op), "priority": route.priority,
                       "calls": len(calls), "request": calls[0], **({"batch_sizes": batches(req.n, route.native_n)} if len(calls) > 1 else {})})
    return {"model": model.id, "shape": req.shape.as_context(), "adjustments": list(req.adjustments), "routes": routes}


def cmd_explain(args: argparse.Namespace) -> int:
    cat = _load(args.specs)
    try:
        body = json.loads(args.request) if args.request else {}
        if not isinstance(body, dict):
            raise ValueError("the request must be a JSON object")
        print(json.dumps(explain(cat, args.model, body, args.operation), indent=2))
    except (ValueError, GatewayError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mediagate.app import create_app
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings.from_env()
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    cat = _load(args.specs)

    async def start_sandbox() -> tuple[Any, str]:
        from mediagate.sandbox.testing import start_in_loop
        return await start_in_loop(0, "127.0.0.1", 0)

    from mediagate import allocator
    allocator.tune()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    app = create_app(settings, cat, start_sandbox, _roots(args.specs))
    print(f"mediagate: {len(cat.models)} models, {len(cat.providers)} providers; "
          f"listening on http://{settings.host}:{settings.port}/v1", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    return 0


def version() -> str:
    try:
        return importlib.metadata.version("mediagate")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mediagate", description="OpenAI-compatible gateway for media generation models")
    parser.add_argument("--version", action="version", version=f"mediagate {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the gateway (providers without keys run on the built-in sandbox)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--specs", nargs="*", help="spec roots added on top of the shipped specs (a model or provider with a shipped id replaces it)")
    p.set_defaults(fn=cmd_serve)
    p = sub.add_parser("validate", help="lint every spec; exit 1 on any problem")
    p.add_argument("paths", nargs="*", help="spec roots to check on top of the shipped specs")
    p.set_defaults(fn=cmd_validate)
    p = sub.add_parser("models", help="list models and their routes")
    p.add_argument("--specs", nargs="*")
    p.set_defaults(fn=cmd_models)
    p = sub.add_parser("schema", help="print a model's compiled request schema(s)")
    p.add_argument("model")
    p.add_argument("--specs", nargs="*")
    p.set_defaults(fn=cmd_schema)
    p = sub.add_parser("explain", help="show the upstream request each route would get, and every adjustment")
    p.add_argument("model")
    p.add_argument("request", nargs="?", default="{}", help="the request body as JSON (model is filled in)")
    p.add_argument("--operation", choices=["generate", "edit", "chat", "video"], help="default: the model's first")
    p.add_argument("--specs", nargs="*")
    p.set_defaults(fn=cmd_explain)
    args = parser.parse_args(argv)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
