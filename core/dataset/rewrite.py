"""Questions as users ask them: the question writer restates a verified question in its
own words, and the restatement is kept only when it still works as a question.

Kept when (checked in this order; the first that fails is the reason counted):
- the writer wrote a question (``writer_failed``: an error, an empty reply, no ``?``);
- the answer is not in it (``answer_in_question``);
- it is not a copy: not the same question again, and the share of its content words found
  in the source sentence is at most ``max_overlap`` (``copied``);
- it passes the generator's own checks (length, not a near-duplicate) and its round trip
  still finds the source chunk within the top k (``round_trip``; the other checks count
  under their own names);
- a trace of it can be made (``trace_failed``: the round trip found the chunk, but no
  search of the constructed trace did; the verified question is traced instead).

Otherwise the verified question is kept as it was. Either way the example records the
question it came from, whether it was rewritten, why not, and both word overlaps, so the
quality report can show how far the questions moved from the documents' wording.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import median
from typing import Any, Protocol, runtime_checkable

from core.dataset.construct import STOPWORDS
from core.dataset.questions import search_text
from core.dataset.teacher import TeacherError
from core.dataset.verify import Verifier, contains, normalise, words
from core.errors import CotragError

REASONS = ("copied", "round_trip", "answer_in_question", "writer_failed")
"""Why a rewrite was not kept (the verifier's other checks add their own names)."""

FIELDS = (
    "question_rewritten",
    "rewrite_overlap",
    "source_question",
    "source_overlap",
    "rewrite_reason",
    "rewrite_attempt",
    "attempt_overlap",
)
"""What an example records of the step."""

REASON_LABELS = {
    "copied": "copied the source",
    "round_trip": "lost the round trip",
    "answer_in_question": "answer leaked",
    "writer_failed": "writer failed",
    "trace_failed": "no trace found the source",
}


@runtime_checkable
class QuestionWriter(Protocol):
    """A teacher that can restate a question (both teacher kinds can)."""

    @property
    def name(self) -> str: ...

    def rewrite(self, question: str, answer: str) -> str: ...


def writer_of(teacher: object) -> QuestionWriter:
    """The teacher as the rewrite step's writer (CotragError: there is none to ask)."""
    if not isinstance(teacher, QuestionWriter):
        raise CotragError(
            "Rewriting questions needs a question writer: choose the bundled model, a model "
            "file or an endpoint to write the questions (not templates only)."
        )
    return teacher


def content_words(text: str) -> frozenset[str]:
    """The words that carry meaning, crudely stemmed ("reads" and "read" are one word:
    a copy with another inflection is still a copy)."""
    return frozenset(_stem(w) for w in words(text) - STOPWORDS)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def overlap(question: str, sentence: str) -> float:
    """Share of the question's content words that the source sentence contains (0 for a
    question without content words). A fill-in is measured without its frame: it is the
    sentence itself."""
    mine = content_words(search_text(question))
    if not mine:
        return 0.0
    return round(len(mine & content_words(sentence)) / len(mine), 3)


@dataclass(frozen=True)
class Rewrite:
    question: str
    """The question the example keeps: the rewrite, or the verified question."""
    rank: int | None
    """The kept question's round-trip rank of the source chunk."""
    source_question: str
    rewritten: bool
    reason: str
    """Why the rewrite was not kept ('' when it was)."""
    attempt: str
    """What the writer wrote ('' when it failed)."""
    overlap: float
    source_overlap: float
    attempt_overlap: float | None = None
    """The word overlap of what the writer wrote (None when it wrote nothing)."""
    source_rank: int | None = None

    def not_kept(self, reason: str) -> Rewrite:
        """The verified question after all (its rewrite failed a later step: ``reason``)."""
        return replace(
            self,
            question=self.source_question,
            rank=self.source_rank,
            rewritten=False,
            reason=reason,
            overlap=self.source_overlap,
        )

    def fields(self) -> dict[str, Any]:
        """What the example records of the step."""
        values = (
            self.rewritten,
            self.overlap,
            self.source_question,
            self.source_overlap,
            self.reason,
            self.attempt,
            self.attempt_overlap,
        )
        return dict(zip(FIELDS, values, strict=True))


@dataclass
class Rewriter:
    writer: QuestionWriter
    verifier: Verifier
    max_overlap: float = 0.6

    def restate(
        self,
        question: str,
        answer: str,
        sentence: str,
        source_text: str,
        chunk_id: str,
        rank: int | None,
    ) -> Rewrite:
        """The writer's restatement of ``question`` when it passes, else ``question``."""
        before = overlap(question, sentence)

        def kept_as_is(reason: str, attempt: str = "") -> Rewrite:
            measured = overlap(attempt, sentence) if attempt else None
            return Rewrite(
                question, rank, question, False, reason, attempt, before, before, measured, rank
            )

        try:
            attempt = self.writer.rewrite(question, answer)
        except TeacherError:
            return kept_as_is("writer_failed")
        if not attempt.endswith("?") or not content_words(attempt):
            return kept_as_is("writer_failed", attempt)
        if contains(attempt, answer):
            return kept_as_is("answer_in_question", attempt)
        after = overlap(attempt, sentence)
        if normalise(attempt) == normalise(question) or after > self.max_overlap:
            return kept_as_is("copied", attempt)
        rejection, new_rank = self.verifier.check(attempt, answer, source_text, chunk_id)
        if rejection is not None:
            return kept_as_is(rejection.reason, attempt)
        return Rewrite(attempt, new_rank, question, True, "", attempt, after, before, after, rank)


def summary(examples: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The rewrite step's figures over a dataset's examples (None when it never ran):
    how many were rewritten, why the others were not, and the word overlap with the source
    sentence before and after (median and a histogram in steps of 0.2)."""
    tried = [e for e in examples if "question_rewritten" in e]
    if not tried:
        return None
    before = [float(e.get("source_overlap", 0.0)) for e in tried]
    after = [float(e.get("rewrite_overlap", 0.0)) for e in tried]
    reasons: dict[str, int] = {}
    for example in tried:
        reason = str(example.get("rewrite_reason", ""))
        if not example.get("question_rewritten") and reason:
            reasons[reason] = reasons.get(reason, 0) + 1
    rewritten = sum(bool(e.get("question_rewritten")) for e in tried)
    return {
        "tried": len(tried),
        "rewritten": rewritten,
        "kept_rate": round(rewritten / len(tried), 3),
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "overlap_median_before": round(median(before), 3),
        "overlap_median_after": round(median(after), 3),
        "overlap_before": _buckets(before),
        "overlap_after": _buckets(after),
    }


def _buckets(values: list[float]) -> dict[str, int]:
    out = {f"{low / 10:.1f}–{(low + 2) / 10:.1f}": 0 for low in range(0, 10, 2)}
    labels = list(out)
    for value in values:
        out[labels[min(4, int(value * 5))]] += 1
    return out
