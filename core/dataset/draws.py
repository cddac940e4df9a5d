"""Draws fixed by a key and the dataset's seed: which split a document's examples go to,
and a share in [0, 1) for an example (the same documents and seed draw the same, wherever
the dataset is made).

The split is by document (no document has examples in both splits), and the rule is:

1. each document draws a number in [0, 1) from its name and the seed; those drawing below
   ``validation_share`` are held out (validation);
2. a small knowledge base still gets a validation share: when ``validation_share`` > 0,
   at least two documents are asked about and none drew below the share, the one with
   the lowest draw is held out (so one of N ≥ 2 documents, never all of them);
3. a document that already has examples in the dataset keeps their split (continuing a
   dataset, or a knowledge base that grew, never moves a document between splits);
4. a run asks about one held-out document first (:attr:`Splits.lead`), so a small run
   reaches it. The dataset's ``held_out`` (its meta) records the documents rule 2 chose,
   for edits that move an example to another document;
5. a document rule 2 held out that gives no example (no question could be made from
   it) passes the hold-out on to the next free document by draw (:meth:`Splits.moved`),
   while another free document stays for training.

Training follows this split (:func:`core.training.data.dataset_rows`): one split, one truth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


def keyed_share(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by the key and the seed."""
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(source: str, seed: int, share: float) -> str:
    """Deterministic by document: no document has examples in both splits (rule 1 only;
    :func:`plan_splits` applies the whole rule)."""
    return "validation" if _draw(source, seed) < share else "train"


def _draw(source: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{source}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Splits:
    """Which split each document's examples go to (see the module's rule)."""

    seed: int
    share: float
    held: frozenset[str] = frozenset()
    """Documents held out by rule 2 (the share's draw alone left none)."""
    kept: Mapping[str, str] = field(default_factory=dict)
    """The split of each document the dataset has examples from already (rule 3)."""
    lead: str = ""
    """A held-out document to ask about first ("" when the dataset has validation
    examples already, or holds nothing out)."""

    def of(self, source: str) -> str:
        if source in self.kept:
            return self.kept[source]
        if source in self.held:
            return "validation"
        return split_of(source, self.seed, self.share)

    def moved(self, barren: str, free: Iterable[str], *, trained: bool = False) -> Splits:
        """Rule 5: ``barren`` (held out by rule 2, the lead) gave no example; hold out the
        ``free`` document (none with examples yet) with the lowest draw instead, when a
        document is left for training (``trained``: one has training examples already, else
        another free one). Unchanged otherwise."""
        if barren != self.lead or barren not in self.held:
            return self
        others = sorted({d for d in free if d != barren and d not in self.kept})
        if len(others) < (1 if trained else 2):
            return self
        first = min(others, key=lambda d: _draw(d, self.seed))
        held = (self.held - {barren}) | {first}
        return Splits(self.seed, self.share, held, self.kept, lead=first)


def plan_splits(
    documents: Iterable[str],
    seed: int,
    share: float,
    existing: Mapping[str, str] | None = None,
    held: Iterable[str] = (),
) -> Splits:
    """The splits of a run asking about ``documents``; ``existing``: the split of each
    document the dataset has examples from; ``held``: documents an earlier run held out
    by rule 2 (the dataset's ``held_out``)."""
    kept = dict(existing or {})
    held_set = frozenset(held)
    docs = sorted(set(documents) | set(kept))
    base = Splits(seed, share, held_set, kept)
    if share <= 0 or len(docs) < 2:
        return base
    if any(base.of(d) == "validation" for d in docs):
        if any(v == "validation" for v in kept.values()):
            return base
        first = min((d for d in docs if base.of(d) == "validation"), key=lambda d: _draw(d, seed))
        return Splits(seed, share, held_set, kept, lead=first)
    free = [d for d in docs if d not in kept]
    if not free:
        return base
    first = min(free, key=lambda d: _draw(d, seed))
    return Splits(seed, share, held_set | {first}, kept, lead=first)
