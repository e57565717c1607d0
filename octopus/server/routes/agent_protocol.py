"""The agents' side of the API: enroll, heartbeat, claim (long-poll), report, plugin download."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive

from octopus.core.audit import agent_actor
from octopus.core.models import AgentFacts
from octopus.errors import Fenced
from octopus.schemas.agents import (
    MAX_LOG_BYTES,
    ClaimRequest,
    ClaimResponse,
    EnrollRequest,
    EnrollResponse,
    ExecutionReport,
    Heartbeat,
    HeartbeatAck,
    OutputChunk,
    ReportAck,
)
from octopus.schemas.common import IDENTIFIER_PATTERN, MAX_ID, NAME_PATTERN
from octopus.server.auth import AgentIdentity, AnyAgent, State, require_join_token
from octopus.server.clock import utcnow
from octopus.server.heartbeats import HeartbeatBatcher
from octopus.server.notifier import RECHECK_SECONDS
from octopus.server.routes.agent_reports import outcome_of
from octopus.server.secrets import hash_token, new_token
from octopus.server.short_writes import store_write
from octopus.server.state import ServerState
from octopus.store.base import Beat, Claimed

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["agent protocol"])

AgentNamePath = Annotated[str, Path(pattern=NAME_PATTERN.pattern, description="The agent's name.")]
PluginNamePath = Annotated[str, Path(pattern=IDENTIFIER_PATTERN.pattern)]
ExecutionId = Annotated[int, Path(ge=1, le=MAX_ID)]

HEARTBEAT_PATH = "/agents/{name}/heartbeat"
HEARTBEAT_ROUTE = router.prefix + HEARTBEAT_PATH
"""The heartbeat route's template, the label of its request metrics."""
CLAIM_PATH = "/agents/{name}/claim"
CLAIM_ROUTE = router.prefix + CLAIM_PATH
"""The claim route's template, the label of its request metrics."""


@router.post("/agents/enroll", status_code=201, dependencies=[Depends(require_join_token)])
async def enroll(body: EnrollRequest, state: State) -> EnrollResponse:
    """Enroll a new agent with the join token; returns the agent's own token, once.

    409 if the name is taken by an enrolled agent (revoke it first to re-use the name).
    """
    token = new_token()
    await run_in_threadpool(
        state.store.enroll_agent,
        body.name,
        labels=body.labels,
        token_hash=hash_token(token),
        now=utcnow(),
        actor=agent_actor(body.name),
    )
    logger.info("Agent %s enrolled", body.name, extra={"agent": body.name})
    return EnrollResponse(
        name=body.name,
        token=token,
        heartbeat_interval=state.settings.heartbeat_interval,
        client_timeout=state.settings.client_timeout,
        plugin_public_key=state.plugins.public_key,
    )


@router.post(HEARTBEAT_PATH)
async def heartbeat(body: Heartbeat, agent: AgentIdentity, state: State) -> HeartbeatAck:
    """Record the agent's facts and renew the leases of its running executions."""
    return await answer_heartbeat(state, agent.name, body)


async def answer_heartbeat(state: ServerState, name: str, body: Heartbeat) -> HeartbeatAck:
    """Record agent ``name``'s heartbeat; also the whole work of ``server.fast_lane``.

    Raises:
        NotFound: The agent is unknown or revoked.
    """
    facts = AgentFacts(**{**body.facts.model_dump(), "running": tuple(body.facts.running)})
    beat = Beat(name=name, facts=facts, labels=body.labels, draining=body.draining, now=utcnow())
    result = await _batcher(state).record(beat)
    return HeartbeatAck(
        status=result.status,
        cancel=result.cancel,
        plugins=state.plugins.versions(),
        lease_seconds=state.lease_seconds,
    )


def _batcher(state: ServerState) -> HeartbeatBatcher:
    if state.heartbeats is None:
        state.heartbeats = HeartbeatBatcher(state.store, lease_seconds=state.lease_seconds)
    return state.heartbeats


def _claimed(claimed: Claimed, now: datetime) -> dict[str, Any]:
    """One ``ClaimedExecution``, as the plain values its JSON is made of."""
    execution = claimed.execution
    assert execution.lease_expires_at is not None
    # Relative, so the agent's clock does not matter: network time only makes it later.
    start_in = max(0.0, (execution.not_before - now).total_seconds())
    return {
        "id": execution.id,
        "task_id": execution.task_id,
        "run_id": execution.run_id,
        "attempt": execution.attempt,
        "plugin": claimed.plugin,
        "plugin_sha256": claimed.plugin_sha256,
        "action": claimed.action,
        "args": claimed.args,
        "kwargs": claimed.kwargs,
        "timeout_seconds": claimed.timeout_seconds,
        "lease_expires_at": execution.lease_expires_at,
        "start_in_seconds": round(start_in, 6),
    }


def claim_answer(claimed: list[Claimed], cancel: list[int]) -> bytes:
    """A ``ClaimResponse`` as JSON, built from the store's values without a model for each
    execution: validating one cost 3.1 us an execution, the plain values 0.3 us, on a path
    the server's one thread takes for every execution. The values are the store's own (the
    arguments were stored as orjson made them); a test holds the JSON to the model."""
    now = utcnow()
    answer = {"executions": [_claimed(c, now) for c in claimed], "cancel": cancel}
    return orjson.dumps(answer, option=orjson.OPT_UTC_Z)


@router.post(CLAIM_PATH, response_model=ClaimResponse)
async def claim(
    body: ClaimRequest, agent: AgentIdentity, state: State, request: Request
) -> Response:
    """Long-poll for work: answers as soon as there are executions or cancellations for this
    agent, or after `wait_seconds` with nothing. Each returned execution is leased to it."""
    answer = await answer_claim(state, agent.name, body, lambda: disconnected(request.receive))
    return Response(answer, media_type="application/json")


async def answer_claim(
    state: ServerState, name: str, body: ClaimRequest, hung_up: Callable[[], Awaitable[None]]
) -> bytes:
    """Answer agent ``name``'s claim with a ``ClaimResponse`` as JSON; also the whole work of
    ``server.fast_lane``. ``hung_up`` returns once the client has gone away (the request's
    body was read already)."""
    deadline = time.monotonic() + body.wait_seconds
    notifier = state.notifier
    handed: list[Claimed] = []
    with notifier.listen(name, body.slots, body.lead_seconds) as waiter:
        # An agent that stopped or lost its connection leaves its long-poll behind; without
        # this watch the claim would go on leasing work to a socket no one reads.
        hangup = asyncio.ensure_future(hung_up())
        hangup.add_done_callback(lambda _: notifier.leave(waiter))
        try:
            while True:
                waiter.woken.clear()
                given, on_the_way = notifier.stop_waiting(waiter)
                handed += given
                if on_the_way:  # a creating transaction reserved a slot: it commits soon
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(RECHECK_SECONDS):
                            await waiter.woken.wait()
                    continue
                if handed or waiter.gone:
                    return claim_answer(handed, [])
                # A busy agent claims again as soon as it is answered; when nothing woke it
                # since its last empty look, its claim waits at once, so what is fired or
                # created next is handed to it rather than queued for a look of its own.
                if not notifier.nothing_new(name):
                    mark = notifier.mark(name)
                    found = await store_write(
                        state.store,
                        body.slots,
                        state.store.claim,
                        name,
                        slots=body.slots,
                        now=utcnow(),
                        lease_seconds=state.lease_seconds,
                        lead_seconds=body.lead_seconds,
                    )
                    if found.claimed or found.cancel:
                        return claim_answer(found.claimed, found.cancel)
                    if body.slots:  # a look for no slot says nothing about queued work
                        notifier.found_nothing(name, mark)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or notifier.closing:
                    return claim_answer([], [])
                notifier.wait_open(waiter)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, RECHECK_SECONDS)):
                        await waiter.woken.wait()
        finally:
            hangup.cancel()


async def disconnected(receive: Receive) -> None:
    """Return once the client has disconnected (the body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


@router.post("/executions/{execution_id}/report")
async def report(
    execution_id: ExecutionId, body: ExecutionReport, agent: AnyAgent, state: State
) -> ReportAck:
    """Record an execution's outcome. 409 if this agent no longer holds its lease (fenced)."""
    try:
        execution, wake = await store_write(
            state.store,
            1,
            state.store.finish_execution,
            execution_id,
            agent=agent.name,
            outcome=outcome_of(body),
            now=utcnow(),
        )
    except Fenced:
        logger.info(
            "Refused a report from a fenced attempt",
            extra={"execution": execution_id, "agent": agent.name},
        )
        raise
    state.notifier.wake(wake)
    return ReportAck(id=execution.id, status=execution.status)


@router.post("/executions/{execution_id}/output", status_code=204)
async def append_output(
    execution_id: ExecutionId, body: OutputChunk, agent: AnyAgent, state: State
) -> Response:
    """Append output of a running execution, for following it live. 409 if this agent does not
    hold the execution's lease."""
    await run_in_threadpool(
        state.store.append_output,
        execution_id,
        agent=agent.name,
        text=body.text,
        limit=MAX_LOG_BYTES,
    )
    return Response(status_code=204)


@router.get(
    "/plugins/{name}/source",
    response_class=Response,
    responses={200: {"content": {"text/x-python": {}}}},
)
def plugin_source(name: PluginNamePath, agent: AnyAgent, state: State) -> Response:
    """The plugin's source file. Headers: `X-Octopus-Sha256` its sha256,
    `X-Octopus-Plugin-Version` its version number, `X-Octopus-Signature` the server's Ed25519
    signature of (name, version, sha256), which the agent checks with the key it pinned."""
    plugin = state.store.get_plugin_source(name)
    headers = {"X-Octopus-Sha256": plugin.sha256, "X-Octopus-Plugin-Version": str(plugin.version)}
    if plugin.signature:
        headers["X-Octopus-Signature"] = plugin.signature
    return Response(plugin.source, media_type="text/x-python", headers=headers)
