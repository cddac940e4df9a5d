"""Typed events of one agent run.

A GUI, the CLI and the dataset generator consume the same stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from core.knowledge.types import Hit

Tag = Literal["think", "query", "query_res", "results", "answer"]
Author = Literal["model", "loop"]
"""Who wrote a piece of the trace: the model generated it, or the loop wrote it (passages,
notes, closing tags it added, the first query it searched with)."""

BLOCK_KINDS = ("", "passages", "note", "seed")
"""What a block is beyond its tag: a ``<query_res>`` holds ``passages`` or a loop ``note``;
a ``<query>`` of kind ``seed`` is the question the loop searched with itself."""


@dataclass(frozen=True)
class BlockStart:
    tag: str
    author: Author = "model"
    kind: str = ""
    """See :data:`BLOCK_KINDS`."""


@dataclass(frozen=True)
class Token:
    tag: str
    text: str


@dataclass(frozen=True)
class BlockEnd:
    tag: str
    text: str
    """The whole block's text (without the tags)."""
    author: Author = "model"
    kind: str = ""


@dataclass(frozen=True)
class Span:
    """A stretch of the search turn's text and who wrote it; the trace is their join."""

    author: Author
    text: str
    kind: str = ""
    """For loop spans: passages, note, seed (the first query), tag (a tag the loop closed
    or opened for the model)."""

    def to_dict(self) -> dict[str, str]:
        return {"author": self.author, "kind": self.kind, "text": self.text}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Span:
        author = str(data.get("author", "model"))
        if author not in ("model", "loop"):
            raise ValueError(f"span author must be model or loop, not {author!r}")
        return cls(author, str(data["text"]), str(data.get("kind", "")))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Started:
    """The first event of a run: what the run is made of, for the record and for training."""

    question: str
    mode: str
    info: dict[str, Any]
    """model (path and name), template_version, settings (grammar, bounds, first_query,
    retrieval method and k), knowledge base (name, id) and embedder."""


@dataclass(frozen=True)
class Prompt:
    """The messages an engine was given for one stage: ``search`` (the loop's turn),
    ``answer`` or ``closed``; ``text`` is the prompt after the chat template."""

    stage: str
    messages: list[dict[str, str]]
    text: str = ""


@dataclass(frozen=True)
class Retrieval:
    query: str
    hits: list[Hit]
    numbers: list[int] = field(default_factory=list)
    """The passage number ([n]) given to each hit, in order; shared across rounds."""


@dataclass(frozen=True)
class Vetted:
    """The passage numbers that go to the answer stage: those ``<results>`` cited (or, when
    it cited none, every passage shown; in rag mode every passage retrieved)."""

    numbers: list[int]
    source: str = "results"
    """results (the model vetted them), results+seed (those, then the rest of the loop's
    own first search, when the loop seeded it), fallback (it cited nothing usable: every
    passage shown), none (the model said no passage answers: ``<results> none </results>``),
    all (rag)."""


PROTOCOL_ERROR_LABELS: dict[str, str] = {
    "unclosed_tag": "a tag was left open",
    "unknown_tag": "a tag the format does not have",
    "empty_query": "an empty search",
    "repeated_query": "the same search twice",
    "no_tags": "no search format at all",
    "block_too_long": "a block ran too long",
    "max_rounds": "too many search rounds",
    "max_total_tokens": "the trace ran too long",
    "stray_text": "text outside the format's tags",
    "forged_block": "wrote a block the app writes",
    "results_cite_nothing": "vetted none of the passages",
}
"""A protocol error's kind in a person's words (the kind stays in a tooltip or a log)."""


def protocol_error_label(kind: str) -> str:
    return PROTOCOL_ERROR_LABELS.get(kind, kind.replace("_", " "))


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
    cut: bool = False
    """The answer stage's token limit ended the answer (it may stop mid-sentence)."""


@dataclass
class RunStats:
    rounds: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    generation_seconds: float = 0.0
    protocol_errors: int = 0
    answer_model: str = ""
    """The model that wrote the answer (another than the search turn's when the stages are
    combined); empty when no answer stage ran."""
    answer_tokens: int = 0
    """Tokens the answer stage wrote (included in completion_tokens)."""

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
    spans: tuple[Span, ...] = ()
    """The trace cut by author: ``"".join(s.text for s in spans) == trace``."""
    error: str = ""
    """When reason == "error": the sentence to show (the traceback goes to the log)."""


E = TypeVar("E")

Event = (
    Started
    | Prompt
    | BlockStart
    | Token
    | BlockEnd
    | Retrieval
    | Vetted
    | ProtocolError
    | Answer
    | Finished
)


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
