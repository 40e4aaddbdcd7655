"""Schemathesis against the gateway's whole OpenAPI document, over real HTTP on loopback: every operation,
valid and invalid requests, wrong methods. No 5xx; every status, Content-Type, header and body conforms to the
document; a 405 carries `Allow`; what the document calls invalid is refused. Bounded in time (MAX_TIME_S) so
it is a CI-sized run; `.ci/run` runs it as it is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from mediagate import auth
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

API_KEY = "sk-schemathesis-api"
ADMIN_KEY = "sk-schemathesis-admin"
MAX_TIME_S = 60          # the whole run (schemathesis's --max-time; fuzzing and stateful repeat until it is spent)
MAX_EXAMPLES = 25        # per operation and phase
SEED = 20251203          # the same cases on every run; change it to explore
# One worker: hypothesis describes filters by parsing lambda source, and CPython 3.11's parser is not
# thread-safe ("SystemError: AST constructor recursion depth mismatch" with --workers 2).
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_headers_conformance",
          "response_schema_conformance", "negative_data_rejection", "unsupported_method")
CONFIG = f"""
[auth.openapi.bearerAuth]
bearer = "{API_KEY}"
[auth.openapi.adminBearer]
bearer = "{ADMIN_KEY}"
"""


@pytest.fixture()
def keyed_gateway(sim: SimulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayThread]:
    """Keys on, the admin API on: every operation is reachable with the document's own security schemes.
    Schemathesis also sends requests without a key (401, as documented); from one address they would soon
    trip the wrong-key throttle and leave the rest of the run answered 429 (test_keys.py tests the throttle)."""
    monkeypatch.setattr(auth, "AUTH_FAILURES_PER_MIN", 1_000_000)
    with GatewayThread(sim.base_url, tmp_path, api_keys=frozenset({API_KEY}), admin_key=ADMIN_KEY) as gw:
        yield gw


def test_the_whole_document_holds_under_schemathesis(keyed_gateway: GatewayThread, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis's `st` is installed with the test extra"
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "report"
    document = tmp_path / "openapi.json"   # fetched as a client would: the document is behind the key too
    request = urllib.request.Request(keyed_gateway.base_url + "/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=30) as r:
        document.write_bytes(r.read())
    cmd = [st, "--config-file", str(config), "--no-color", "run", str(document), "--url", keyed_gateway.base_url,
           "--checks", ",".join(CHECKS), "--max-time", str(MAX_TIME_S), "--max-examples", str(MAX_EXAMPLES),
           "--seed", str(SEED), "--workers", "1", "--request-timeout", "60", "--suppress-health-check", "all",
           "--generation-database", "none", "--report", "junit", "--report-dir", str(report), "--continue-on-failure"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=MAX_TIME_S + 120, cwd=tmp_path,  # its cache too
                         env={**os.environ, "NO_COLOR": "1"})
    out = run.stdout + run.stderr
    print(out[-4000:])   # the run's summary (phases, links covered, cases), shown with -s or on failure
    assert run.returncode == 0, out[-20000:]
    assert "operations" in out.lower() or "passed" in out.lower(), out[-5000:]
