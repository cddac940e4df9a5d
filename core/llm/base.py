"""The generator backend protocol.

A backend hands out *sessions*: one growing token sequence whose evaluated
prefix stays in the engine's KV cache. The tag loop streams until a stop
sequence, appends the retrieved passages with :meth:`Session.append`, and
streams again: only the appended tokens are evaluated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, SupportsInt, runtime_checkable

FinishReason = Literal["stop", "length", "eos", "cancelled"]


def common_prefix(a: Iterable[SupportsInt], b: Iterable[SupportsInt]) -> int:
    """How many leading tokens two sequences share: what a KV cache holding ``a`` can keep
    of ``b`` (every engine evaluates only the rest)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if int(x) != int(y):
            break
        n += 1
    return n


@dataclass
class GenStats:
    """Counters of one ``stream`` call (or, summed, of a whole run)."""

    prompt_tokens: int = 0
    """Prompt tokens evaluated in this call (new tokens only)."""
    cached_tokens: int = 0
    """Prompt tokens that were already in the KV cache and not evaluated again."""
    completion_tokens: int = 0
    prompt_seconds: float = 0.0
    generation_seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.generation_seconds if self.generation_seconds else 0.0

    def add(self, other: GenStats) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.cached_tokens += other.cached_tokens
        self.completion_tokens += other.completion_tokens
        self.prompt_seconds += other.prompt_seconds
        self.generation_seconds += other.generation_seconds


@dataclass
class Chunk:
    """A piece of streamed text. The last chunk of a stream carries ``finish_reason`` and stats."""

    text: str
    finish_reason: FinishReason | None = None
    stop: str | None = None
    """The stop sequence that ended the stream (when finish_reason == "stop")."""
    stats: GenStats | None = None
    token_ids: tuple[int, ...] | None = None
    """The tokens sampled since the previous chunk, on engines whose capabilities say
    ``token_ids``. Text held back (a partial stop or character) arrives in a later chunk
    than its tokens; tokens past a stop are listed but not kept in the session."""


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, so callers ask it only for what it supports."""

    constrained: str | None
    """The constrained decoding the engine takes in ``StreamRequest.grammar``: "gbnf" for
    GBNF grammars (llama.cpp's sampler; transformers masks the logits, regular grammars
    only); None where it cannot constrain its output."""
    kv_reuse: bool
    """Streams after an append evaluate only the new tokens (the KV cache holds the rest)."""
    token_ids: bool
    """Chunks carry the ids of the tokens they came from (``Chunk.token_ids``)."""
    streaming: bool = True
    """Chunks arrive as tokens are generated (not all at the end)."""


@dataclass
class Sampling:
    temperature: float = 0.2
    top_p: float = 0.9
    repeat_penalty: float = 1.1
    seed: int | None = 1234
    presence_penalty: float = 0.0
    """Subtracted from the logit of every token already generated in this stream."""
    frequency_penalty: float = 0.0
    """Subtracted once per time a token was generated in this stream."""
    no_repeat_ngram: int = 0
    """Forbid a token that completes an n-gram of this size already generated (0: off)."""


@dataclass
class StreamRequest:
    stop: Sequence[str] = ()
    max_tokens: int = 256
    grammar: str | None = None
    """A GBNF grammar constraining this call's output, or None: only for engines whose
    ``capabilities.constrained`` is "gbnf"."""
    sampling: Sampling = field(default_factory=Sampling)
    cancel: threading.Event | None = None


@runtime_checkable
class Session(Protocol):
    @property
    def text(self) -> str:
        """Everything in the sequence so far: prompt, generated and appended text."""
        ...

    def append(self, text: str) -> None:
        """Add text (never parsed for special tokens); evaluated lazily by the next stream."""
        ...

    def stream(self, request: StreamRequest) -> Iterator[Chunk]:
        """Generate until a stop sequence, EOS, max_tokens or cancel.

        The stop sequence itself is never yielded as text, but it is part of
        :attr:`text` afterwards, so the sequence reads as the model wrote it.
        """
        ...


@runtime_checkable
class Backend(Protocol):
    name: str
    capabilities: Capabilities

    def load(self) -> None:
        """Load weights (idempotent). Raises ModelNotFound / BackendNotInstalled."""
        ...

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """Apply the model's chat template, ending where the assistant's turn begins."""
        ...

    def session(self, prompt: str, *, reuse_cache: bool = True) -> Session:
        """Start a sequence from ``prompt`` (may contain the template's special tokens).

        With ``reuse_cache=False`` every stream evaluates the whole sequence again
        (the baseline that ``bench/loop_kv.py`` compares against).
        """
        ...

    def count_tokens(self, text: str) -> int: ...

    def close(self) -> None: ...
