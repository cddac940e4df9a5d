"""What the transformers and mlx-lm backends share: a Hugging Face tokenizer and one session.

Both run a model folder's tokenizer (:class:`core.llm.hf_text.HFText`) and stream
through :class:`core.llm.token_loop.TokenSession`; they differ only in how they
evaluate tokens. Imports no engine library at module level and never the registry.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Generic, TypeVar

from core.llm.base import Capabilities, Sampling
from core.llm.hf_text import HFText, IncrementalDetokenizer
from core.llm.token_loop import Prefill, TokenSession

TOP_K = 40
MIN_P = 0.05
PENALTY_LAST_N = 64
"""Sampling settings the ``Sampling`` record leaves out: llama-cpp-python's defaults, so
every engine samples the same way from the same settings."""

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
    ) -> Iterator[int]:
        """See :meth:`core.llm.token_loop.TokenEngine.generate_tokens`."""
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
            gc.collect()
            self._after_close()

    def _after_close(self) -> None:
        """Give the engine's freed memory back (a device cache, say)."""

    @property
    def is_loaded(self) -> bool:
        """Whether the weights are in memory (``load`` ran and no ``close`` since)."""
        return self._loaded is not None

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
