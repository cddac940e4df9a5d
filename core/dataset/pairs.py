"""Imported question/answer pairs (a file, saved chat conversations) through the same checks
and the real retrieval as generated questions: the source chunk is the best-ranked passage
that contains the answer, and a user's own cited answer becomes the answer stage when it
fits the new trace."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.agent.record import RunRecord
from core.dataset.candidates import sentences
from core.dataset.decisions import Decisions
from core.dataset.editing import EditRejected, edited, renumber_citations
from core.dataset.progress import GenEvent, Stopwatch
from core.dataset.seeds import Seed
from core.dataset.tracing import Tracer
from core.dataset.verify import Rejection, contains


@dataclass(frozen=True)
class ImportedPair:
    question: str
    answer: str
    context: str = ""
    source: str = ""
    origin: str = "import"
    """The example's ``question_origin``: ``import`` (a file) or ``conversation``."""
    ref: str = ""
    """Where the pair came from (``conversation ID turn N``), kept on its example or
    rejection so a user can find it again."""
    cited: str = ""
    """The user's own cited answer: the answer stage, when it fits the new trace."""
    cited_chunks: tuple[tuple[int, str], ...] = ()
    """``(number, chunk id)`` of the passages ``cited`` cites, in the run it was written
    for: its ``[n]`` are renumbered onto the new trace (empty: used as written)."""


def pair_key(pair: ImportedPair) -> str:
    """The key an imported pair is decided under (a re-run skips it)."""
    digest = hashlib.sha1(f"{pair.question}\0{pair.answer}".encode(), usedforsecurity=False)
    return "import|" + digest.hexdigest()


def imported_before(pairs: list[ImportedPair], decided: set[str]) -> int:
    """How many of ``pairs`` a dataset already decided (an earlier import)."""
    return sum(pair_key(pair) in decided for pair in pairs)


def run_pairs(
    tracer: Tracer,
    decisions: Decisions,
    decided: set[str],
    pairs: list[ImportedPair],
    cancel: threading.Event | None,
) -> Iterator[GenEvent]:
    """Each pair not decided before, checked and traced; its example or rejection stored."""
    accepted = rejected = new = 0
    clock = Stopwatch()
    k = tracer.spec.k or tracer.config.retrieval.k
    for index, pair in enumerate(pairs, 1):
        if cancel is not None and cancel.is_set():
            break
        key = pair_key(pair)
        if key in decided:
            continue
        outcome = _imported(tracer, pair, key, k)
        if isinstance(outcome, Rejection):
            rejected += 1
            yield decisions.reject(
                key,
                outcome,
                {
                    "question": pair.question,
                    "answer": pair.answer,
                    "kind": "imported",
                    "question_origin": pair.origin,
                    **({"import_ref": pair.ref} if pair.ref else {}),
                },
            )
        else:
            accepted += 1
            new += 1
            yield decisions.accept(outcome)
        yield clock.through_items(accepted, rejected, new, index, len(pairs))


def _imported(tracer: Tracer, pair: ImportedPair, key: str, k: int) -> dict[str, Any] | Rejection:
    hits = tracer.verifier.search(pair.question, k)
    gold = next((h for h in hits if contains(h.text, pair.answer)), None)
    if gold is None:
        return Rejection(
            "answer_not_found",
            f"no passage in the top {k} for the question contains the answer",
        )
    sentence = next(
        (s for s in sentences(gold.text) if contains(s, pair.answer)),
        " ".join(gold.text.split()),
    )
    seed = Seed(gold.id, gold.text, gold.source, str(gold.extra.get("doc_hash", "")), gold.heading)
    outcome = tracer.verified(
        seed,
        pair.question,
        pair.answer,
        sentence,
        "imported",
        key,
        question_origin=pair.origin,
    )
    if isinstance(outcome, Rejection):
        return outcome
    if pair.ref:
        outcome["import_ref"] = pair.ref
    if pair.cited:
        outcome = _with_cited(outcome, pair)
    return outcome


def _with_cited(example: dict[str, Any], pair: ImportedPair) -> dict[str, Any]:
    """The example with the user's own cited answer as its answer stage, its ``[n]``
    renumbered onto the new trace's passages; where it does not fit (it cites a passage
    the new trace does not vet), the constructed answer stays and ``cited_note`` says why."""
    cited = pair.cited
    if pair.cited_chunks:
        record = RunRecord.from_dict(example["record"])
        by_chunk = {record.passages[n].id: n for n in record.results if n in record.passages}
        mapping = {old: by_chunk[chunk] for old, chunk in pair.cited_chunks if chunk in by_chunk}
        renumbered = renumber_citations(cited, mapping)
        if renumbered is None:
            example["cited_note"] = (
                "the corrected cited answer cites a passage this trace does not vet"
            )
            return example
        cited = renumbered
    try:
        return edited(example, question=pair.question, answer=pair.answer, cited=cited)
    except EditRejected as exc:
        example["cited_note"] = str(exc)
        return example
