"""/console in a real browser: Debian's chromium driven by Playwright's core library (tests/browser, `npm ci`),
against a real gateway (uvicorn) whose providers are the simulators. Each scenario is one node process that
acts as a user would and checks what the page shows; tests/browser/console.mjs holds them.

The generate scenario also makes the README's screenshot: CONSOLE_SCREENSHOT=docs/console.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from PIL import Image

from mediagate.sandbox.testing import SimulatorThread
from tests.conftest import need_server
from tests.servers import GatewayThread

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
KEY = "sk-console-test-key"
ADMIN_KEY = "admin-console-test-key"
SCENARIO_TIMEOUT_S = 120      # one scenario, chromium start to finish (a sandbox video takes a few seconds)
INPUT_RGB = (40, 120, 200)    # the edit scenario's input image; console.mjs checks the unmasked area keeps it


def _tools() -> str:
    """node with playwright-core installed; missing: skipped locally, a failure in CI (nothing is skipped there)."""
    need_server("node", "Debian package nodejs")
    if not Path(CHROMIUM).exists():
        need_server("chromium", "Debian package chromium")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        if os.environ.get("CI"):
            pytest.fail("tests/browser/node_modules is missing; .ci/run runs `npm ci` there")
        pytest.skip("playwright-core is not installed (cd tests/browser && npm ci)")
    return shutil.which("node") or "node"


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that takes every delivery (204)."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def webhook_receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()


@pytest.fixture(scope="module")
def console_gateway(sim: SimulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    """A gateway that needs a key, like a deployed one, with the admin API on; webhooks may go to loopback."""
    with GatewayThread(sim.base_url, tmp_path_factory.mktemp("console"), api_keys=frozenset({KEY}),
                       admin_key=ADMIN_KEY, fetch_allow="127.0.0.1") as gw:
        yield gw


@pytest.mark.parametrize("scenario", ["generate", "price", "compare", "explain", "video", "mask", "wrongkey", "catalog", "usage"])
def test_console_scenario(scenario: str, console_gateway: GatewayThread, webhook_receiver: str, tmp_path: Path) -> None:
    node = _tools()
    image = tmp_path / "input.png"
    Image.new("RGB", (640, 480), INPUT_RGB).save(image)
    env = {**os.environ, "CONSOLE_KEY": KEY, "CONSOLE_ADMIN_KEY": ADMIN_KEY, "CONSOLE_IMAGE": str(image), "CHROMIUM": CHROMIUM,
           "CONSOLE_WEBHOOK": webhook_receiver}
    if scenario != "generate" or not env.get("CONSOLE_SCREENSHOT"):
        env.pop("CONSOLE_SCREENSHOT", None)
    else:  # the scenario runs in tests/browser: a path given from the checkout's root is made absolute
        env["CONSOLE_SCREENSHOT"] = str(Path(env["CONSOLE_SCREENSHOT"]).resolve())
    run = subprocess.run([node, "console.mjs", console_gateway.base_url, scenario], cwd=BROWSER_DIR, env=env,
                         capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S)
    assert run.returncode == 0, f"scenario {scenario} failed:\n{run.stdout}\n{run.stderr}"
    assert f"ok {scenario}" in run.stdout
