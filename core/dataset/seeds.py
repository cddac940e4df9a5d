"""Seeds: the chunks a generation run asks about, long enough to hold a fact, spread over
the chosen documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.dataset.spec import GenerateSpec
from core.dataset.spread import spread_over_documents

MIN_SEED_CHARS = 200
"""Chunks shorter than this rarely hold a fact worth a question."""


@dataclass(frozen=True)
class Seed:
    chunk_id: str
    text: str
    source: str
    doc_hash: str
    heading: str

    @classmethod
    def of_chunk(cls, chunk_id: str, text: str, meta: dict[str, Any]) -> Seed:
        return cls(
            chunk_id,
            text,
            str(meta.get("source", "")),
            str(meta.get("doc_hash", "")),
            str(meta.get("heading", "")),
        )


def seeds_from(
    chunks: list[tuple[str, str, dict[str, Any]]], spec: GenerateSpec, *, first: str = ""
) -> list[Seed]:
    """Chunks long enough to ask about, spread over the documents: round robin over the
    documents in a seeded order (the document ``first`` leads it), each document's chunks
    shuffled with the same seed."""
    by_doc: dict[str, list[Seed]] = {}
    for chunk_id, text, meta in chunks:
        source = str(meta.get("source", ""))
        if not spec.chosen(source):
            continue
        if len(text) < MIN_SEED_CHARS:
            continue
        by_doc.setdefault(source, []).append(Seed.of_chunk(chunk_id, text, meta))
    return spread_over_documents(by_doc, spec.seed, lambda s: s.chunk_id, first=first)
