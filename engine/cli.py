"""`mediagate serve | validate | models | schema | explain` — the operator's commands."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

from mediagate import catalog as catalog_mod
from mediagate import lifecycle
from mediagate.explain import DEFAULT_PLACEHOLDER, explain
from mediagate.config import Settings
from mediagate.errors import GatewayError
from mediagate.paths import PathError
from mediagate.templates import TemplateError

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
        alive = lifecycle.serving(m, m.routes)
        routes = ", ".join(f"{r.provider.id}:{r.upstream_model}" + ("" if r in alive else " (retired there)") for r in m.routes)
        life = lifecycle.of_model(m)
        note = ""
        if life.get("status") in ("deprecated", "retired"):
            note = "  [" + "; ".join([life["status"]] + [f"{k} {life[k]}" for k in ("shutdown", "replacement") if life.get(k)]) + "]"
        print(f"{m.id:28} {m.kind:6} {routes}{note}")
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


def cmd_explain(args: argparse.Namespace) -> int:
    cat = _load(args.specs)
    try:
        body = json.loads(args.request) if args.request else {}
        if not isinstance(body, dict):
            raise ValueError("the request must be a JSON object")
        print(json.dumps(explain(cat, args.model, body, args.operation, args.image, args.mask), indent=2))
    except (TemplateError, PathError) as exc:  # a spec problem: where it is, never a traceback
        print(f"{getattr(exc, 'file', '?')}: {exc.path}: {exc.message}", file=sys.stderr)
        return 1
    except (ValueError, GatewayError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    return 0


SANDBOX_URL_ENV = "MEDIAGATE_SANDBOX_URL"   # simulators already running elsewhere: use them, start none
WORKERS_ENV = "MEDIAGATE_WORKERS"


def _log_setup() -> None:
    from mediagate import logs
    logs.setup()


def _external_sandbox(url: str) -> Callable[[], Awaitable[tuple[Any, str]]]:
    """A sandbox starter that starts nothing: the simulators run elsewhere, at `url` (no handle to clean up)."""
    async def starter() -> tuple[Any, str]:
        return None, url
    return starter


def worker_app() -> Any:
    """The app factory each `serve --workers N` process calls: settings, specs and the sandbox URL all come
    from the environment the supervisor prepared, so every worker serves the same gateway on the same state."""
    from mediagate.app import create_app
    _log_setup()
    roots = catalog_mod.default_spec_dirs()
    url = os.environ.get(SANDBOX_URL_ENV)
    return create_app(Settings.from_env(), catalog_mod.load(roots), _external_sandbox(url) if url else None, roots)


def _exit_on_sigterm() -> None:
    """SIGTERM ends `serve` with status 0 once uvicorn has shut down gracefully (uvicorn re-raises the signal
    after its shutdown; without a handler the process would then die of it)."""
    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mediagate import logs
    from mediagate.app import create_app, sandbox_notice
    from mediagate.httpserver import UVICORN_OPTIONS
    _log_setup()
    settings = Settings.from_env()
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    raw = str(args.workers) if args.workers is not None else os.environ.get(WORKERS_ENV, "1")
    workers = int(raw) if raw.strip().isdigit() else 0
    if workers < 1:
        print(f"error: --workers / {WORKERS_ENV} must be a whole number of at least 1, not {raw!r}", file=sys.stderr)
        return 2
    cat = _load(args.specs)   # validated once here: a broken spec stops `serve` before any worker starts
    listening = (f"mediagate: {len(cat.models)} models, {len(cat.providers)} providers; "
                 f"listening on http://{settings.host}:{settings.port}/v1; web console at "
                 f"http://{settings.host}:{settings.port}/console/")
    _exit_on_sigterm()
    try:
        if workers > 1:
            _serve_workers(args, settings, cat, workers, listening)
            return 0
        url = os.environ.get(SANDBOX_URL_ENV)
        if url and settings.sandbox != "off":
            logging.getLogger("mediagate").warning("%s", sandbox_notice(settings, cat, url))
            starter = _external_sandbox(url)
        else:
            async def starter() -> tuple[Any, str]:
                from mediagate.sandbox.testing import start_in_loop
                return await start_in_loop(0, "127.0.0.1", 0)

        from mediagate import allocator
        allocator.tune()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        app = create_app(settings, cat, starter, _roots(args.specs))
        logs.say(listening + " (1 worker)")
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False,
                    log_config=logs.config(), **UVICORN_OPTIONS)
    finally:
        logs.say("mediagate: stopped")
    return 0


def _serve_workers(args: argparse.Namespace, settings: Settings, cat: catalog_mod.Catalog, workers: int,
                   listening: str) -> None:
    """N uvicorn worker processes on one socket. What must be one thing for all of them is settled here, once,
    and handed down through the environment the workers inherit: the simulators (started in this process),
    the media signing key, the webhook secret, the state directory and the spec roots."""
    import shutil

    import uvicorn

    from mediagate import logs
    from mediagate.app import _stored_secret, sandbox_notice
    from mediagate.httpserver import UVICORN_OPTIONS
    from mediagate.metrics import MULTIPROC_ENV
    from mediagate.sandbox.testing import SimulatorThread
    env = os.environ
    env["MEDIAGATE_HOST"], env["MEDIAGATE_PORT"] = settings.host, str(settings.port)
    env["MEDIAGATE_STATE_DIR"] = str(settings.state_dir.resolve())
    env["MEDIAGATE_MEDIA_DIR"] = str(settings.media_dir.resolve())
    if args.specs:   # after MEDIAGATE_SPEC_DIRS, as default_spec_dirs(extra=...) orders them
        env["MEDIAGATE_SPEC_DIRS"] = os.pathsep.join([p for p in env.get("MEDIAGATE_SPEC_DIRS", "").split(os.pathsep) if p]
                                                     + [str(Path(p).resolve()) for p in args.specs])
    # the media signing key: MEDIAGATE_SIGNING_KEY, else the one kept in the state directory, which every
    # worker reads (made race-free by whichever starts first), so a URL minted by one verifies in every other
    if not settings.webhook_secret:   # made here, before N workers would race to create it
        env["MEDIAGATE_WEBHOOK_SECRET"] = _stored_secret(settings.state_dir / "webhook_secret")
    sim: SimulatorThread | None = None
    if settings.sandbox != "off":
        url = env.get(SANDBOX_URL_ENV)
        if not url:
            sim = SimulatorThread().start()
            url = env[SANDBOX_URL_ENV] = sim.base_url
        logging.getLogger("mediagate").warning("%s", sandbox_notice(settings, cat, url))
    # one /metrics for all workers: prometheus_client's multiprocess mode, its files under the state directory,
    # emptied at each start (counters restart with the server, as they do with one process)
    if not env.get(MULTIPROC_ENV):
        metrics_dir = settings.state_dir.resolve() / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env[MULTIPROC_ENV] = str(metrics_dir)
    logs.say(f"{listening} ({workers} workers)")
    try:
        uvicorn.run("mediagate.cli:worker_app", factory=True, workers=workers, host=settings.host, port=settings.port,
                    log_level="info", access_log=False, log_config=logs.config(), **UVICORN_OPTIONS)
    finally:
        if sim is not None:
            sim.stop()


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
    p.add_argument("--workers", type=int, help=f"worker processes on the one port (default: ${WORKERS_ENV} or 1); "
                   "the sandbox runs once, in the supervising process")
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
    p.add_argument("--image", action="append", metavar="WxH",
                   help=f"a placeholder input image of this size (repeat for several; an edit defaults to one {DEFAULT_PLACEHOLDER})")
    p.add_argument("--mask", action="store_true", help="add a placeholder mask the size of the first image")
    p.add_argument("--specs", nargs="*")
    p.set_defaults(fn=cmd_explain)
    from mediagate import keys_cli
    keys_cli.add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
