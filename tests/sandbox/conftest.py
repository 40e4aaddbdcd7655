"""Fixtures for the simulator tests: one real simulator on loopback, reset before each test."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import fal_client
import fal_client.client
import httpx
import openai
import pytest
import replicate
from google import genai
from google.genai import types
from PIL import Image

from mediagate.sandbox.testing import SimulatorThread


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimulatorThread]:
    with SimulatorThread() as sim:
        yield sim


@pytest.fixture
def sim(sim_server: SimulatorThread) -> SimulatorThread:
    """The shared simulator with no queued faults, no latency and an empty request log."""
    sim_server.reset()
    return sim_server


@pytest.fixture(scope="session")
def tls_sim_server() -> Iterator[SimulatorThread]:
    """A second simulator serving https:// (replicate-python only wraps https URLs in FileOutput)."""
    with SimulatorThread(tls=True) as sim:
        yield sim


@pytest.fixture
def tls_sim(tls_sim_server: SimulatorThread) -> SimulatorThread:
    tls_sim_server.reset()
    return tls_sim_server


@pytest.fixture
def fal(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> Iterator[fal_client.SyncClient]:
    """fal-client pointed at the simulator.

    fal-client builds every submit/run URL as ``f"https://{FAL_QUEUE_RUN_HOST}/" + app_id``
    (fal_client/client.py ``QUEUE_URL_FORMAT``/``RUN_URL_FORMAT``, computed at import from
    the ``FAL_QUEUE_RUN_HOST``/``FAL_RUN_HOST`` env vars, scheme fixed to https), so an
    http:// simulator needs those two module constants patched. Status/result/cancel
    then follow the URLs the simulator returns.
    """
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", sim.base_url + "/fal/queue/")
    monkeypatch.setattr(fal_client.client, "RUN_URL_FORMAT", sim.base_url + "/fal/run/")
    client = fal_client.SyncClient(key="sim-key-id:sim-key-secret")
    yield client
    if "_client" in client.__dict__:
        client._client.close()


@pytest.fixture
def rep(tls_sim: SimulatorThread) -> Iterator[replicate.Client]:
    """replicate-python on the https simulator; ``transport`` carries the trust (its own
    transport replaces httpx's default one, so ``verify=`` alone would be ignored)."""
    transport = httpx.HTTPTransport(verify=tls_sim.client_ssl_context)
    client = replicate.Client(api_token="r8_sandbox", base_url=tls_sim.base_url + "/replicate", transport=transport)
    client.poll_interval = 0.05
    yield client
    client._client.close()


@pytest.fixture
def oai(sim: SimulatorThread) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=sim.base_url + "/openai/v1", api_key="sk-test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def gclient(sim: SimulatorThread) -> Iterator[genai.Client]:
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=sim.base_url + "/gemini"))
    yield client
    client.close()


def decode_b64(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def decode_bytes(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def png_bytes(width: int, height: int, mode: str = "RGB", color: Any = (40, 90, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Plain HTTP for the cases an SDK hides (raw bodies, headers, missing auth)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@pytest.fixture(scope="session")
def util() -> SimpleNamespace:
    """Helpers as a fixture: test modules cannot import conftest reliably without packages."""
    return SimpleNamespace(decode_b64=decode_b64, decode_bytes=decode_bytes, png_bytes=png_bytes, http=http)
