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

import openai
import pytest
from google import genai
from google.genai import types
from PIL import Image

from sandbox.testing import SimulatorThread


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimulatorThread]:
    with SimulatorThread() as sim:
        yield sim


@pytest.fixture
def sim(sim_server: SimulatorThread) -> SimulatorThread:
    """The shared simulator with no queued faults, no latency and an empty request log."""
    sim_server.reset()
    return sim_server


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
