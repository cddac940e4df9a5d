"""Cut a document into chunks that follow its structure.

A chunk never crosses a section (heading) boundary. Inside a section the text
is split on the coarsest break that yields pieces short enough: paragraphs,
then sentences and lines, then words, then hard character cuts, so even a
multi-megabyte single line chunks in linear time. Pieces are packed greedily
up to ``size`` characters, and consecutive chunks of a section share about
``overlap`` characters, starting at a word when there is one.

Chunk text is an exact slice of ``Document.text`` (``text[start:end]``): the
offsets let the app highlight a passage in its document. Markdown is the
exception: chunks are cut from its clean text (no HTML comments, link targets or
link definitions, see :mod:`core.knowledge.cleaning`) and ``start``/``end`` are
the original offsets that clean text came from. Nothing is prefixed; the store
adds the heading to the text it embeds.

What comes out depends on this code, the cleaning, the loaders' text extraction and
the chunk settings; :func:`pipeline_fingerprint` names that combination. A knowledge
base records it per document, and the indexer re-chunks a document whose fingerprint
differs, even when its bytes did not change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from bisect import bisect_right
from collections.abc import Iterator

from core.config import ChunkingConfig
from core.knowledge.cleaning import clean_markdown
from core.knowledge.types import DocChunk, Document, Section

Span = tuple[int, int]

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# After sentence punctuation (and closing quotes/brackets), or at any line break.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;:…。！？])\s+|(?<=[.!?…][\"'”’)\]])\s+|\s*\n\s*")
_WORD_BREAK = re.compile(r"\s+")
_SPLITTERS = (_PARAGRAPH_BREAK, _SENTENCE_BREAK, _WORD_BREAK)
_WORD_START = re.compile(r"\s(?=\S)")

PIPELINE_VERSION = 1
"""Bump whenever a change to chunking, cleaning (``core.knowledge.cleaning``), the loaders'
text extraction (``core.knowledge.loaders``) or the text the store embeds
(``records.embedding_text``) changes what comes out for the same file: every knowledge
base then re-chunks (and re-embeds) its documents on its next index run."""


def pipeline_fingerprint(config: ChunkingConfig) -> str:
    """A short stable hash of :data:`PIPELINE_VERSION` and the chunk settings."""
    payload = json.dumps(
        {"version": PIPELINE_VERSION, "chunking": dataclasses.asdict(config)}, sort_keys=True
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def chunk_document(doc: Document, config: ChunkingConfig) -> list[DocChunk]:
    """Chunks of ``doc`` in reading order, indexed 0.. after short ones are dropped.

    A document whose every chunk is below ``config.min_chars`` keeps them anyway,
    so a short note is still findable rather than silently missing.
    """
    view = clean_markdown(doc.text) if doc.markup == "markdown" else None
    text = view.text if view is not None else doc.text
    sections = doc.sections or [Section((), 0, len(doc.text))]
    if view is not None:
        sections = [
            Section(s.heading_path, view.clean_offset(s.start), view.clean_offset(s.end))
            for s in sections
        ]
    spans: list[tuple[Span, tuple[str, ...]]] = []
    for section in sections:
        start, end = max(0, section.start), min(len(text), section.end)
        for span in _pack(text, _pieces(text, start, end, config.size), config):
            spans.append((span, tuple(section.heading_path)))
    kept = [item for item in spans if item[0][1] - item[0][0] >= config.min_chars]
    if not kept:
        kept = spans
    chunks: list[DocChunk] = []
    for index, ((start, end), heading_path) in enumerate(kept):
        first, last = view.original_span(start, end) if view is not None else (start, end)
        chunks.append(
            DocChunk(
                source=doc.source,
                text=text[start:end],
                index=index,
                start=first,
                end=last,
                heading_path=heading_path,
                page=_page_of(doc.pages, first),
            )
        )
    return chunks


def _page_of(pages: list[int], offset: int) -> int | None:
    if not pages:
        return None
    return max(1, bisect_right(pages, offset))


def _trim(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _pieces(text: str, start: int, end: int, size: int, level: int = 0) -> Iterator[Span]:
    """Trimmed spans of at most ``size`` characters covering the words of text[start:end]."""
    start, end = _trim(text, start, end)
    if start >= end:
        return
    if end - start <= size:
        yield start, end
        return
    if level >= len(_SPLITTERS):
        for cut in range(start, end, size):
            yield cut, min(cut + size, end)
        return
    cursor = start
    for brk in _SPLITTERS[level].finditer(text, start, end):
        if brk.start() > cursor:
            yield from _pieces(text, cursor, brk.start(), size, level + 1)
        cursor = max(cursor, brk.end())
    if cursor < end:
        yield from _pieces(text, cursor, end, size, level + 1)


def _pack(text: str, pieces: Iterator[Span], config: ChunkingConfig) -> Iterator[Span]:
    """Greedily join consecutive pieces into chunks of at most ``config.size`` characters."""
    current: Span | None = None
    for piece_start, piece_end in pieces:
        if current is None:
            current = (piece_start, piece_end)
        elif piece_end - current[0] <= config.size:
            current = (current[0], piece_end)
        else:
            yield current
            start = _overlap_start(text, current, (piece_start, piece_end), config)
            current = (start, piece_end)
    if current is not None:
        yield current


def _overlap_start(text: str, previous: Span, piece: Span, config: ChunkingConfig) -> int:
    """Where the chunk that begins with ``piece`` starts, reaching back into ``previous``."""
    # Never so far back that the new chunk overflows, and never back to the previous
    # chunk's start (the new chunk would then repeat it whole).
    low = max(previous[1] - config.overlap, previous[0] + 1, piece[1] - config.size)
    if config.overlap == 0 or low >= previous[1]:
        return piece[0]
    if text[low - 1].isspace():
        return _trim(text, low, piece[0])[0]
    word = _WORD_START.search(text, low, previous[1])
    # Half a word of overlap helps nobody: without a word start in reach, start clean.
    return word.end() if word is not None else piece[0]
