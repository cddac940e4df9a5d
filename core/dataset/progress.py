"""The events a generation run yields (an example kept, a candidate rejected, how far it
is) and the rate and time left its progress reports."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    accepted: int
    rejected: int
    target: int
    seeds_done: int
    seeds_total: int
    per_minute: float
    eta_s: float | None


@dataclass(frozen=True)
class Accepted:
    example: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str


GenEvent = Progress | Accepted | Rejected


class Stopwatch:
    """Seconds since a run began, for its rate and time left."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def toward_count(
        self, accepted: int, rejected: int, new: int, target: int, done: int, total: int
    ) -> Progress:
        """A run toward ``target`` examples: the rate is of examples this run kept, the time
        left is what the missing ones take at that rate (None while nothing is kept)."""
        elapsed = self.elapsed()
        rate = new / elapsed * 60 if elapsed > 0 else 0.0
        left = target - accepted
        return Progress(
            accepted,
            rejected,
            target,
            done,
            total,
            rate,
            left / rate * 60 if rate > 0 and left > 0 else (0.0 if left <= 0 else None),
        )

    def through_items(
        self, accepted: int, rejected: int, per_minute: int, index: int, total: int
    ) -> Progress:
        """A run through ``total`` given items (pairs, examples to retrace): the time left
        is what the items not reached take at the pace so far; ``per_minute`` counts what
        the caller's rate is of."""
        elapsed = self.elapsed()
        left = total - index
        return Progress(
            accepted,
            rejected,
            total,
            index,
            total,
            per_minute / elapsed * 60 if elapsed > 0 else 0.0,
            left / (index / elapsed) if elapsed > 0 and left else 0.0,
        )
