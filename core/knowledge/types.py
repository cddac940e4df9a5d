"""Plain data that flows through the knowledge pipeline: document → chunks → hits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Section:
    """A run of a document's text under one heading path.

    ``start``/``end`` are character offsets into ``Document.text``.
    """

    heading_path: tuple[str, ...]
    start: int
    end: int


@dataclass
class Document:
    """Text extracted from one file, with its structure.

    ``text`` is the normalised plain text the chunk offsets point into. ``sections``
    cover the text in order (a document without headings has one section with an
    empty heading path). ``pages`` optionally maps page number (1-based) to its
    start offset (PDF).
    """

    source: str
    text: str
    sections: list[Section]
    title: str = ""
    pages: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    markup: str = ""
    """``markdown`` when ``text`` is Markdown source: chunks are cut from its clean text."""


@dataclass(frozen=True)
class DocChunk:
    """One piece of a document, ready to embed."""

    source: str
    text: str
    index: int
    """Position of the chunk in its document (0-based)."""
    start: int
    end: int
    """Character offsets of the chunk in ``Document.text`` (for Markdown, of the original
    text its clean text came from)."""
    heading_path: tuple[str, ...] = ()
    page: int | None = None

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)


@dataclass(frozen=True)
class Hit:
    """One search result with its score and where it came from."""

    id: str
    text: str
    score: float
    source: str
    heading: str = ""
    chunk_index: int = 0
    start: int = 0
    end: int = 0
    method: str = "dense"
    """dense, bm25 or hybrid."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        """Short citation label: ``file.md#3``."""
        name = self.source.replace("\\", "/").rsplit("/", 1)[-1]
        return f"{name}#{self.chunk_index}"
