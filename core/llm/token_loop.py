"""The one streaming session that every engine (llama.cpp, transformers, mlx-lm) runs through.

An engine supplies tokens: it tokenizes, samples continuing a token list (evaluating
only what its KV cache lacks) and spells each token as bytes. What a session *means*
lives here once: the exact token list of the sequence, UTF-8 that never arrives split,
the stop sequence kept in the text but never yielded, the tokens cut back to exactly
the text at the stop, cancel between tokens, ContextOverflow at the window.
Imports only ``core.llm.base``, ``core.llm.stops`` and ``core.errors``: no engine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.errors import ContextOverflow, GrammarError
from core.llm.base import Capabilities, Chunk, FinishReason, GenStats, Sampling, StreamRequest
from core.llm.stops import StopMatcher, Utf8Decoder


@dataclass
class Prefill:
    """What the engine did with the prompt before the first token (set before it)."""

    cached: int = 0
    """Tokens already in the KV cache, not evaluated again."""
    evaluated: int = 0


class Detokenizer(Protocol):
    """Spells a stream's tokens one at a time, as bytes."""

    def feed(self, token: int) -> bytes:
        """The bytes this token adds (may be part of a character, or nothing yet)."""
        ...

    def flush(self) -> bytes:
        """End of stream: bytes still held back."""
        ...


class TokenEngine(Protocol):
    """What :class:`TokenSession` needs from a backend."""

    name: str
    capabilities: Capabilities

    @property
    def n_ctx(self) -> int: ...

    def tokenize_prompt(self, text: str) -> list[int]: ...

    def tokenize_text(self, text: str) -> list[int]: ...

    def detokenizer(self, context: Sequence[int]) -> Detokenizer: ...

    def is_end_of_generation(self, token: int) -> bool: ...

    def generate_tokens(
        self,
        tokens: list[int],
        sampling: Sampling,
        *,
        reuse_cache: bool,
        prefill: Prefill,
        grammar: str | None = None,
    ) -> Iterator[int]:
        """Sampled tokens continuing ``tokens``, evaluating only what the cache lacks
        (and only tokens the GBNF ``grammar`` allows, on engines that take one).

        Fills ``prefill`` before the first token. Closing the iterator leaves the
        cache holding a prefix of ``tokens`` + what was yielded, and the engine knows which.
        """
        ...

    def begin_stream(self) -> None: ...

    def end_stream(self) -> None: ...


class TokenSession:
    """One growing sequence on a :class:`TokenEngine`."""

    def __init__(
        self,
        engine: TokenEngine,
        prompt: str,
        *,
        reuse_cache: bool = True,
        tokens: Sequence[int] | None = None,
    ) -> None:
        """``tokens``: the exact tokens of ``prompt`` when they are known (a fork)."""
        self._engine = engine
        self._reuse_cache = reuse_cache
        self._parts: list[str] = [prompt]
        self._tokens: list[int] = (
            list(tokens) if tokens is not None else engine.tokenize_prompt(prompt)
        )

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def tokens(self) -> tuple[int, ...]:
        """The exact token sequence (what the next stream continues from)."""
        return tuple(self._tokens)

    def fork(self, *, reuse_cache: bool | None = None) -> TokenSession:
        """A new session on the same engine holding this sequence as it is now (text and
        exact tokens); the two grow apart from here. ``reuse_cache`` defaults to this one's."""
        reuse = self._reuse_cache if reuse_cache is None else reuse_cache
        return TokenSession(self._engine, self.text, reuse_cache=reuse, tokens=self._tokens)

    def append(self, text: str) -> None:
        if not text:
            return
        self._tokens.extend(self._engine.tokenize_text(text))
        self._parts.append(text)

    def stream(self, request: StreamRequest) -> Iterator[Chunk]:
        engine = self._engine
        n_ctx = engine.n_ctx
        if not self._tokens:
            raise ValueError("The session has no prompt to continue from; start it with one.")
        if len(self._tokens) >= n_ctx:
            raise ContextOverflow(
                f"The sequence is {len(self._tokens)} tokens but the context window is "
                f"{n_ctx}: raise generation.n_ctx, retrieve fewer passages or fewer rounds."
            )
        if request.grammar and engine.capabilities.constrained != "gbnf":
            raise GrammarError(
                f"The {engine.name} backend cannot constrain its output with a grammar; set "
                "loop.grammar to auto or off, or run a GGUF model (llama.cpp)."
            )
        stats = GenStats()
        if request.max_tokens <= 0:
            yield Chunk("", finish_reason="length", stats=stats, token_ids=())
            return
        cancel = request.cancel
        if cancel is not None and cancel.is_set():
            yield Chunk("", finish_reason="cancelled", stats=stats, token_ids=())
            return

        engine.begin_stream()
        try:
            prefill = Prefill()
            started = time.perf_counter()
            steps = engine.generate_tokens(
                self._tokens,
                request.sampling,
                reuse_cache=self._reuse_cache,
                prefill=prefill,
                grammar=request.grammar,
            )
            run = _Run(engine.detokenizer(self._tokens), StopMatcher(request.stop))
            # Generation ends at max_tokens or at the window, whichever comes first.
            budget = min(request.max_tokens, n_ctx - len(self._tokens))
            first_token_at: float | None = None
            # Locals, not attributes, in the per-token path: it runs once per token.
            is_end = engine.is_end_of_generation
            feed = run.detokenizer.feed
            decode = run.decoder.decode
            match = run.matcher.feed
            generated, pieces, unsent, emitted = run.generated, run.pieces, [], run.emitted
            try:
                for token in steps:
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                        stats.prompt_tokens = prefill.evaluated
                        stats.cached_tokens = prefill.cached
                        stats.prompt_seconds = first_token_at - started
                    if is_end(token):
                        run.finish = "eos"
                        break
                    generated.append(token)
                    unsent.append(token)
                    piece = feed(token)
                    pieces.append(piece)
                    text, stop = match(decode(piece))
                    if text:
                        emitted.append(text)
                        yield Chunk(text, token_ids=tuple(unsent))
                        unsent.clear()
                    if stop is not None:
                        run.finish = "stop"
                        break
                    if len(generated) >= budget:
                        run.finish = "length"
                        break
                    if cancel is not None and cancel.is_set():
                        run.finish = "cancelled"
                        break
            finally:
                close = getattr(steps, "close", None)
                if close is not None:
                    close()
                if first_token_at is not None:
                    stats.generation_seconds = time.perf_counter() - first_token_at
                stats.completion_tokens = len(generated)
                tail = self._commit(run)
        finally:
            engine.end_stream()
        stop_text = run.matcher.stopped
        yield Chunk(
            tail,
            finish_reason="stop" if stop_text is not None else run.finish,
            stop=stop_text,
            stats=stats,
            token_ids=tuple(unsent),
        )

    def _commit(self, run: _Run) -> str:
        """Add this stream's output to the sequence; return text not yet yielded."""
        matcher, pieces = run.matcher, run.pieces
        tail = ""
        if matcher.stopped is None:
            rest = run.detokenizer.flush()
            if rest and pieces:
                pieces[-1] += rest
            text, _ = matcher.feed(run.decoder.decode(rest) + run.decoder.flush())
            tail = text + matcher.flush()
        written = "".join(run.emitted) + tail
        stop = matcher.stopped
        if stop is None:
            self._tokens.extend(run.generated)
            self._parts.append(written)
            return tail
        self._tokens.extend(self._tokens_ending_at_stop(run.generated, pieces, written + stop))
        self._parts.append(written + stop)
        return tail

    def _tokens_ending_at_stop(
        self, generated: list[int], pieces: list[bytes], wanted: str
    ) -> list[int]:
        """Tokens that spell exactly ``wanted``: the last token may run past the stop
        (``>\\n``), and leaving it would put text in the cache that the session lacks.

        A token whose piece is empty (the first half of a character that its detokenizer
        shows with the token completing it) is kept only when that completing token is,
        and a cut never falls inside a character."""
        target = wanted.encode("utf-8")
        keep = 0
        end = 0
        kept_ends: list[tuple[int, int]] = []  # (tokens kept, bytes they spell)
        for index, piece in enumerate(pieces):
            if end >= len(target) or target[end : end + len(piece)] != piece:
                break
            end += len(piece)
            if piece:
                keep = index + 1
                kept_ends.append((keep, end))
        # Never cut a character in two: back off to a character boundary.
        while kept_ends and end < len(target) and (target[end] & 0xC0) == 0x80:
            kept_ends.pop()
            keep, end = kept_ends[-1] if kept_ends else (0, 0)
        missing = target[end:]
        extra = self._engine.tokenize_text(missing.decode("utf-8")) if missing else []
        return generated[:keep] + extra


class _Run:
    """One stream's working state, handed to the commit when it ends."""

    def __init__(self, detokenizer: Detokenizer, matcher: StopMatcher) -> None:
        self.detokenizer = detokenizer
        self.decoder = Utf8Decoder()
        self.matcher = matcher
        self.generated: list[int] = []
        self.pieces: list[bytes] = []
        self.emitted: list[str] = []
        self.finish: FinishReason = "cancelled"  # what an abandoned stream amounts to
