"""Portkey's open-source AI gateway, the second peer: installed from npm into bench/.portkey by the bench itself.

The package (``@portkey-ai/gateway``, Node.js, MIT) ships one bundled server, ``build/start-server.js``, which
takes ``--port=P``. It has no configuration file for this use: each request names its provider in headers, here
``x-portkey-provider: openai`` with ``x-portkey-custom-host: <simulator>/openai/v1`` (the OpenAI-compatible
endpoint the other systems call) and the upstream key as the bearer token, which Portkey forwards. The open-source
gateway has no key of its own, so unlike mediagate and LiteLLM it authenticates nobody.
Source: github.com/Portkey-AI/gateway README ("npx @portkey-ai/gateway"; headers x-portkey-provider,
x-portkey-custom-host); build/start-server.js of 1.15.2 (--port=, --headless, GET / health answer,
localhost and 127.0.0.1 are trusted custom hosts unless TRUSTED_CUSTOM_HOSTS says otherwise)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Callable

PORTKEY_VERSION = "1.15.2"   # pinned: the version; a bump is a deliberate, measured change
PACKAGE = "@portkey-ai/gateway"
DIR = Path(__file__).resolve().parent / ".portkey"
PKG_DIR = DIR / "node_modules" / "@portkey-ai" / "gateway"
START = PKG_DIR / "build" / "start-server.js"
NPM_TIMEOUT_S = 600


def installed_version() -> str | None:
    try:
        return json.loads((PKG_DIR / "package.json").read_text()).get("version")
    except (OSError, ValueError):
        return None


def ensure(log: Callable[[str], None] = print) -> str:
    """Install ``@portkey-ai/gateway@PORTKEY_VERSION`` into bench/.portkey unless already there; the version.

    ``--ignore-scripts``: the package's only install script is ``patch-package``, and it ships no patches."""
    if installed_version() == PORTKEY_VERSION and START.exists():
        return PORTKEY_VERSION
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed to run Portkey's gateway (Node.js 18 or newer)")
    log(f"installing {PACKAGE}@{PORTKEY_VERSION} into {DIR} (first run only)")
    DIR.mkdir(exist_ok=True)
    proc = subprocess.run([npm, "install", "--prefix", str(DIR), "--no-audit", "--no-fund", "--ignore-scripts",
                           "--loglevel=error", f"{PACKAGE}@{PORTKEY_VERSION}"],
                          capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError("npm install failed:\n" + "\n".join((proc.stderr + proc.stdout).splitlines()[-15:]))
    have = installed_version()
    if have != PORTKEY_VERSION or not START.exists():
        raise RuntimeError(f"installed {PACKAGE} is {have!r} (expected {PORTKEY_VERSION}); {START} "
                           f"{'exists' if START.exists() else 'is missing'}")
    return have


def node_version() -> str | None:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def argv(port: int) -> list[str]:
    """One Node process. ``--headless``: no request-log web UI (the console's log stream), as in production."""
    return ["node", str(START), f"--port={port}", "--headless"]


def env(base_env: dict[str, str]) -> dict[str, str]:
    return {**base_env, "NODE_ENV": "production", "NO_PROXY": "*", "no_proxy": "*"}


def headers(openai_base: str, upstream_key: str) -> dict[str, str]:
    """What every request to Portkey carries: the provider, where it lives, and the upstream's key."""
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": openai_base,
            "Authorization": f"Bearer {upstream_key}"}
