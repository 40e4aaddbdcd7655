from __future__ import annotations

import os

# LiteLLM fetches a price map from the internet at import time unless told not to (no network here).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from mediagate.sandbox.testing import SimulatorThread
from tests.s3server import MotoServer, moto_server_path
from tests.servers import GatewayThread, RedisServer, Scripted, ScriptedThread

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread() as s:
        yield s


@pytest.fixture()
def sim_clean(sim: SimulatorThread) -> Iterator[SimulatorThread]:
    sim.reset()
    yield sim
    sim.reset()


@pytest.fixture(scope="session")
def gateway(sim: SimulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    """The shipped specs, every provider on the simulators."""
    with GatewayThread(sim.base_url, tmp_path_factory.mktemp("gw")) as gw:
        yield gw


@pytest.fixture(scope="session")
def scripted_server() -> Iterator[Scripted]:
    with ScriptedThread() as s:
        yield s


@pytest.fixture()
def scripted(scripted_server: Scripted) -> Iterator[Scripted]:
    scripted_server.replies.clear()
    scripted_server.requests.clear()
    scripted_server.files.clear()
    yield scripted_server


@pytest.fixture(scope="session")
def scripted_gateway(scripted_server: Scripted, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    """The shipped specs, every provider pointed at the scripted upstream."""
    with GatewayThread(scripted_server.base_url, tmp_path_factory.mktemp("gws")) as gw:
        yield gw


def need_server(binary: str, why: str) -> None:
    """Locally a missing server skips with the reason; in CI (CI=true) nothing is skipped: it fails."""
    if shutil.which(binary) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{binary} is not installed; .ci/run installs it ({why})")
        pytest.skip(f"{binary} is not installed ({why}; .ci/run installs it)")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    need_server("redis-server", "Debian package redis-server")
    with RedisServer(tmp_path_factory.mktemp("redis")) as r:
        yield r


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """An S3-protocol server (moto's standalone server, from PyPI via the test extra) on loopback."""
    if moto_server_path() is None:
        if os.environ.get("CI"):
            pytest.fail("moto_server is not installed; pip install -e '.[test]' brings moto[server]")
        pytest.skip("moto_server is not installed (pip install -e '.[test]' brings moto[server])")
    with MotoServer() as server:
        yield server


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A real Redis, emptied for each test."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    redis_server.flush()
    yield redis_server.url


@pytest.fixture(autouse=True)
def _fresh_provider_health(request: pytest.FixtureRequest) -> None:
    """Provider cooldowns are per process; one test's injected failures must not reorder another's routes."""
    from mediagate.health import Health
    for name in ("gateway", "scripted_gateway", "twin", "job_gateway"):
        if name in request.fixturenames:
            request.getfixturevalue(name).runtime.health = Health()
