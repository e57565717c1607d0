"""Executions-per-minute charts as plain data for an inline SVG (no chart library)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from octopus.core.enums import ExecutionStatus
from octopus.store.base import MinuteCount

WIDTH = 600
HEIGHT = 120
FAILED = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.LOST})


@dataclass(frozen=True, slots=True)
class Bar:
    """One stacked bar: succeeded below, failed on top; coordinates in SVG units."""

    x: float
    width: float
    succeeded: int
    failed: int
    succeeded_height: float
    failed_height: float
    label: str

    @property
    def succeeded_y(self) -> float:
        return HEIGHT - self.succeeded_height

    @property
    def failed_y(self) -> float:
        return HEIGHT - self.succeeded_height - self.failed_height


@dataclass(frozen=True, slots=True)
class Chart:
    """Bars over a time window, the tallest bar's total, and what one bar stands for."""

    title: str
    bars: list[Bar]
    peak: int
    bucket_minutes: int
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def total(self) -> tuple[int, int]:
        return sum(b.succeeded for b in self.bars), sum(b.failed for b in self.bars)


def _minute_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def build_chart(
    title: str, counts: Sequence[MinuteCount], *, now: datetime, minutes: int, bucket_minutes: int
) -> Chart:
    """Bucket per-minute counts of the last ``minutes`` into bars of ``bucket_minutes``."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    index = {_minute_key(start + timedelta(minutes=i)): i for i in range(minutes)}
    buckets = minutes // bucket_minutes
    ok, bad = [0] * buckets, [0] * buckets
    for item in counts:
        position = index.get(item.minute)
        if position is None or item.status is ExecutionStatus.CANCELLED:
            continue
        slot = position // bucket_minutes
        if item.status is ExecutionStatus.SUCCEEDED:
            ok[slot] += item.count
        elif item.status in FAILED:
            bad[slot] += item.count
    peak = max((s + f for s, f in zip(ok, bad, strict=True)), default=0)
    scale = (HEIGHT - 4) / peak if peak else 0.0
    width = WIDTH / buckets
    bars = [
        Bar(
            x=round(i * width, 2),
            width=round(max(width - 1, 0.5), 2),
            succeeded=ok[i],
            failed=bad[i],
            succeeded_height=round(ok[i] * scale, 2),
            failed_height=round(bad[i] * scale, 2),
            label=_minute_key(start + timedelta(minutes=i * bucket_minutes)),
        )
        for i in range(buckets)
    ]
    return Chart(title=title, bars=bars, peak=peak, bucket_minutes=bucket_minutes)
