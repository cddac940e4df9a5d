"""Spread picks over documents, so a dataset is not all about its first few files."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def spread_over_documents(
    by_doc: dict[str, list[T]], seed: int, key: Callable[[T], str], *, first: str = ""
) -> list[T]:
    """Round robin over the documents in a seeded order (``first``, when given, leads it),
    each document's items sorted by ``key`` and then shuffled with the same seeded
    generator (``by_doc``'s lists are reordered in place)."""
    rng = random.Random(seed)
    order = sorted(by_doc)
    rng.shuffle(order)
    for source in order:
        by_doc[source].sort(key=key)
        rng.shuffle(by_doc[source])
    if first in by_doc:
        order.remove(first)
        order.insert(0, first)
    spread: list[T] = []
    depth = 0
    while True:
        layer = [by_doc[s][depth] for s in order if depth < len(by_doc[s])]
        if not layer:
            return spread
        spread.extend(layer)
        depth += 1
