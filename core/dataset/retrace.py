"""Another dataset's examples made again through today's retrieval (after a re-embed, say):
the same verified question, answer, gold chunk and seed key, a new trace whose passages are
what the search returns now."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from core.dataset import twohop
from core.dataset.candidates import TWOHOP, Candidate
from core.dataset.decisions import Decisions
from core.dataset.progress import GenEvent, Stopwatch
from core.dataset.rewrite import FIELDS as REWRITE_FIELDS
from core.dataset.seeds import Seed
from core.dataset.tracing import Tracer
from core.dataset.verify import Rejection, normalise


def retrace(
    tracer: Tracer,
    decisions: Decisions,
    decided: set[str],
    chunks: list[tuple[str, str, dict[str, Any]]],
    examples: list[dict[str, Any]],
    cancel: threading.Event | None,
) -> Iterator[GenEvent]:
    """Each example not decided before (by its seed key, so the same unanswerable draw)
    traced again; one whose gold chunk is gone or whose checks now fail is rejected with
    its reason."""
    by_id = {cid: (text, meta) for cid, text, meta in chunks}
    by_text = {(str(meta.get("source", "")), normalise(text)): cid for cid, text, meta in chunks}
    accepted = rejected = 0
    clock = Stopwatch()
    for index, example in enumerate(examples, 1):
        if cancel is not None and cancel.is_set():
            break
        key = str(example.get("seed_key", ""))
        if not key or key in decided:
            continue
        outcome = _retraced(tracer, _relinked(example, by_id, by_text), key, by_id)
        if isinstance(outcome, Rejection):
            rejected += 1
            yield decisions.reject(
                key,
                outcome,
                {
                    "question": example.get("question", ""),
                    "answer": example.get("answer", ""),
                    "kind": example.get("kind", ""),
                },
            )
        else:
            accepted += 1
            yield decisions.accept(outcome)
        yield clock.through_items(accepted, rejected, accepted + rejected, index, len(examples))


def _retraced(
    tracer: Tracer,
    example: dict[str, Any],
    key: str,
    by_id: dict[str, tuple[str, dict[str, Any]]],
) -> dict[str, Any] | Rejection:
    cid = str(example.get("chunk_id", ""))
    try:
        if example.get("kind") == TWOHOP:
            asked = (
                str(example["question"]),
                str(example.get("question_origin", "template")),
                str(example.get("teacher_failure", "")),
            )
            found = tracer.twohop(_bridge_of(example, by_id), asked)
            if not isinstance(found, Rejection):
                found["seed_key"] = key  # the source example's, so a re-run skips it
            return found
        text, meta = by_id[cid]
    except KeyError as exc:
        return Rejection(
            "gold_chunk_gone", f"chunk {exc.args[0]} is no longer in the knowledge base"
        )
    found = tracer.verified(
        Seed.of_chunk(cid, text, meta),
        str(example["question"]),
        str(example["answer"]),
        str(example.get("sentence", "")),
        str(example.get("kind", "lookup")),
        key,
        question_origin=str(example.get("question_origin", "template")),
        teacher_failure=str(example.get("teacher_failure", "")),
    )
    if not isinstance(found, Rejection):
        # The same question: what the rewrite step recorded of it still holds.
        found.update({k: example[k] for k in REWRITE_FIELDS if k in example})
    return found


def _relinked(
    example: dict[str, Any],
    by_id: dict[str, tuple[str, dict[str, Any]]],
    by_text: dict[tuple[str, str], str],
) -> dict[str, Any]:
    """The example with gold chunk ids that no longer exist (the document was re-chunked
    since, under new ids) replaced by today's chunk with the same source and text."""
    shown = {
        str(h.get("id", "")): h
        for r in (example.get("record") or {}).get("retrievals", [])
        for h in r.get("hits", [])
    }

    def now(cid: str) -> str:
        if cid in by_id or cid not in shown:
            return cid
        hit = shown[cid]
        return by_text.get((str(hit.get("source", "")), normalise(str(hit.get("text", "")))), cid)

    out = dict(example)
    out["chunk_id"] = now(str(example.get("chunk_id", "")))
    if example.get("chunk_ids"):
        out["chunk_ids"] = [now(str(c)) for c in example["chunk_ids"]]
    return out


def _bridge_of(
    example: dict[str, Any], by_id: dict[str, tuple[str, dict[str, Any]]]
) -> twohop.Bridge:
    """A two-hop example's bridge, rebuilt from its record and today's chunks (KeyError: a
    chunk it names is gone)."""

    def part(cid: str) -> twohop.Part:
        text, meta = by_id[cid]
        return twohop.Part(
            cid,
            text,
            str(meta.get("source", "")),
            str(meta.get("doc_hash", "")),
            str(meta.get("heading", "")),
        )

    def copies(text: str) -> frozenset[str]:
        return frozenset(c for c, (t, _) in by_id.items() if t == text)

    info = example.get("bridge") or {}
    first = part(str((example.get("chunk_ids") or [info.get("chunk_id", "")])[0]))
    second = part(str(example.get("chunk_id", "")))
    fact = Candidate(
        str(example.get("sentence", "")),
        str(example["answer"]),
        str(info.get("fact_kind", "lookup")),
    )
    return twohop.Bridge(
        first,
        str(info.get("sentence", "")),
        str(info.get("written", info.get("term", ""))),
        second,
        fact,
        copies(first.text),
        copies(second.text),
    )
