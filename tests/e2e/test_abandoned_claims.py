"""A long-poll claim whose client hung up leases nothing: work created afterwards stays queued
for the agent's next, live claim (it used to be leased to the dead connection and lost). And a
waiting claim of an agent that hands work back answers at once rather than taking it back."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx

from tests.e2e.harness import JOIN_TOKEN, ApiClient, ServerProcess, stays

FACTS = {"concurrency": 2, "free_slots": 2}


def _enroll(server: ServerProcess, name: str) -> dict[str, str]:
    with httpx.Client(base_url=server.url + "/api/v1", timeout=10) as http:
        enrolled = http.post(
            "/agents/enroll",
            json={"name": name, "labels": {}},
            headers={"Authorization": f"Bearer {JOIN_TOKEN}"},
        )
        assert enrolled.status_code == 201, enrolled.text
        headers = {"Authorization": f"Bearer {enrolled.json()['token']}"}
        beat = http.post(f"/agents/{name}/heartbeat", json={"facts": FACTS}, headers=headers)
        assert beat.status_code == 200, beat.text
    return headers


def test_work_is_not_leased_to_a_claim_whose_client_hung_up(
    server: ServerProcess, api: ApiClient
) -> None:
    name = f"hangup-{uuid.uuid4().hex[:8]}"
    headers = _enroll(server, name)
    # A claim that will wait 20 s, abandoned after half a second (a stopped or cut-off agent).
    http = httpx.Client(base_url=server.url + "/api/v1", timeout=httpx.Timeout(0.5))
    polling = threading.Thread(
        target=lambda: _ignore_timeout(http, name, headers), name="abandoned-claim"
    )
    polling.start()
    polling.join(5)
    http.close()
    stays(lambda: True, 0.3)  # the server notices the hang-up

    task = api.create_task("e2eplug.echo", "x", ownership="specific", target=name)
    # Nobody is claiming for this agent now, so its execution must stay queued.
    assert stays(lambda: [e["status"] for e in api.executions(task["id"])] == ["queued"], 2.0), (
        api.executions(task["id"])
    )
    api.cancel_task(task["id"])


def _ignore_timeout(http: httpx.Client, name: str, headers: dict[str, str]) -> None:
    try:
        http.post(f"/agents/{name}/claim", json={"slots": 2, "wait_seconds": 20}, headers=headers)
    except httpx.TimeoutException:
        pass


def test_a_hand_back_answers_the_agents_waiting_claim_without_taking_the_work_back(
    server: ServerProcess, api: ApiClient
) -> None:
    name = f"handback-{uuid.uuid4().hex[:8]}"
    headers = _enroll(server, name)
    task = api.create_task("e2eplug.echo", "x", ownership="specific", target=name)
    answers: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.url + "/api/v1", headers=headers, timeout=30) as http:

        def claim(slots: int, wait_seconds: float) -> dict[str, Any]:
            body = {"slots": slots, "wait_seconds": wait_seconds}
            response = http.post(f"/agents/{name}/claim", json=body)
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = response.json()
            return answer

        (taken,) = claim(1, 0)["executions"]
        # A claim sent while the work still looked quick: it waits, since nothing is queued.
        waiting = threading.Thread(target=lambda: answers.append(claim(4, 20)), name="waiting")
        waiting.start()
        stays(lambda: True, 0.5)
        released = http.post(f"/agents/{name}/release", json={"executions": [taken["id"]]})
        assert released.json()["results"][0]["status"] == "queued", released.text
        waiting.join(5)
        assert not waiting.is_alive(), "the waiting claim did not answer"
    assert answers == [{"executions": [], "cancel": []}]
    assert [e["status"] for e in api.executions(task["id"])] == ["queued"]
    api.cancel_task(task["id"])
