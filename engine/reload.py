"""Spec hot reload: poll the spec files' fingerprints; swap in a new catalog only when it loads cleanly.

A broken edit is refused with one log line per problem and the last good catalog keeps serving.
Polling (not inotify) keeps this dependency-free and works on every filesystem; a few dozen stat calls
a second cost nothing. A reload reparses and recompiles only the files that changed and what depends on
them (catalog.LoadCache), so an edit is served within a few hundred milliseconds of the poll that sees it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable, Iterable

from mediagate import catalog

log = logging.getLogger("mediagate")
RELOAD_INTERVAL_S = 1.0

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(paths: Iterable[Path] | None) -> Fingerprint:
    models, providers = catalog.spec_files(list(paths) if paths is not None else catalog.default_spec_dirs())
    out = []
    for f in sorted(models + providers):
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


async def watch(paths: list[Path] | None, apply: Callable[[catalog.Catalog], None],
                interval_s: float = RELOAD_INTERVAL_S) -> None:
    last = await asyncio.to_thread(fingerprint, paths)
    cache = catalog.LoadCache()
    try:  # prime the cache off the event loop, so the first edit is already an incremental reload
        await asyncio.to_thread(catalog.load, paths, None, cache)
    except Exception:  # noqa: BLE001  a broken spec on disk is reported when it is next reloaded
        pass
    while True:
        await asyncio.sleep(interval_s)
        current = await asyncio.to_thread(fingerprint, paths)
        if current == last:
            continue
        last = current
        try:
            fresh = await asyncio.to_thread(catalog.load, paths, None, cache)
        except catalog.SpecErrors as exc:
            for line in exc.problems:
                log.error("spec reload refused, the last good specs keep serving: %s", line)
            continue
        except Exception:  # a reload must never take the serving catalog down
            log.exception("spec reload failed, the last good specs keep serving")
            continue
        apply(fresh)
        log.warning("specs reloaded: %d models, %d providers", len(fresh.models), len(fresh.providers))
