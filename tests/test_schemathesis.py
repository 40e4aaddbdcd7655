"""Schemathesis against the gateway's own OpenAPI document, over real HTTP: no request it generates
(valid or not) may get a 5xx. Bounded in examples per operation so it stays a CI-sized run."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.servers import GatewayThread

MAX_EXAMPLES = 60   # per operation and generation mode (positive and negative)


def test_no_generated_request_gets_a_server_error(gateway: GatewayThread) -> None:
    schema = schemathesis.openapi.from_url(gateway.base_url + "/openapi.json")
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                      derandomize=True, database=None)
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=gateway.base_url, checks=[not_a_server_error], timeout=60)
            check()
            ran += 1
    assert ran >= 4, "the document lists the generating endpoints"
