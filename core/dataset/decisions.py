"""What the runs of one dataset decided: the seed keys already decided (a re-run skips
them), the examples kept, and the mix they make. A decision is on disk before its event
is yielded, so a Cancel, a crash or a kill loses nothing already decided."""

from __future__ import annotations

from collections import Counter
from typing import Any

from core.dataset.candidates import TWOHOP
from core.dataset.progress import Accepted, Rejected
from core.dataset.storage import Dataset
from core.dataset.verify import Rejection, Verifier


class Decisions:
    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.kinds: Counter[str] = Counter()
        """Examples kept per kind (what the mix of the next ones follows)."""
        self.used_seconds: set[str] = set()
        """Answer chunks (and their copies) a kept two-hop question already asks about."""

    def resume(self, verifier: Verifier) -> tuple[set[str], list[dict[str, Any]]]:
        """The seed keys earlier runs decided and the examples they kept; the kept
        questions and kinds are taken into account (no question is asked twice)."""
        kept = self.dataset.examples()
        for example in kept:
            verifier.keep(str(example.get("question", "")))
            self.kinds[str(example.get("kind", ""))] += 1
            if example.get("kind") == TWOHOP:
                self.used_seconds.add(str(example.get("chunk_id", "")))
        return self.dataset.decided_seeds(), kept

    def reject(self, key: str, rejection: Rejection, fields: dict[str, Any]) -> Rejected:
        """Store why the candidate under ``key`` was rejected, with ``fields`` to find it."""
        self.dataset.append_rejection(
            {"seed_key": key, "reason": rejection.reason, "detail": rejection.detail, **fields}
        )
        return Rejected(rejection.reason, rejection.detail)

    def accept(self, example: dict[str, Any]) -> Accepted:
        self.dataset.append_example(example)
        return Accepted(example)

    def count(self, kind: str, example: dict[str, Any]) -> None:
        """A kept example of this run joins the mix."""
        self.kinds[kind] += 1
        if kind == TWOHOP:
            self.used_seconds.add(str(example["chunk_id"]))
