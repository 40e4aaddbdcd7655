"""Three generic constructs for protocols whose result takes several steps or whose errors come inside a 200:
a job step's `query` and the `last` job reply in its templates, error rules that name a 2xx status, and a model's
`inputs.required`. End to end they are proved on the MiniMax and Runway simulators (tests/test_prov_c_gateway.py);
here at load and in the functions themselves."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mediagate import catalog, errormap
from mediagate.errors import GatewayError
from mediagate.provider import compile_provider
from tests.test_validate import PROVIDER, problems


def _with_job(query: dict[str, Any]) -> Any:
    def mutate(p: dict[str, Any]) -> None:
        p["operations"]["generate"]["async"] = {
            "poll": {"path": "/query", "query": {"task_id": "{{ job.task_id }}"}},
            "done_when": "status == 'Success'",
            "result": {"path": "/files/retrieve", "query": query},
        }
    return mutate


def test_step_query_may_read_last_and_job(tmp_path: Path) -> None:
    assert problems(tmp_path, mutate_provider=_with_job({"file_id": "{{ last.file_id }}", "task": "{{ job.task_id }}"})) == []


def test_step_query_naming_an_unknown_value_is_refused_at_load(tmp_path: Path) -> None:
    found = problems(tmp_path, mutate_provider=_with_job({"file_id": "{{ latest.file_id }}"}))
    assert any("$.operations.generate.async.result.query.file_id" in line and "latest" in line for line in found), found


def test_step_query_is_compiled() -> None:
    spec = copy.deepcopy(PROVIDER)
    _with_job({"file_id": "{{ last.file_id }}"})(spec)
    job = compile_provider(spec, "acme.yaml", env={}).operations["generate"].job
    assert job is not None and job.result is not None
    assert job.result.query["file_id"]({"last": {"file_id": 42}, "job": {}}) == 42
    assert job.poll.query["task_id"]({"job": {"task_id": "t1"}}) == "t1"


def _rules(*rules: dict[str, Any]) -> Any:
    spec = copy.deepcopy(PROVIDER)
    spec["errors"] = list(rules)
    return compile_provider(spec, "acme.yaml", env={}).errors


def test_a_rule_naming_200_judges_a_successful_reply() -> None:
    rules = _rules(
        {"status": 200, "when": "base_resp.status_code == `1002`", "code": "rate_limit_exceeded", "not_billed": True,
         "message": "base_resp.status_msg"},
        {"status": 200, "when": "base_resp.status_code == `1026`", "code": "content_policy_violation"},
        {"status": "2xx", "when": "base_resp.status_code != `0`", "code": "upstream_error"},
    )
    err = errormap.on_success(rules, 200, {}, {"base_resp": {"status_code": 1002, "status_msg": "rate limit"}})
    assert err is not None and err.code == "rate_limit_exceeded" and err.not_billed and err.message == "rate limit"
    blocked = errormap.on_success(rules, 200, {}, {"base_resp": {"status_code": 1026}})
    assert blocked is not None and blocked.code == "content_policy_violation" and not blocked.not_billed
    other = errormap.on_success(rules, 201, {}, {"base_resp": {"status_code": 2013}})
    assert other is not None and other.code == "upstream_error"
    assert errormap.on_success(rules, 200, {}, {"base_resp": {"status_code": 0}}) is None


def test_rules_without_a_2xx_status_never_judge_a_success() -> None:
    rules = _rules({"code": "upstream_error"}, {"status": "5xx", "code": "upstream_error"},
                   {"status": [400, 422], "when": "error", "code": "invalid_request_error"})
    assert errormap.on_success(rules, 200, {}, {"error": "looks bad"}) is None
    # and a non-2xx reply is classified as before: the first rule (any status) wins
    assert errormap.classify(rules, 500, {}, {}).code == "upstream_error"


@pytest.fixture(scope="module")
def shipped() -> catalog.Catalog:
    return catalog.load()


def test_an_image_only_model_refuses_a_request_without_one(shipped: catalog.Catalog) -> None:
    model = shipped.models["gen4-turbo"]
    with pytest.raises(GatewayError) as exc:
        model.canonical({"model": "gen4-turbo", "prompt": "waves"}, "video")
    assert exc.value.status == 400 and exc.value.param == "input_reference"
    assert exc.value.code == "missing_required_parameter"
    assert "only" in exc.value.message
    # gen4.5 does both: no input image is fine
    assert shipped.models["gen4.5"].canonical({"model": "gen4.5", "prompt": "waves"}, "video").images == ()


def test_durations_narrowed_by_resolution(shipped: catalog.Catalog) -> None:
    model = shipped.models["hailuo-02"]
    req = model.canonical({"model": "hailuo-02", "prompt": "x", "seconds": 10, "resolution": "1080p"}, "video")
    assert req.seconds == 6
    assert [(a["param"], a["requested"], a["applied"]) for a in req.adjustments] == [("seconds", 10, 6)]
    assert "at 1080p" in req.adjustments[0]["reason"]
    at_768 = model.canonical({"model": "hailuo-02", "prompt": "x", "seconds": 10}, "video")
    assert at_768.seconds == 10 and at_768.adjustments == ()


def test_durations_by_resolution_checked_at_load(tmp_path: Path) -> None:
    def video(m: dict[str, Any]) -> None:
        m.update(kind="video", operations=["video"], shape={"aspect_ratios": ["16:9"], "resolutions": ["720p"],
                                                            "default": {"aspect_ratio": "16:9"}},
                 durations={"allowed": [4, 8], "by_resolution": {"1080p": [5]}})
        m.pop("thinking")

    def video_op(p: dict[str, Any]) -> None:
        p["operations"]["video"] = p["operations"]["generate"]

    found = problems(tmp_path, video, video_op)
    assert any("$.durations.by_resolution.1080p" in line and "not one of shape.resolutions" in line for line in found), found
    assert any("$.durations.by_resolution.1080p" in line and "not among durations.allowed" in line for line in found), found
