"""A session over any engine that generates one token at a time from a KV cache.

The transformers and mlx-lm backends differ in how they evaluate tokens, not in
what a session means; this is that meaning, the same as
:class:`core.llm.llamacpp.LlamaSession`: the exact token list of the sequence, the
stop sequence kept in the text but never yielded, the tokens cut back to exactly
the text at the stop, cancel between tokens, ContextOverflow at the window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from core.errors import ContextOverflow, GrammarError
from core.llm.base import Capabilities, Chunk, FinishReason, GenStats, Sampling, StreamRequest
from core.llm.hf_text import HFText, IncrementalDetokenizer
from core.llm.stops import StopMatcher, Utf8Decoder

TOP_K = 40
MIN_P = 0.05
PENALTY_LAST_N = 64
"""Sampling settings the ``Sampling`` record leaves out: llama-cpp-python's defaults, so
every engine samples the same way from the same settings."""


@dataclass
class Prefill:
    """What the engine did with the prompt before the first token (set before it)."""

    cached: int = 0
    """Tokens already in the KV cache, not evaluated again."""
    evaluated: int = 0


class TokenEngine(Protocol):
    """What :class:`TokenSession` needs from a backend."""

    name: str
    capabilities: Capabilities

    @property
    def n_ctx(self) -> int: ...

    def tokenize_prompt(self, text: str) -> list[int]: ...

    def tokenize_text(self, text: str) -> list[int]: ...

    def detokenizer(self, context: Sequence[int]) -> IncrementalDetokenizer: ...

    def is_end_of_generation(self, token: int) -> bool: ...

    def generate_tokens(
        self,
        tokens: list[int],
        sampling: Sampling,
        *,
        reuse_cache: bool,
        prefill: Prefill,
        grammar: str | None = None,
    ) -> Generator[int, None, None]:
        """Sampled tokens continuing ``tokens``, evaluating only what the cache lacks
        (and only tokens the GBNF ``grammar`` allows, on engines that take one).

        Fills ``prefill`` before the first token. Closing the iterator leaves the
        cache holding a prefix of ``tokens`` + what was yielded, and the engine knows which.
        """
        ...

    def begin_stream(self) -> None: ...

    def end_stream(self) -> None: ...


LoadedT = TypeVar("LoadedT")


class HFTextEngine(Generic[LoadedT]):
    """What the transformers and mlx-lm backends share: a Hugging Face tokenizer (through
    :class:`HFText`) for templates, tokens and end of turn, the window the model allows,
    one stream at a time, and a close that leaves a running stream its weights.

    A subclass loads ``_loaded`` (its engine's model and cache) and ``_text`` in
    ``load()``, and frees engine memory in ``_after_close``.
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self._loaded: LoadedT | None = None
        self._text: HFText | None = None
        self._n_ctx: int = config.n_ctx
        self._load_lock = threading.Lock()
        self._streaming = False

    name: str
    capabilities: Capabilities

    def load(self) -> None:
        raise NotImplementedError

    def generate_tokens(
        self,
        tokens: list[int],
        sampling: Sampling,
        *,
        reuse_cache: bool,
        prefill: Prefill,
        grammar: str | None = None,
    ) -> Generator[int, None, None]:
        """See :meth:`TokenEngine.generate_tokens`."""
        raise NotImplementedError

    def _window(self, settings: Any) -> int:
        """The context window: the setting, capped by the model's own positions."""
        limit = settings.get("max_position_embeddings")
        return min(self.config.n_ctx, int(limit)) if limit else int(self.config.n_ctx)

    def close(self) -> None:
        with self._load_lock:
            # The tokenizer stays (small, and a stream still running reads it); a stream
            # still running holds its own reference to the weights until it ends.
            loaded, self._loaded = self._loaded, None
            if loaded is None:
                return
            del loaded
            import gc

            gc.collect()
            self._after_close()

    def _after_close(self) -> None:
        """Give the engine's freed memory back (a device cache, say)."""

    @property
    def loaded(self) -> LoadedT:
        self.load()
        assert self._loaded is not None
        return self._loaded

    @property
    def text(self) -> HFText:
        if self._text is None:
            self.load()
        assert self._text is not None
        return self._text

    @property
    def n_ctx(self) -> int:
        if self._text is None:
            self.load()
        return self._n_ctx

    # -- text ----------------------------------------------------------------------

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        return self.text.chat_prompt(messages)

    def count_tokens(self, text: str) -> int:
        return self.text.count_tokens(text)

    def tokenize_prompt(self, text: str) -> list[int]:
        return self.text.tokenize_prompt(text)

    def tokenize_text(self, text: str) -> list[int]:
        return self.text.tokenize_text(text)

    def detokenizer(self, context: Sequence[int]) -> IncrementalDetokenizer:
        return self.text.detokenizer(context)

    def is_end_of_generation(self, token: int) -> bool:
        return self.text.is_end_of_generation(token)

    # -- sessions ------------------------------------------------------------------

    def session(self, prompt: str, *, reuse_cache: bool = True) -> TokenSession:
        return TokenSession(self, prompt, reuse_cache=reuse_cache)

    def begin_stream(self) -> None:
        if self._streaming:
            raise RuntimeError(
                "Another stream is running on this model; finish or cancel it first."
            )
        self._streaming = True

    def end_stream(self) -> None:
        self._streaming = False


class TokenSession:
    """One growing sequence on a :class:`TokenEngine`."""

    def __init__(self, engine: TokenEngine, prompt: str, *, reuse_cache: bool = True) -> None:
        self._engine = engine
        self._reuse_cache = reuse_cache
        self._parts: list[str] = [prompt]
        self._tokens: list[int] = engine.tokenize_prompt(prompt)

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def tokens(self) -> tuple[int, ...]:
        """The exact token sequence (what the next stream continues from)."""
        return tuple(self._tokens)

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
        if request.cancel is not None and request.cancel.is_set():
            yield Chunk("", finish_reason="cancelled", stats=stats, token_ids=())
            return

        engine.begin_stream()
        generated: list[int] = []
        unsent: list[int] = []  # sampled since the last chunk
        pieces: list[bytes] = []
        emitted: list[str] = []
        detokenizer = engine.detokenizer(self._tokens)
        decoder = Utf8Decoder()
        matcher = StopMatcher(request.stop)
        finish: FinishReason = "cancelled"  # what an abandoned stream amounts to
        tail = ""
        try:
            prefill = Prefill()
            started = time.perf_counter()
            first_token_at: float | None = None
            steps = engine.generate_tokens(
                self._tokens,
                request.sampling,
                reuse_cache=self._reuse_cache,
                prefill=prefill,
                grammar=request.grammar,
            )
            try:
                for token in steps:
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                        stats.prompt_tokens = prefill.evaluated
                        stats.cached_tokens = prefill.cached
                        stats.prompt_seconds = first_token_at - started
                    if engine.is_end_of_generation(token):
                        finish = "eos"
                        break
                    generated.append(token)
                    unsent.append(token)
                    piece = detokenizer.feed(token).encode("utf-8")
                    pieces.append(piece)
                    text, stop = matcher.feed(decoder.decode(piece))
                    if text:
                        emitted.append(text)
                        yield Chunk(text, token_ids=tuple(unsent))
                        unsent.clear()
                    if stop is not None:
                        finish = "stop"
                        break
                    if len(generated) >= request.max_tokens:
                        finish = "length"
                        break
                    if len(self._tokens) + len(generated) >= n_ctx:
                        finish = "length"
                        break
                    if request.cancel is not None and request.cancel.is_set():
                        finish = "cancelled"
                        break
            finally:
                steps.close()
                ended = time.perf_counter()
                if first_token_at is not None:
                    stats.generation_seconds = ended - first_token_at
                stats.completion_tokens = len(generated)
                tail = self._commit(generated, pieces, emitted, detokenizer, decoder, matcher)
        finally:
            engine.end_stream()
        stop_text = matcher.stopped
        yield Chunk(
            tail,
            finish_reason="stop" if stop_text is not None else finish,
            stop=stop_text,
            stats=stats,
            token_ids=tuple(unsent),
        )

    def _commit(
        self,
        generated: list[int],
        pieces: list[bytes],
        emitted: list[str],
        detokenizer: IncrementalDetokenizer,
        decoder: Utf8Decoder,
        matcher: StopMatcher,
    ) -> str:
        """Add this stream's output to the sequence; return text not yet yielded."""
        tail = ""
        if matcher.stopped is None:
            rest = detokenizer.flush().encode("utf-8")
            if rest and pieces:
                pieces[-1] += rest
            text, _ = matcher.feed(decoder.decode(rest) + decoder.flush())
            tail = text + matcher.flush()
        written = "".join(emitted) + tail
        stop = matcher.stopped
        if stop is None:
            self._tokens.extend(generated)
            self._parts.append(written)
            return tail
        self._tokens.extend(self._tokens_ending_at_stop(generated, pieces, written + stop))
        self._parts.append(written + stop)
        return tail

    def _tokens_ending_at_stop(
        self, generated: list[int], pieces: list[bytes], wanted: str
    ) -> list[int]:
        """Tokens that spell exactly ``wanted``: the last token may run past the stop
        (``>\\n``), and leaving it would put text in the cache that the session lacks.

        A token whose piece is empty (the first half of a character, shown with the
        token that completes it) is kept only when that completing token is."""
        target = wanted.encode("utf-8")
        keep = 0
        end = 0
        for index, piece in enumerate(pieces):
            if end >= len(target) or target[end : end + len(piece)] != piece:
                break
            end += len(piece)
            if piece:
                keep = index + 1
        missing = target[end:]
        extra = self._engine.tokenize_text(missing.decode("utf-8")) if missing else []
        return generated[:keep] + extra
