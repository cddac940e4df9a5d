"""Checks a question must pass before it becomes an example; each failure is a reason.

- the answer occurs in its source chunk (normalised match);
- the question does not contain its answer;
- lengths within bounds;
- not a near-duplicate of a question already kept;
- round trip: searching the knowledge base with the question returns the source chunk
  within the top k (the consistency filter of PAQ and InPars).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from core.knowledge.types import Hit

REASONS = (
    "answer_not_in_source",
    "answer_in_question",
    "question_length",
    "answer_length",
    "near_duplicate",
    "round_trip",
)

MIN_QUESTION_CHARS = 12
MAX_QUESTION_CHARS = 300
MAX_ANSWER_CHARS = 120
DUPLICATE_JACCARD = 0.8

_WORD_RE = re.compile(r"\w+", re.UNICODE)


def normalise(text: str) -> str:
    """Case, backticks, quotes and spacing do not matter for a match."""
    text = re.sub(r"[`*_\"“”‘’']", "", text.casefold())
    return " ".join(text.split())


def contains(haystack: str, needle: str) -> bool:
    needle = normalise(needle)
    if not needle:
        return False
    hay = normalise(haystack)
    if re.fullmatch(r"\w+", needle):
        return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", hay) is not None
    return needle in hay


def words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD_RE.findall(text.casefold()) if len(w) > 1)


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str


@dataclass
class Verifier:
    """Holds the questions kept so far (for the duplicate check) and the search to use."""

    search: Callable[[str, int], list[Hit]]
    k: int = 5
    kept: list[frozenset[str]] = field(default_factory=list)

    def check(
        self, question: str, answer: str, source_text: str, chunk_id: str
    ) -> tuple[Rejection | None, int | None]:
        """``(None, rank)`` when the question passes (rank of the source chunk, 1-based,
        in the round-trip search), else ``(Rejection, rank or None)``."""
        if not MIN_QUESTION_CHARS <= len(question) <= MAX_QUESTION_CHARS:
            return Rejection("question_length", f"{len(question)} characters"), None
        if not 0 < len(answer) <= MAX_ANSWER_CHARS:
            return Rejection("answer_length", f"{len(answer)} characters"), None
        if not contains(source_text, answer):
            return Rejection("answer_not_in_source", answer), None
        if len(normalise(answer)) >= 3 and contains(question, answer):
            return Rejection("answer_in_question", answer), None
        mine = words(question)
        for other in self.kept:
            union = mine | other
            if union and len(mine & other) / len(union) >= DUPLICATE_JACCARD:
                return Rejection("near_duplicate", question), None
        hits = self.search(question, self.k)
        rank = next((i for i, hit in enumerate(hits, 1) if hit.id == chunk_id), None)
        if rank is None:
            return Rejection("round_trip", f"not in the top {self.k}"), None
        return None, rank

    def keep(self, question: str) -> None:
        self.kept.append(words(question))
