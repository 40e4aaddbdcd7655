"""LiteLLM's proxy, the peer gateway: its own pinned venv (bench/.venv-litellm) and its config.

The config follows the proxy shape of shared/reference/seeds/000 (``model_list`` entries with
``openai/<model>``, ``api_key`` from the environment, ``api_base``), pointed at the same simulator the
other systems use. The proxy refuses to start without a master key (1.106: ``UnsafeMasterKeyError``),
so it gets one, and mediagate is given the same key as its gateway key so both authenticate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

# Pinned. litellm 1.108.x and 1.110.x (the newest at the time of writing) cannot be installed with the
# [proxy] extra from the package index this machine reaches: their extra pins litellm-proxy==<version> /
# litellm-proxy-extras==0.4.1xx.postN, which that index does not have. 1.106.12 resolves and starts offline.
LITELLM_VERSION = "1.106.12"
MODELS = ("bench-image",)   # bench/specs/bench-image.yaml: the simulator serves it as a generic OpenAI-compatible server

# LiteLLM's openai provider picks the image parameters it lets through by model name, and takes an unknown name
# for gpt-image, which has no response_format (1.106.12: litellm/llms/openai/image_generation/__init__.py), so it
# refused `response_format` for bench-image with UnsupportedParamsError. base_model names the parameter set to
# use instead (images/main.py reads it); dall-e-2's is n, response_format, quality, size, user. The body sent
# upstream keeps model bench-image.
BASE_MODEL = "dall-e-2"

VENV = Path(__file__).resolve().parent / ".venv-litellm"


def venv_python() -> Path:
    return VENV / "bin" / "python"


def installed_version() -> str | None:
    if not venv_python().exists():
        return None
    try:
        out = subprocess.run([str(venv_python()), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def ensure(log: Callable[[str], None] = print) -> str:
    """Create the venv and install ``litellm[proxy]==LITELLM_VERSION`` unless already there; returns the version."""
    have = installed_version()
    if have == LITELLM_VERSION and (VENV / "bin" / "litellm").exists():
        return have
    log(f"installing litellm[proxy]=={LITELLM_VERSION} into {VENV} (first run only; takes a minute or more)")
    if not venv_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    proc = subprocess.run([str(venv_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           f"litellm[proxy]=={LITELLM_VERSION}"], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "WARNING: Location" not in ln]
        raise RuntimeError("pip install failed:\n" + "\n".join(lines[-15:]))
    have = installed_version()
    if have != LITELLM_VERSION:
        raise RuntimeError(f"installed litellm version is {have!r}, expected {LITELLM_VERSION}")
    return have


def package_versions(names: tuple[str, ...] = ("litellm", "uvicorn", "uvloop", "httptools", "fastapi", "openai",
                                               "httpx", "aiohttp")) -> dict[str, str | None]:
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            f"for n in {list(names)!r}:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = None\n"
            "print(json.dumps(out))")
    out = subprocess.run([str(venv_python()), "-c", code], capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def config_text(openai_base: str) -> str:
    """The proxy config: one ``openai/<model>`` entry per model, all against the simulator."""
    lines = ["model_list:"]
    for model in MODELS:
        lines += [f"  - model_name: {model}",
                  "    litellm_params:",
                  f"      model: openai/{model}",
                  "      api_key: os.environ/BENCH_UPSTREAM_KEY",
                  f"      api_base: {openai_base}",
                  f"      base_model: {BASE_MODEL}"]
    return "\n".join(lines) + "\n"


def env(base_env: dict[str, str], master_key: str) -> dict[str, str]:
    """Offline and quiet: no telemetry, the bundled model cost map instead of fetching it, error-level logs
    (LiteLLM's production advice; also turns uvicorn's per-request access log off)."""
    return {**base_env,
            "LITELLM_MASTER_KEY": master_key,
            "BENCH_UPSTREAM_KEY": "bench",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "NO_PROXY": "*", "no_proxy": "*"}
