"""What the container image and the compose file would run, checked without a container daemon.

No image is built here (this machine has no daemon): these tests read the Dockerfile and compose.yaml for the
invariants a deployment relies on, and tests/test_package.py runs the image's ENTRYPOINT and HEALTHCHECK
commands against the installed wheel.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED_ENV = {   # the names the Redis and S3 stores read (issue 8); values as compose wires them
    "MEDIAGATE_REDIS_URL": "redis://redis:6379/0",
    "MEDIAGATE_MEDIA_URL": "s3://mediagate/media",
    "AWS_ENDPOINT_URL": "http://minio:9000",
}
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MEDIAGATE_SIGNING_KEY", "MEDIAGATE_WEBHOOK_SECRET")
_REQUIRED_REF = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]*\}$")   # ${VAR:?message}: compose refuses to start without it


def dockerfile_stages(path: Path = ROOT / "Dockerfile") -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    stages: list[list[tuple[str, str]]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if line.endswith("\\"):
            continue
        word, _, rest = pending.partition(" ")
        pending = ""
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages


def final_stage() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for word, rest in dockerfile_stages()[-1]:
        out.setdefault(word, []).append(rest)
    return out


def entrypoint() -> list[str]:
    return list(json.loads(final_stage()["ENTRYPOINT"][-1]))


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's exec-form CMD."""
    spec = final_stage()["HEALTHCHECK"][-1]
    return list(json.loads(spec[spec.index("CMD ") + 4:].strip()))


def _env(stage: dict[str, list[str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in stage.get("ENV", []):
        env.update(dict(item.split("=", 1) for item in shlex.split(rest)))
    return env


def test_image_is_multi_stage_slim_and_installs_only_the_wheel() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    builder, final = stages[0], stages[-1]
    assert any(w == "RUN" and "python -m build" in r for w, r in builder)
    assert "-slim" in final[0][1] and " AS " not in final[0][1].upper()
    copies = [r for w, r in final if w == "COPY"]
    assert copies and all(r.startswith("--from=") for r in copies), copies   # nothing of the source tree itself
    assert any(w == "RUN" and re.search(r"pip install .*mediagate-\*\.whl", r) for w, r in final)


def test_image_runs_as_a_non_root_user_with_state_on_a_volume() -> None:
    stage = final_stage()
    user = stage["USER"][-1].split(":")[0]
    assert user not in ("root", "0"), user
    env = _env(stage)
    assert env["MEDIAGATE_HOST"] == "0.0.0.0" and env["MEDIAGATE_STATE_DIR"] == "/data"
    assert env["MEDIAGATE_PORT"] == "8400" and stage["EXPOSE"] == ["8400"]
    assert json.loads(stage["VOLUME"][-1]) == ["/data"]
    assert entrypoint() == ["mediagate", "serve"]
    check = healthcheck_command()
    assert check[0] == "python" and "/healthz" in check[-1] and "urllib" in check[-1]   # slim has no curl


def test_build_context_holds_what_the_builder_copies() -> None:
    allowed = {line.strip().lstrip("!").rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    first = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in first   # an allow-list: nothing else (venvs, caches, .git) reaches the daemon
    for word, rest in dockerfile_stages()[0]:
        if word == "COPY" and not rest.startswith("--from="):
            sources = shlex.split(rest)[:-1]
            for src in sources:
                assert src.rstrip("/") in allowed, src
                assert (ROOT / src).exists(), src


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "compose.yaml").read_text()))


def test_compose_runs_two_gateways_on_one_redis_and_one_bucket() -> None:
    services = _compose()["services"]
    gateways = {name: s for name, s in services.items() if s.get("build") == "."}
    assert sorted(gateways) == ["gw1", "gw2"]
    host_ports = set()
    for name, gw in gateways.items():
        env = gw["environment"]
        for key, value in SHARED_ENV.items():
            assert env[key] == value, (name, key)
        for key in SECRET_ENV:   # interpolated from the operator's environment or .env, never a literal
            assert _REQUIRED_REF.match(str(env[key])), (name, key, env[key])
        assert gw["depends_on"]["redis"]["condition"] == "service_healthy"
        assert gw["depends_on"]["createbucket"]["condition"] == "service_completed_successfully"
        assert any(v.endswith(":/data") for v in gw["volumes"])
        host_ports |= {p.split(":")[0] for p in gw["ports"]}
        assert all(p.endswith(":8400") for p in gw["ports"])
    assert host_ports == {"8401", "8402"}
    # The same secret reference in both: one signing key for all gateways, or URLs minted by one fail on the other.
    assert gateways["gw1"]["environment"]["MEDIAGATE_SIGNING_KEY"] == gateways["gw2"]["environment"]["MEDIAGATE_SIGNING_KEY"]


def test_compose_redis_keeps_an_append_only_file_on_a_volume() -> None:
    redis = _compose()["services"]["redis"]
    assert str(redis["image"]).startswith("redis:7")
    command = redis["command"]
    assert command[:1] == ["redis-server"] and command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_compose_minio_and_the_bucket_the_media_url_names() -> None:
    compose = _compose()
    services = compose["services"]
    assert str(services["minio"]["image"]).startswith("minio/minio")
    one_shot = services["createbucket"]
    assert str(one_shot["image"]).startswith("minio/mc") and one_shot["restart"] == "no"
    bucket = SHARED_ENV["MEDIAGATE_MEDIA_URL"].split("/")[2]
    assert f"mc mb --ignore-existing store/{bucket}" in " ".join(one_shot["entrypoint"])
    assert one_shot["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in ("minio", "createbucket"):
        for key in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
            assert _REQUIRED_REF.match(services[name]["environment"][key]), (name, key)
    named = set(compose["volumes"])
    for s in services.values():
        for v in s.get("volumes", []):
            assert v.split(":")[0] in named, v


def test_no_secret_is_committed() -> None:
    example = ROOT / "deploy.env.example"
    values = dict(line.split("=", 1) for line in example.read_text().splitlines() if line and not line.startswith("#"))
    assert {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "MEDIAGATE_SIGNING_KEY", "MEDIAGATE_WEBHOOK_SECRET"} <= set(values)
    assert all(v == "" for v in values.values()), values
    assert ".env" in (ROOT / ".gitignore").read_text().split()
