"""How a chunk is recorded in Chroma: its id, its metadata, the text that is embedded,
and the ``Hit`` read back from a stored record.

The store writes these records and search, re-embedding and the dataset tools read them;
all of them import from here, so none needs another's module for them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from core.knowledge.types import DocChunk, Hit

PIPELINE_KEY = "pipeline"
"""A chunk's metadata key for its pipeline; chunks from before pipelines lack it."""

DocKey = tuple[str, str, str]
"""``(source, doc_hash, pipeline)``: one version of a document's chunks."""


def chunk_id(source: str, doc_hash: str, index: int, pipeline: str = "") -> str:
    """Stable per (file, content, pipeline, position): two files with equal bytes do not
    collide, and the same file chunked another way gets other ids (never another text
    under an id some version of the vectors already holds)."""
    src = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]
    if not pipeline:  # written before pipelines existed
        return f"{src}-{doc_hash[:16]}-{index}"
    return f"{src}-{doc_hash[:16]}-{pipeline}-{index}"


def chunk_metadata(chunk: DocChunk, doc_hash: str, pipeline: str = "") -> dict[str, str | int]:
    meta: dict[str, str | int] = {
        "source": chunk.source,
        "doc_hash": doc_hash,
        "chunk_index": chunk.index,
        "start": chunk.start,
        "end": chunk.end,
        "heading": chunk.heading,
    }
    if pipeline:
        meta[PIPELINE_KEY] = pipeline
    # Chroma metadata cannot hold None: a missing key means "no page".
    if chunk.page is not None:
        meta["page"] = chunk.page
    return meta


def chunk_key(meta: dict[str, Any]) -> DocKey:
    """The document version a stored chunk belongs to, from its Chroma metadata."""
    return (
        str(meta.get("source", "")),
        str(meta.get("doc_hash", "")),
        str(meta.get(PIPELINE_KEY, "")),
    )


def embedding_text(chunk: DocChunk) -> str:
    """What gets embedded: the heading path helps a passage match questions about its topic."""
    # Changing this changes vectors under unchanged ids: bump chunking.PIPELINE_VERSION.
    return f"{chunk.heading}\n\n{chunk.text}" if chunk.heading else chunk.text


def chunk_metadata_text(text: str, meta: dict[str, Any]) -> str:
    """``embedding_text`` of a stored chunk (its text and Chroma metadata)."""
    heading = str(meta.get("heading", "") or "")
    return f"{heading}\n\n{text}" if heading else text


def hit_from(chunk_id: str, text: str, meta: dict[str, Any], score: float, method: str) -> Hit:
    extra: dict[str, Any] = {"doc_hash": meta.get("doc_hash", "")}
    if "page" in meta:
        extra["page"] = int(meta["page"])
    return Hit(
        id=chunk_id,
        text=text,
        score=float(score),
        source=str(meta.get("source", "")),
        heading=str(meta.get("heading", "")),
        chunk_index=int(meta.get("chunk_index", 0)),
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", 0)),
        method=method,
        extra=extra,
    )
