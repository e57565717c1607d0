"""What a scenario hands back: named figures, or the reason it was skipped, and a verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(
    values: Sequence[float], quantiles: Sequence[str] = ("p50", "p95", "p99")
) -> dict[str, float]:
    """The named percentiles (``p50``, ``p99``...) of ``values``, rounded to 0.01."""
    return {name: round(percentile(values, int(name[1:]) / 100), 2) for name in quantiles}


@dataclass(slots=True)
class ScenarioResult:
    """One scenario's outcome.

    Attributes:
        name: The scenario's name (``dispatch_latency``...).
        figures: JSON keys of the report and their values (numbers or maps of numbers).
        skipped: Why the scenario did not measure, when it did not; its figures are then null.
        correct: Whether every task it created ended exactly once with ``succeeded`` (and, for
            ``schedule_lag``, no run started before its fire time); None when it created no
            task to check.
        notes: Extra facts worth showing (counts, the create path used, durations).
        error: Why the scenario could not finish, when it could not (its figures are null).
    """

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    correct: bool | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(slots=True)
class BenchReport:
    """Every scenario's result and the facts of the run (machine, counts, target)."""

    results: list[ScenarioResult]
    environment: dict[str, Any]

    @property
    def correct(self) -> bool:
        """False when any scenario found a task that did not end exactly once succeeded."""
        return all(result.correct is not False for result in self.results)

    @property
    def errors(self) -> dict[str, str]:
        """Scenarios that could not finish, and why."""
        return {r.name: r.error for r in self.results if r.error is not None}

    def to_json(self) -> dict[str, Any]:
        """The one JSON object of ``octopus bench --json``."""
        out: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        for result in self.results:
            out.update(result.figures)
            if result.skipped is not None:
                skipped[result.name] = result.skipped
        out["correct"] = self.correct
        out["skipped"] = skipped
        out["errors"] = self.errors
        out["details"] = {r.name: {**r.notes, "correct": r.correct} for r in self.results}
        out["environment"] = self.environment
        return out
