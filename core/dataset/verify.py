"""Checks a question must pass before it becomes an example; each failure is a reason.

- the answer occurs in its source chunk (normalised match);
- the question does not contain its answer;
- lengths within bounds;
- not a near-duplicate of a question already kept;
- round trip: searching the knowledge base with the question returns the source chunk
  within the top k (the consistency filter of PAQ and InPars).

A two-hop question (:meth:`Verifier.check_twohop`) also needs: the bridge term in the first
chunk and not in the question; the answer not in the first chunk (else one chunk answers);
the question's search finds the first chunk, ranked above the second (else one hop does), and
the refined query for the bridge term finds the second.
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
    "bridge_not_in_first",
    "bridge_in_question",
    "answer_in_first",
    "one_hop",
    "round_trip_first_hop",
    "round_trip_second_hop",
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
        rejection = self._basic(question, answer, source_text)
        if rejection is not None:
            return rejection, None
        if self._duplicate(question):
            return Rejection("near_duplicate", question), None
        hits = self.search(question, self.k)
        rank = next((i for i, hit in enumerate(hits, 1) if hit.id == chunk_id), None)
        if rank is None:
            return Rejection("round_trip", f"not in the top {self.k}"), None
        return None, rank

    def _basic(self, question: str, answer: str, source_text: str) -> Rejection | None:
        if not MIN_QUESTION_CHARS <= len(question) <= MAX_QUESTION_CHARS:
            return Rejection("question_length", f"{len(question)} characters")
        if not 0 < len(answer) <= MAX_ANSWER_CHARS:
            return Rejection("answer_length", f"{len(answer)} characters")
        if not contains(source_text, answer):
            return Rejection("answer_not_in_source", answer)
        if len(normalise(answer)) >= 3 and contains(question, answer):
            return Rejection("answer_in_question", answer)
        return None

    def check_twohop(
        self,
        question: str,
        answer: str,
        *,
        term: str,
        first_text: str,
        second_text: str,
        first_ids: frozenset[str],
        second_ids: frozenset[str],
        second_query: str,
    ) -> tuple[Rejection | None, int | None]:
        """``(None, rank)`` when a bridge question passes (rank of the first chunk in the
        question's search), else ``(Rejection, None)``. ``*_ids`` are a chunk and its
        verbatim copies: finding any of them is finding it."""
        rejection = self._basic(question, answer, second_text)
        if rejection is not None:
            return rejection, None
        if not contains(first_text, term):
            return Rejection("bridge_not_in_first", term), None
        if contains(question, term):
            return Rejection("bridge_in_question", term), None
        if contains(first_text, answer):
            return Rejection("answer_in_first", answer), None
        if self._duplicate(question):
            return Rejection("near_duplicate", question), None
        hits = self.search(question, self.k)
        rank = next((i for i, hit in enumerate(hits, 1) if hit.id in first_ids), None)
        if rank is None:
            return Rejection("round_trip_first_hop", f"not in the top {self.k}"), None
        ahead = next((i for i, hit in enumerate(hits, 1) if hit.id in second_ids), None)
        if ahead is not None and ahead < rank:
            # The question leads to the answer's chunk before the one naming the term: one
            # search answers it. (Shown after it, the answer's chunk is a passage the
            # searcher cannot yet tell is about the term.)
            return Rejection(
                "one_hop", "the question's search ranks the answer's chunk first"
            ), None
        if not any(hit.id in second_ids for hit in self.search(second_query, self.k)):
            return Rejection(
                "round_trip_second_hop", f"{second_query!r}: not in the top {self.k}"
            ), None
        return None, rank

    def _duplicate(self, question: str) -> bool:
        mine = words(question)
        for other in self.kept:
            union = mine | other
            if union and len(mine & other) / len(union) >= DUPLICATE_JACCARD:
                return True
        return False

    def keep(self, question: str) -> None:
        self.kept.append(words(question))
