"""Secrets the gateway makes for itself (media signing key, webhook secret) when the operator sets none:
made once, kept 0600 in the state directory, identical for every process that starts at once."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


def stored_secret(path: Path, make: Callable[[], str] = lambda: secrets.token_hex(32)) -> str:
    """The secret in `path`, made with `make` if there is none yet.

    Written whole to a private temp file and then hard-linked into place: the link fails with
    FileExistsError when another process won, and a reader never sees a half-written file.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(make())
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
