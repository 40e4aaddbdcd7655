"""The release path as a new user meets it: `python -m build`, the wheel into a fresh venv, then every
command run from an empty directory that is not the checkout, and the openai SDK against the installed gateway.

The build runs on a copy of the checkout (nothing is written into the working tree) and builds the wheel from
the sdist (build's default), so a file missing from the sdist fails here. The venv gets the wheel and its
declared dependencies from the package index, as a user's would: an undeclared runtime import fails here too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest

from tests.test_deploy import entrypoint, healthcheck_command

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 300        # sdist + wheel, each in its own isolated build env
INSTALL_TIMEOUT_S = 300      # the wheel and its dependencies into a fresh venv
COMMAND_TIMEOUT_S = 60       # one CLI command (imports + loading every spec)
SERVE_START_TIMEOUT_S = 60
SHIPPED = {"models.d": "mediagate/specs/models", "providers.d": "mediagate/specs/providers", "schemas": "mediagate/specs/schemas"}
# Never copied into the build: what a working checkout accumulates that a release must not depend on.
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv*", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", "build",
                                     "dist", "*.egg-info", "var", "node_modules")


@dataclass
class Dists:
    wheel: Path
    sdist: Path


@dataclass
class Installed:
    venv: Path
    site_packages: Path
    cwd: Path          # an empty directory outside the checkout, where every command runs
    env: dict[str, str]
    data_home: Path    # XDG_DATA_HOME: the per-user data directory the state must default to

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.bin("mediagate"), *args], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    try:
        import build  # noqa: F401  (the test extra installs it)
    except ImportError:
        if _ci():
            raise
        pytest.skip("the `build` package is not installed here (pip install -e '.[test]' brings it)")
    tmp = tmp_path_factory.mktemp("release")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE)
    out = tmp / "dist"
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)], capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    assert done.returncode == 0, "python -m build failed:\n" + (done.stdout + done.stderr)[-4000:]
    wheels, sdists = sorted(out.glob("mediagate-*.whl")), sorted(out.glob("mediagate-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return Dists(wheels[0], sdists[0])


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would point Python or the gateway back at the checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEDIAGATE_", "PYTHON", "VIRTUAL_ENV", "PYTEST", "XDG_")) and not k.endswith(("_API_KEY", "_API_TOKEN"))
           and k not in ("FAL_KEY", "A1111_BASE_URL", "LOCAL_OPENAI_BASE_URL") and not k.startswith("VERTEX_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("user")
    venv = tmp / "venv"
    # The venv's own interpreter is a fresh one: no --system-site-packages, nothing of this test's venv visible.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                          "--no-compile", str(dists.wheel)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                         env=_clean_env())
    assert pip.returncode == 0, "pip install of the wheel failed:\n" + (pip.stdout + pip.stderr)[-4000:]
    site = next((venv / "lib").glob("python3*/site-packages"))
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    data_home = tmp / "data"
    path = os.pathsep.join([str(venv / "bin")] + [p for p in os.environ.get("PATH", "").split(os.pathsep)
                                                  if p and not p.startswith(sys.prefix)])
    env = _clean_env(PATH=path, HOME=str(tmp / "home"), XDG_DATA_HOME=str(data_home), PYTHONUNBUFFERED="1",
                     PYTHONNOUSERSITE="1")
    return Installed(venv, site, cwd, env, data_home)


def test_wheel_is_one_import_package_with_the_specs_and_schemas(dists: Dists) -> None:
    names = zipfile.ZipFile(dists.wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"mediagate", dists.wheel.name.split("-py3")[0] + ".dist-info"}, top
    for checkout_dir, packaged in SHIPPED.items():
        shipped = sorted(p.name for p in (ROOT / checkout_dir).iterdir() if p.suffix in (".yaml", ".json"))
        assert shipped, checkout_dir
        assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith(packaged + "/") and not n.endswith(".py")) == shipped
    console = sorted(p.name for p in (ROOT / "console").iterdir() if p.is_file())
    assert "index.html" in console
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("mediagate/console/")) == console   # the web console
    assert "mediagate/sandbox/app.py" in names and "mediagate/cli.py" in names
    assert not any(n.startswith("mediagate/tests") or "/__pycache__/" in n for n in names)
    entry_points = zipfile.ZipFile(dists.wheel).read(top.difference({"mediagate"}).pop() + "/entry_points.txt").decode()
    assert "mediagate = mediagate.cli:main" in entry_points


def test_sdist_holds_what_rebuilding_the_wheel_needs(dists: Dists) -> None:
    """build made the wheel from this sdist, so the wheel's test above already proves it builds; here: nothing
    that the checkout tracks for the package, its specs, or its tests is left out."""
    with tarfile.open(dists.sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    expected = {"pyproject.toml", "README.md"}
    for d in ("engine", "sandbox", "models.d", "providers.d", "schemas", "tests", "console"):
        expected |= {str(p.relative_to(ROOT)) for p in (ROOT / d).rglob("*")
                     if p.is_file() and not {"__pycache__", "node_modules"} & set(p.parts) and p.suffix != ".pyc"}
    missing = sorted(expected - names)
    assert not missing, missing
    assert not any("__pycache__" in n or n.endswith(".pyc") or "node_modules" in n for n in names)


def test_installed_names_are_the_projects_own(installed: Installed) -> None:
    probe = ("import importlib.util, mediagate, mediagate.sandbox, mediagate.catalog as c; print(mediagate.__file__); "
             "print(c.SCHEMA_DIR); print([n for n in ('engine', 'sandbox', 'tests', 'schemas') if importlib.util.find_spec(n)])")
    out = subprocess.run([installed.bin("python"), "-c", probe], cwd=installed.cwd, env=installed.env, capture_output=True,
                         text=True, timeout=COMMAND_TIMEOUT_S, check=True).stdout.splitlines()
    assert Path(out[0]).is_relative_to(installed.site_packages), out     # not the checkout, not an editable finder
    assert Path(out[1]).is_relative_to(installed.site_packages / "mediagate" / "specs"), out
    assert out[2] == "[]", out
    top = {p.name for p in installed.site_packages.iterdir()}
    assert not top & {"engine", "sandbox", "tests", "schemas", "models.d", "providers.d"}, sorted(top)


def test_every_command_works_from_another_directory(installed: Installed) -> None:
    version = installed.run("--version")
    assert version.returncode == 0 and version.stdout.strip() == "mediagate 0.1.0", version
    validate = installed.run("validate")
    models = len([p for p in (ROOT / "models.d").iterdir() if p.suffix == ".yaml"])
    assert validate.returncode == 0 and validate.stdout.startswith(f"ok: {models} models"), validate
    listed = installed.run("models")
    assert listed.returncode == 0 and "gemini-3-pro-image" in listed.stdout, listed
    schema = installed.run("schema", "gemini-3-pro-image")
    assert schema.returncode == 0 and '"aspect_ratio"' in schema.stdout, schema
    explain = installed.run("explain", "gemini-3-pro-image", '{"prompt": "a fox", "size": "1792x1024"}')
    assert explain.returncode == 0 and '"routes"' in explain.stdout and "1376x768" in explain.stdout, explain
    assert list(installed.cwd.iterdir()) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(installed: Installed) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """The image's ENTRYPOINT (`mediagate serve`) from the installed wheel, configured by environment as the image
    is (but on loopback, not 0.0.0.0), sandbox on, state left to its per-user default."""
    port = _free_port()
    log = installed.cwd.parent / "serve.log"
    command = entrypoint()
    env = {**installed.env, "MEDIAGATE_SANDBOX": "on", "MEDIAGATE_HOST": "127.0.0.1", "MEDIAGATE_PORT": str(port)}
    with open(log, "w") as out:
        proc = subprocess.Popen([installed.bin(command[0]), *command[1:]], cwd=installed.cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_START_TIMEOUT_S
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("the installed `mediagate serve` did not start:\n" + log.read_text())
            time.sleep(0.1)
        yield base, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_installed_gateway_answers_the_openai_sdk(served: tuple[str, subprocess.Popen[str], Path], installed: Installed) -> None:
    base, proc, log = served
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused-in-sandbox", max_retries=0)
    res = client.images.generate(model="gemini-3-pro-image", prompt="a red fox in snow", size="1792x1024",
                                 response_format="b64_json", extra_body={"output_format": "webp"})
    assert res.size == "1376x768" and res.data and res.data[0].b64_json
    url = client.images.generate(model="gpt-image-2", prompt="x", response_format="url").data[0].url
    assert url is not None and httpx.get(url).status_code == 200
    page = httpx.get(base + "/console/")   # the web console, from the wheel's package data
    assert page.status_code == 200 and "/console/app.js" in page.text
    assert httpx.get(base + "/console/app.js").status_code == 200
    assert "sandbox: simulators at http://127.0.0.1:" in log.read_text()
    # State and media went to the per-user data directory, never the current one.
    assert (installed.data_home / "mediagate" / "jobs.sqlite3").exists()
    assert any((installed.data_home / "mediagate" / "media").iterdir())
    assert list(installed.cwd.iterdir()) == []
    assert _healthcheck(installed, base).returncode == 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, log.read_text()
    assert "mediagate: stopped" in log.read_text()
    assert _healthcheck(installed, base).returncode != 0   # the image's check fails once nothing answers


def _healthcheck(installed: Installed, base: str) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, run by the installed venv's Python against the gateway at `base`."""
    command = healthcheck_command()
    return subprocess.run([installed.bin(command[0]), *command[1:]], cwd=installed.cwd, capture_output=True, text=True,
                          env={**installed.env, "MEDIAGATE_PORT": base.rsplit(":", 1)[1]}, timeout=COMMAND_TIMEOUT_S)
