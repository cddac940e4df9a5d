"""Typed events of one agent run.

A GUI, the CLI and the dataset generator consume the same stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from core.knowledge.types import Hit

Tag = Literal["think", "query", "query_res", "results", "answer"]


@dataclass(frozen=True)
class BlockStart:
    tag: str


@dataclass(frozen=True)
class Token:
    tag: str
    text: str


@dataclass(frozen=True)
class BlockEnd:
    tag: str
    text: str
    """The whole block's text (without the tags)."""


@dataclass(frozen=True)
class Retrieval:
    query: str
    hits: list[Hit]
    numbers: list[int] = field(default_factory=list)
    """The passage number ([n]) given to each hit, in order; shared across rounds."""


@dataclass(frozen=True)
class ProtocolError:
    kind: str
    """unclosed_tag, unknown_tag, empty_query, repeated_query, no_tags, block_too_long,
    max_rounds, max_total_tokens, stray_text, forged_block, results_cite_nothing."""
    detail: str


@dataclass(frozen=True)
class Answer:
    text: str
    citations: list[int]
    """Passage numbers cited as [n] that exist among the passages given to the answer stage."""


@dataclass
class RunStats:
    rounds: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    generation_seconds: float = 0.0
    protocol_errors: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.generation_seconds if self.generation_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens_per_s"] = round(self.tokens_per_s, 2)
        return data


@dataclass(frozen=True)
class Finished:
    reason: str
    """answered, retrieved (retriever mode), cancelled, error."""
    stats: RunStats
    trace: str = ""
    """The search turn exactly as the model saw it: its own text, the tags the loop
    closed for it and the ``<query_res>`` blocks the loop injected (loop mode only)."""
    error: str = ""
    """When reason == "error": the sentence to show (the traceback goes to the log)."""


E = TypeVar("E")

Event = BlockStart | Token | BlockEnd | Retrieval | ProtocolError | Answer | Finished


def coalesce_tokens(events: Iterable[E]) -> list[E]:
    """Join runs of Token events of the same block: one insert (or one event) per run."""
    merged: list[E] = []
    for event in events:
        last = merged[-1] if merged else None
        if isinstance(event, Token) and isinstance(last, Token) and last.tag == event.tag:
            merged[-1] = Token(event.tag, last.text + event.text)  # type: ignore[assignment]
        else:
            merged.append(event)
    return merged
