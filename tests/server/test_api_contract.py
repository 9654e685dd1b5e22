"""Property-based contract testing of the whole OpenAPI document with schemathesis: no 5xx, no schema mismatch."""

from __future__ import annotations

import pytest
import schemathesis
from cashscore.server.app import create_app
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

# Cases per operation and mode (valid inputs, then inputs that break the schema); operations with
# few possible inputs (no parameters) stop early.
EXAMPLES = 250
MIN_CASES = 1000


@pytest.fixture
def app(trained):
    return create_app(trained[1], api_key="", admin_key="admin", db=trained[0])


def test_every_operation_meets_its_openapi_contract(app):
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {(op.method.upper(), op.path) for op in operations}
    assert {("GET", "/v1/score"), ("POST", "/v1/score"), ("POST", "/v1/score/batch")} <= documented
    batch = next(op for op in operations if op.path == "/v1/score/batch")
    assert batch.definition.raw["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"
    get_score = next(op for op in operations if op.path == "/v1/score" and op.method.upper() == "GET")
    # One per contract field, counter_offer and lang.
    assert len([p for p in get_score.definition.raw["parameters"] if p["in"] == "query"]) == 13
    cases: dict[str, int] = {}
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            check(op, mode, cases)
    assert sum(cases.values()) >= MIN_CASES, cases


def check(op, mode: GenerationMode, cases: dict[str, int]) -> None:
    """Generate up to EXAMPLES requests for one operation and validate every response."""
    label = f"{op.label} ({mode.value})"
    cases[label] = 0

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        cases[label] += 1
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # no input to break: an operation without parameters
