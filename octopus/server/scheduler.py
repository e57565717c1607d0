"""The scheduler: fires every due run once, on time, through restarts and several replicas.

``Scheduler.tick(now)`` is the step, one store transaction (``Store.tick``): it starts
``queue_one`` runs whose previous run ended, plans tasks without a fire time, and for each due
task decides which fire times to fire and which were missed (``core.timing.plan_missed``) for
the store to apply once (``Store.fire_due`` guards on the ``next_run_at`` the decision was made
from, and runs are unique per task and fire time). ``run()`` sleeps until the lead before the
soonest ``next_run_at`` (at most ``max_sleep_seconds``, so changes made by another replica are
seen) and wakes early when a route calls ``wake()``; runs fired ahead start on time because
the agents that take them wait for it (see ``LEAD_SECONDS``).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from starlette.concurrency import run_in_threadpool

from octopus.core.models import Run, Task
from octopus.core.plan import anchor_of, first_fire_time, next_after, schedule_for
from octopus.core.timing import due_fire_times, next_fire_time, plan_missed
from octopus.server.clock import utcnow
from octopus.server.notifier import Notifier
from octopus.store.base import Claimed, Direct, Firing, Store, Wake

logger = logging.getLogger(__name__)

GRACE_SECONDS = 2.0
"""A fire time at most this late is an ordinary firing, not a missed one."""
RUN_ALL_LIMIT = 100
"""``run_all`` fires at most this many missed fire times at once; older ones stay missed."""
BACKLOG_LIMIT = 1000
"""Missed fire times recorded one by one per task and tick; beyond, the schedule skips ahead."""
DUE_BATCH = 200
MAX_SLEEP_SECONDS = 1.0
LEAD_SECONDS = 0.1
"""How long before its fire time the server fires a run: its execution then reaches an agent
that waits for the fire time itself (``ClaimRequest.lead_seconds``), so the tick's
transaction and the claim are done before the run is due rather than after it."""
MISSED = "missed: not fired on time (the server was down or the task paused)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """What one scheduler step did: the runs it created or started, whom to wake, and the
    soonest fire time still ahead."""

    runs: list[Run] = field(default_factory=list)
    wake: Wake = field(default_factory=Wake)
    handed: list[Claimed] = field(default_factory=list)
    next_due: datetime | None = None


class Scheduler:
    """Fires due runs through the store; see the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        grace_seconds: float = GRACE_SECONDS,
        run_all_limit: int = RUN_ALL_LIMIT,
        max_sleep_seconds: float = MAX_SLEEP_SECONDS,
        lead_seconds: float = 0.0,
    ) -> None:
        """``lead_seconds``: fire runs this long before their fire time (``LEAD_SECONDS`` in
        the server; executions still become claimable at the fire time plus jitter)."""
        self._store = store
        self._lead = timedelta(seconds=lead_seconds)
        self._grace_seconds = grace_seconds
        self._run_all_limit = run_all_limit
        self._max_sleep_seconds = max_sleep_seconds
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Look at the tasks again now: one was created, edited, paused, resumed or run."""
        self._wakeup.set()

    def tick(self, now: datetime, direct: Direct | None = None) -> Tick:
        """One step at ``now`` in one transaction: release waiting runs, plan new tasks, fire
        what is due (with ``direct``, work that may start now goes to waiting claims), and
        read the soonest fire time still ahead."""
        fired, next_due = self._store.tick(
            self, now=now, due_by=now + self._lead, limit=DUE_BATCH, direct=direct
        )
        return Tick(runs=fired.runs, wake=fired.wake, handed=fired.handed, next_due=next_due)

    def first_fire(self, task: Task, now: datetime) -> datetime | None:
        """The first fire time of a task planned without one (see ``Planner``)."""
        return first_fire_time(task.spec, now)

    def firing(self, task: Task, now: datetime) -> Firing:
        """What to do with a due task at ``now``: fire times to fire and to record missed
        (see ``Planner``)."""
        spec, expected = task.spec, task.next_run_at
        assert expected is not None
        anchor = anchor_of(spec, task.created_at)
        due = [expected]
        if spec.type.repeats:
            due += due_fire_times(
                schedule_for(spec),
                after=expected,
                now=now + self._lead,
                anchor=anchor,
                limit=BACKLOG_LIMIT,
            )
        to_fire, to_miss = plan_missed(
            due,
            spec.missed_policy,
            now=now,
            grace_seconds=self._grace_seconds,
            run_all_limit=self._run_all_limit,
        )
        missed = [(moment, MISSED) for moment in to_miss]
        after = due[-1]
        if len(due) > BACKLOG_LIMIT:
            # A long outage of a fast schedule: record a bounded number, say so, skip ahead.
            after = max(after, now)
            if missed:
                missed[-1] = (
                    missed[-1][0],
                    f"{MISSED}; later ones up to {now:%Y-%m-%d %H:%M:%S}Z"
                    " were missed too and not recorded one by one",
                )
        next_run_at = next_after(spec, created_at=task.created_at, run_count=0, after=after)
        if spec.type.repeats and next_run_at is None and len(due) > BACKLOG_LIMIT:
            next_run_at = next_fire_time(schedule_for(spec), now, anchor=anchor)
        fire = [(moment, self._reason(moment, now, len(to_miss))) for moment in to_fire]
        return Firing(expected=expected, fire=fire, missed=missed, next_run_at=next_run_at)

    def _reason(self, moment: datetime, now: datetime, missed: int) -> str | None:
        late = (now - moment).total_seconds()
        if late <= self._grace_seconds:
            return None
        if missed:
            return f"catch-up for {missed + 1} missed firings"
        return f"catch-up: fired {late:.0f} s late"

    def _handing_tick(self, notifier: Notifier, lease_seconds: float) -> Tick:
        # What was leased is handed over as soon as it is committed, whatever happens after.
        with notifier.handing(lease_seconds) as handoff:
            tick = self.tick(utcnow(), direct=handoff)
            handoff.handed = tick.handed
        return tick

    def delay(self, next_due: datetime | None, now: datetime) -> float:
        """Seconds to sleep before the next tick: until ``next_due``, at most the cap."""
        if next_due is None:
            return self._max_sleep_seconds
        until = (next_due - self._lead - now).total_seconds()
        return min(max(until, 0.0), self._max_sleep_seconds)

    async def run(self, stopping: asyncio.Event, notifier: Notifier, lease_seconds: float) -> None:
        """Tick until ``stopping`` is set; ``notifier`` hands new work to waiting claims and
        wakes the agents of the rest.

        Each sleep ends at the lead before the due instant (an asyncio timer), so a run is
        fired just ahead of its time, and its execution starts within milliseconds after it.
        """
        while not stopping.is_set():
            self._wakeup.clear()
            next_due = None
            try:
                tick = await run_in_threadpool(self._handing_tick, notifier, lease_seconds)
                notifier.wake(tick.wake)
                _wake_again_at_fire_times(tick, notifier)
                next_due = tick.next_due
            except Exception:
                logger.exception("Scheduler tick failed; trying again shortly")
            delay = self.delay(next_due, utcnow())
            if delay <= 0:
                continue
            with suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await _first_of(self._wakeup, stopping)


def _wake_again_at_fire_times(tick: Tick, notifier: Notifier) -> None:
    """Wake the agents of the work a tick queued ahead of its time once more at each fire
    time: an agent that takes no work ahead (``lead_seconds`` 0) found nothing when the tick
    woke it, and would otherwise wait for its claim's next look at the store."""
    if not tick.wake.anyone and not tick.wake.agents:
        return
    now = utcnow()
    loop = asyncio.get_running_loop()
    for moment in sorted({run.fire_time for run in tick.runs if run.fire_time > now}):
        loop.call_later((moment - now).total_seconds(), notifier.wake, tick.wake)


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
