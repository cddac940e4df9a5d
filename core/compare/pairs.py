"""Two models on the same questions, paired per question (`cotrag compare`, the Compare tab).

For each question both answers are scored (an expected string in the short answer: its
``Answer:`` line or first sentence, see ``scoring``), and the pairs are counted: both
right, only A, only B, neither. McNemar's exact test on the discordant pairs says whether
the difference is more than chance on this many questions. The same table on the old
whole-answer containment is kept beside it (``table["contains"]``), so old figures stay
comparable and a side that wins only by rambling shows. Each side also gets the usual
summary (accuracy, accuracy on containment, median answer words, recall@k, rounds,
protocol-error rate).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from math import comb
from typing import Any

from core.compare.evaluation import EvalReport, ItemResult, QAFileError, QAItem, evaluate

MODES = ("loop", "rag", "closed")


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact p-value of McNemar's test (binomial on the discordant pairs)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_counts(scores: list[tuple[bool, bool]]) -> dict[str, Any]:
    """Both right, only A, only B, neither, and McNemar's exact p, of (A, B) scores."""
    both = sum(a and b for a, b in scores)
    only_a = sum(a and not b for a, b in scores)
    only_b = sum(b and not a for a, b in scores)
    return {
        "both": both,
        "only_a": only_a,
        "only_b": only_b,
        "neither": len(scores) - both - only_a - only_b,
        "mcnemar_p": round(mcnemar_exact(only_a, only_b), 4),
    }


@dataclass(frozen=True)
class Side:
    model: str
    """A model reference (``default``, a name, ``name:variant``, a path)."""
    mode: str = "loop"

    @property
    def label(self) -> str:
        return f"{self.model or 'default'} ({self.mode})"

    @classmethod
    def parse(cls, text: str, default_mode: str) -> Side:
        """``NAME`` or ``NAME@mode`` (``default@rag``)."""
        model, _, mode = text.partition("@")
        mode = mode or default_mode
        if mode not in MODES:
            raise QAFileError(f"{text!r}: the mode after @ must be one of {', '.join(MODES)}.")
        return cls(model.strip() or "default", mode)


@dataclass
class Comparison:
    a: Side
    b: Side
    kb: str
    reports: list[EvalReport] = field(default_factory=list)

    @property
    def pairs(self) -> list[tuple[ItemResult, ItemResult]]:
        if len(self.reports) < 2:
            return []
        by_id = {i.id: i for i in self.reports[1].items}
        return [(x, by_id[x.id]) for x in self.reports[0].items if x.id in by_id]

    @property
    def table(self) -> dict[str, Any]:
        """The pairs on the short-answer score, and under ``"contains"`` on the old
        whole-answer containment."""
        pairs = self.pairs
        return {
            "questions": len(pairs),
            **paired_counts([(x.correct, y.correct) for x, y in pairs]),
            "contains": paired_counts([(x.contains, y.contains) for x, y in pairs]),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"model": self.a.model, "mode": self.a.mode},
            "b": {"model": self.b.model, "mode": self.b.mode},
            "kb": self.kb,
            "table": self.table,
            "summaries": [r.summary for r in self.reports],
            "per_question": [
                {
                    "id": x.id,
                    "question": x.question,
                    "expected": x.expected,
                    "a_correct": x.correct,
                    "b_correct": y.correct,
                    "a_contains": x.contains,
                    "b_contains": y.contains,
                    "a_words": x.answer_words,
                    "b_words": y.answer_words,
                    "a_answer": x.answer,
                    "b_answer": y.answer,
                    "a_errors": x.protocol_errors,
                    "b_errors": y.protocol_errors,
                }
                for x, y in self.pairs
            ],
            "reports": [r.to_dict() for r in self.reports],
        }


AgentFor = Callable[[Side], Any]


def compare(
    agent_for: AgentFor,
    a: Side,
    b: Side,
    items: list[QAItem],
    *,
    kb: str = "",
    release: Callable[[Side], None] | None = None,
    on_item: Callable[[int, int, ItemResult], None] | None = None,
    cancel: threading.Event | None = None,
) -> Comparison:
    """Run all questions on A, then on B (one model in memory at a time)."""
    result = Comparison(a, b, kb)
    for index, side in enumerate((a, b)):
        agent = agent_for(side)

        def item_done(i: int, r: ItemResult, index: int = index) -> None:
            if on_item is not None:
                on_item(index, i, r)

        report = evaluate(
            agent,
            items,
            mode=side.mode,
            kb=kb,
            model=side.model,
            on_item=item_done,
            cancel=cancel,
        )
        result.reports.append(report)
        if release is not None:
            release(side)
        if cancel is not None and cancel.is_set():
            break
    return result
