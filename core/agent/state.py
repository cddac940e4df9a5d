"""What one agent run and one search turn hold while the loop works on them.

The run (its question, mode, counters, the passages shown and vetted), the search
turn (its session, parser and who wrote which span), and how one stream call ended.
Imports the agent's parser and events and ``core.llm.base``; never the loop itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal, Protocol

from core.agent.events import Span
from core.agent.parser import TagParser
from core.errors import CotragError
from core.knowledge.types import Hit
from core.llm.base import GenStats, Session

Mode = Literal["loop", "rag", "closed"]


class Retriever(Protocol):
    def search(self, query: str, k: int) -> list[Hit]: ...


class NoKnowledgeBase(CotragError, ValueError):
    """A mode that searches was asked for without anything to search."""


class SpanLog:
    """Who wrote each stretch of a session's text past ``mark``: whatever the loop did not
    append itself, the model generated."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.mark = len(session.text)
        self._covered = self.mark
        self.spans: list[Span] = []

    def _flush_model(self) -> None:
        text = self.session.text
        if len(text) > self._covered:
            self.spans.append(Span("model", text[self._covered :]))
            self._covered = len(text)

    def write(self, text: str, kind: str) -> None:
        """Append loop-written text to the session."""
        self._flush_model()
        self.session.append(text)
        self.spans.append(Span("loop", text, kind))
        self._covered = len(self.session.text)

    def finish(self) -> tuple[str, tuple[Span, ...]]:
        self._flush_model()
        return self.session.text[self.mark :], tuple(self.spans)


@dataclass
class StreamOutcome:
    """How one stream call of the search turn ended."""

    finish: str = "eos"
    stop: str | None = None
    closed: list[str] = field(default_factory=list)
    """Tags of the blocks that were closed during the call, in order."""
    forged: bool = False
    too_long: str | None = None
    """The block the loop cut because it passed loop.max_block_tokens."""
    cancelled: bool = False


@dataclass
class RunState:
    question: str
    mode: Mode
    cancel: threading.Event | None
    gen: GenStats = field(default_factory=GenStats)
    rounds: int = 0
    trace: str = ""
    spans: tuple[Span, ...] = ()
    passages: dict[int, Hit] = field(default_factory=dict)
    """Every passage shown, by its global number."""
    vetted: list[int] = field(default_factory=list)
    seeded: list[int] = field(default_factory=list)
    """Passages the loop's own first search (with the question) showed."""
    answered_by: str = ""
    """The model the answer stage ran on (empty until it runs)."""
    answer_tokens: int = 0
    """Tokens the answer stage wrote."""

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


@dataclass
class TurnState:
    """The state of one search turn."""

    session: Session
    parser: TagParser
    log: SpanLog
    generated: int = 0
    wasted: int = 0
    queries: set[str] = field(default_factory=set)
    numbers: dict[str, int] = field(default_factory=dict)
    shown: set[int] = field(default_factory=set)
