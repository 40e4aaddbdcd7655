"""`mediagate keys create | list | show | revoke | rotate` against the configured store (the state
directory's SQLite, or Redis at MEDIAGATE_REDIS_URL): the same keys the running gateways check."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, Awaitable, Callable

from mediagate import keys
from mediagate.config import Settings
from mediagate.jobstore import StoreUnavailable
from mediagate.keys import KeyRing


def add_parser(sub: Any) -> None:
    p = sub.add_parser("keys", help="create, list, show, revoke and rotate gateway keys")
    ks = p.add_subparsers(dest="keys_command", required=True)
    c = ks.add_parser("create", help="make a key; its secret is printed once, alone on the last line")
    c.add_argument("name")
    c.add_argument("--team", help="the team that owns what the key creates (default: 'default')")
    c.add_argument("--models", nargs="+", metavar="GLOB", help="models the key may use (fnmatch globs on model ids)")
    c.add_argument("--endpoints", nargs="+", metavar="GLOB", help="endpoints the key may call, e.g. images.* videos.create")
    c.add_argument("--rpm", type=int, help="requests per minute")
    c.add_argument("--images-per-min", type=int, help="images per minute (a request counts its n)")
    c.add_argument("--video-seconds-per-min", type=int, help="seconds of video asked for per minute")
    c.add_argument("--max-concurrent-jobs", type=int, help="video jobs queued or running at once")
    c.add_argument("--budget", type=float, metavar="USD", help="spend allowed per budget period")
    c.add_argument("--budget-period", choices=keys.PERIODS, help="day or month (UTC; default month)")
    c.add_argument("--expires", metavar="ISO8601", help="when the key stops working (UTC unless a zone is given)")
    c.add_argument("--store-payloads", action="store_true",
                   help="keep this key's prompts and outputs in the request history (GET /v1/requests/{id})")
    c.add_argument("--json", action="store_true", help="print the key as JSON before the secret")
    c.set_defaults(fn=cmd_create)
    lst = ks.add_parser("list", help="every key: id, name, team, prefix, state")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(fn=cmd_list)
    for name, fn, text in (("show", cmd_show, "one key as JSON"), ("revoke", cmd_revoke, "stop a key at once"),
                           ("rotate", cmd_rotate, "a new secret for the key (printed once); the old one stops working")):
        q = ks.add_parser(name, help=text)
        q.add_argument("key", help="the key's id or name")
        q.set_defaults(fn=fn)


def _with_ring(work: Callable[[KeyRing], Awaitable[int]]) -> int:
    from mediagate.stores import open_stores
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"mediagate keys: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        stores = open_stores(settings)
        try:
            return await work(stores.keys)
        except StoreUnavailable as exc:
            print(f"mediagate keys: {exc} is unavailable", file=sys.stderr)
            return 1
        finally:
            await stores.close()
    return asyncio.run(run())


def _state(doc: dict[str, Any]) -> str:
    if doc.get("revoked_at") is not None:
        return "revoked"
    return "active" if keys.usable(doc, time.time()) else "expired"


def cmd_create(args: argparse.Namespace) -> int:
    async def work(ring: KeyRing) -> int:
        try:
            doc, secret = await ring.create(
                name=args.name, team=args.team, models=args.models, endpoints=args.endpoints, rpm=args.rpm,
                images_per_min=args.images_per_min, video_seconds_per_min=args.video_seconds_per_min,
                max_concurrent_jobs=args.max_concurrent_jobs, budget=args.budget, budget_period=args.budget_period,
                expires=args.expires, store_payloads=args.store_payloads)
        except ValueError as exc:
            print(f"mediagate keys create: {exc}", file=sys.stderr)
            return 2
        except keys.KeyExists:
            print(f"mediagate keys create: a key named '{args.name}' exists already", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(keys.public(doc)))
        else:
            print(f"created {doc['id']} '{doc['name']}' (team {doc['team']}); the secret is shown once:")
        print(secret)
        return 0
    return _with_ring(work)


def cmd_list(args: argparse.Namespace) -> int:
    async def work(ring: KeyRing) -> int:
        docs = await ring.store.all()
        if args.json:
            print(json.dumps([keys.public(d) for d in docs]))
            return 0
        for d in docs:
            print(f"{d['id']:20} {d['name'][:24]:24} {d['team'][:16]:16} {d['prefix']}…  {_state(d)}")
        return 0
    return _with_ring(work)


def _one(args: argparse.Namespace, act: Callable[[KeyRing, str], Awaitable[Any]]) -> int:
    async def work(ring: KeyRing) -> int:
        got = await act(ring, args.key)
        if got is None:
            print(f"mediagate keys: no key with id or name '{args.key}'", file=sys.stderr)
            return 1
        doc, secret = got if isinstance(got, tuple) else (got, None)
        print(json.dumps({**keys.public(doc), "state": _state(doc)}, indent=2))
        if secret is not None:
            print(secret)
        return 0
    return _with_ring(work)


def cmd_show(args: argparse.Namespace) -> int:
    return _one(args, lambda ring, ref: ring.store.get(ref))


def cmd_revoke(args: argparse.Namespace) -> int:
    return _one(args, lambda ring, ref: ring.revoke(ref))


def cmd_rotate(args: argparse.Namespace) -> int:
    return _one(args, lambda ring, ref: ring.rotate(ref))
