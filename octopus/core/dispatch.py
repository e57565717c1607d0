"""Which agents a run goes to: label matching and least-loaded choice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from octopus.core.enums import AgentStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoad:
    """An agent as dispatch sees it: status, labels, slots and work already given to it."""

    name: str
    status: AgentStatus
    labels: Mapping[str, str]
    concurrency: int
    assigned: int


def labels_match(agent_labels: Mapping[str, str], required: Mapping[str, str]) -> bool:
    """Whether every required ``key: value`` pair is among the agent's labels."""
    return all(agent_labels.get(key) == value for key, value in required.items())


def eligible(agents: Iterable[AgentLoad], required: Mapping[str, str]) -> list[AgentLoad]:
    """Online agents whose labels match, in name order."""
    return sorted(
        (a for a in agents if a.status is AgentStatus.ONLINE and labels_match(a.labels, required)),
        key=lambda a: a.name,
    )


def least_loaded(agents: Iterable[AgentLoad], required: Mapping[str, str]) -> str | None:
    """The eligible agent with the smallest share of its slots in use, or None.

    Ties go to the agent with more free slots, then to the first name, so the choice is stable.
    """
    candidates = eligible(agents, required)
    if not candidates:
        return None
    best = min(
        candidates,
        key=lambda a: (a.assigned / max(a.concurrency, 1), a.assigned - a.concurrency, a.name),
    )
    return best.name
