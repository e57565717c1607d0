"""A property-based fuzz of the API from its own OpenAPI document (schemathesis): requests
that fit the schema and requests that break it, with the admin token and, on the agents'
routes, an enrolled agent's own token, on SQLite and PostgreSQL. The server answers every one
without a server error."""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as fuzzing
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.api.conftest import ADMIN_TOKEN, AgentClient

EXAMPLES_PER_OPERATION = 25
AGENT = "fuzz-agent"
AGENT_ROUTES = ("/api/v1/agents/{name}/heartbeat", "/api/v1/agents/{name}/claim")


def _agent_case(case: schemathesis.Case) -> bool:
    """Point an agent-protocol case at the enrolled agent, without a long-poll wait."""
    if case.operation.path not in AGENT_ROUTES:
        return False
    case.path_parameters = {**(case.path_parameters or {}), "name": AGENT}
    if case.operation.path.endswith("/claim") and isinstance(case.body, dict):
        case.body = {**case.body, "wait_seconds": 0}
    return True


def test_no_generated_request_makes_a_server_error(client: TestClient, enroll: AgentClient) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    agent = enroll(AGENT)
    client.post("/api/v1/tasks", json={"plugin": "example", "action": "hello"})
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20, "the OpenAPI document lists the API's operations"
    failures: list[str] = []
    for operation in operations:
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @fuzzing(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],  # report a failure as found, unshrunk
                suppress_health_check=list(HealthCheck),
            )
            def answers_without_server_error(case: schemathesis.Case) -> None:
                headers: dict[str, Any] = agent if _agent_case(case) else admin
                response = case.call(headers=headers)
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path} query={case.query!r} "
                    f"body={case.body!r}: {response.status_code} {response.text[:300]}"
                )

            try:
                answers_without_server_error()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label
                continue  # nothing in this operation can be made invalid (no parameters)
            except AssertionError as error:
                failures.append(f"{operation.label} ({mode.value}): {error}")
    assert not failures, "\n".join(failures)
