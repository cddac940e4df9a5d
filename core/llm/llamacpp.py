"""The llama.cpp backend (GGUF models) with KV-cache reuse across a session's streams.

One ``Llama`` holds one KV cache. Sessions are :class:`core.llm.token_loop.TokenSession`,
as on every engine; this backend gives them llama.cpp's tokens and sampler, and each
stream evaluates only the tokens after the longest prefix that the cache already
holds, so resuming after an injected ``<query_res>`` costs the injected tokens, not
the whole conversation again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from core.config import GenerationConfig
from core.errors import (
    BackendNotInstalled,
    GrammarError,
    ModelLoadFailed,
    ModelNotFound,
)
from core.hardware import default_threads, uses_amx
from core.llm.base import Capabilities, Sampling, common_prefix
from core.llm.chat_template import CHATML_TEMPLATE, fold_system
from core.llm.penalties import ngram_bans
from core.llm.token_loop import Prefill, TokenSession

if TYPE_CHECKING:
    from llama_cpp import Llama, LlamaGrammar


def import_llama_cpp() -> ModuleType:
    """llama-cpp-python, or the typed error that names the package to install."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendNotInstalled("llama.cpp", "llama-cpp-python") from exc
    return llama_cpp


class LlamaCppBackend:
    """A GGUF model run by llama-cpp-python. Not thread-safe: one stream at a time."""

    name = "llama.cpp"
    capabilities = Capabilities(constrained="gbnf", kv_reuse=True, token_ids=True)

    def __init__(
        self, model_path: str | Path, config: GenerationConfig, lora_path: str | Path | None = None
    ) -> None:
        self.model_path = Path(model_path)
        self.lora_path = Path(lora_path) if lora_path else None
        """A GGUF LoRA adapter applied to the model at load (a tuned model's adapter export)."""
        self.config = config
        self._llm: Llama | None = None
        self._grammars: dict[str, LlamaGrammar] = {}
        self._pieces: dict[int, bytes] = {}
        self._ends: dict[int, bool] = {}
        """What the vocabulary says of each token id met so far (its bytes, whether it
        ends the turn): the same for the model's whole life."""
        self._load_lock = threading.Lock()
        self._streaming = False
        self._close_when_idle = False
        self._stream_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------

    def load(self) -> None:
        with self._load_lock:
            if self._llm is not None:
                return
            if not self.model_path.is_file():
                raise ModelNotFound(
                    f"Model file {self.model_path} does not exist; pick a .gguf file in the "
                    "settings or leave the model empty to use the bundled one."
                )
            llama_cpp = import_llama_cpp()
            threads = self.config.n_threads or default_threads()
            try:
                with _without_amx_repacking(llama_cpp):
                    self._llm = llama_cpp.Llama(
                        model_path=str(self.model_path),
                        n_ctx=self.config.n_ctx,
                        n_threads=threads,
                        n_threads_batch=threads,
                        seed=self.config.seed,
                        lora_path=str(self.lora_path) if self.lora_path else None,
                        verbose=False,
                    )
            except ValueError as exc:
                raise ModelLoadFailed(
                    f"llama.cpp could not load {self.model_path} ({exc}); check that it is a "
                    "complete GGUF file (re-download it) and that it fits in memory."
                ) from exc

    def close(self) -> None:
        """Free the model; while a stream runs on it (a long prompt being evaluated, say,
        when the window closes) the free is put off until that stream ends, so the C
        context is never freed under the thread that is using it."""
        with self._stream_lock:
            if self._streaming:
                self._close_when_idle = True
                return
            self._free()

    def _free(self) -> None:
        with self._load_lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None
                self._pieces.clear()
                self._ends.clear()

    @property
    def is_loaded(self) -> bool:
        """Whether the weights are in memory (``load`` ran and no ``close`` since)."""
        return self._llm is not None

    @property
    def llm(self) -> Llama:
        """The loaded ``Llama`` (loading it on first use)."""
        self.load()
        assert self._llm is not None
        return self._llm

    @property
    def n_ctx(self) -> int:
        return int(self.llm.n_ctx())

    # -- text ----------------------------------------------------------------------

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        import jinja2
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self.llm
        template = llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
        eos = self._special_text(llm.token_eos())
        bos = self._special_text(llm.token_bos())
        try:
            formatter = Jinja2ChatFormatter(template, eos, bos, add_generation_prompt=True)
            try:
                return str(formatter(messages=cast(Any, messages)).prompt)
            except ValueError:
                # The template's raise_exception: usually "system role not supported"
                # (Gemma-style templates); such models take the system text in the user turn.
                return str(formatter(messages=cast(Any, fold_system(messages))).prompt)
        except jinja2.TemplateError:
            # Templates written for Transformers' Jinja sometimes use features the
            # sandbox lacks; ChatML is what most small instruct models were tuned on.
            chatml = Jinja2ChatFormatter(CHATML_TEMPLATE, eos, bos, add_generation_prompt=True)
            return str(chatml(messages=cast(Any, messages)).prompt)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize_prompt(text, add_bos=False))

    def tokenize_prompt(self, text: str, *, add_bos: bool = True) -> list[int]:
        """Tokens of template text: special tokens such as ``<|im_start|>`` are parsed."""
        llm = self.llm
        bos = self._special_text(llm.token_bos())
        # A template that writes the BOS token itself must not get a second one.
        add_bos = add_bos and not (bos and text.startswith(bos))
        return list(llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def tokenize_text(self, text: str) -> list[int]:
        """Tokens of untrusted text: ``<|im_start|>`` stays plain characters."""
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def token_bytes(self, token: int) -> bytes:
        """The bytes of one token (special tokens spell nothing); looked up once per token
        id, since a stream asks for every token it samples."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = bytes(self.llm.detokenize([token], special=False))
            self._pieces[token] = piece
        return piece

    def is_end_of_generation(self, token: int) -> bool:
        ends = self._ends.get(token)
        if ends is None:
            import llama_cpp

            vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
            ends = bool(llama_cpp.llama_vocab_is_eog(vocab, token))
            self._ends[token] = ends
        return ends

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(self.llm.detokenize([token], special=True)).decode("utf-8", "replace")

    def grammar(self, gbnf: str) -> LlamaGrammar:
        """A checked grammar, compiled once per distinct GBNF string."""
        cached = self._grammars.get(gbnf)
        if cached is not None:
            return cached
        import llama_cpp
        from llama_cpp import LlamaGrammar

        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        # llama.cpp returns NULL for a grammar it cannot parse, and a NULL sampler in
        # the chain crashes the process; so parse it once here, where we can say why.
        probe = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
        if not probe:
            raise GrammarError(
                "The GBNF grammar does not parse (see the log for the line); fix it or turn "
                "the grammar setting off."
            )
        llama_cpp.llama_sampler_free(probe)
        grammar = LlamaGrammar.from_string(gbnf, verbose=False)
        self._grammars[gbnf] = grammar
        return grammar

    # -- sessions ------------------------------------------------------------------

    def session(self, prompt: str, *, reuse_cache: bool = True) -> TokenSession:
        return TokenSession(self, prompt, reuse_cache=reuse_cache)

    def detokenizer(self, context: Sequence[int]) -> _Pieces:
        return _Pieces(self)

    def generate_tokens(
        self,
        tokens: list[int],
        sampling: Sampling,
        *,
        reuse_cache: bool,
        prefill: Prefill,
        grammar: str | None = None,
    ) -> Iterator[int]:
        """llama.cpp's sampler continuing ``tokens``; the ``Llama``'s own token list says
        what its KV cache holds, so only the tokens after the shared prefix are evaluated.

        The grammar is compiled here, before any token (a GBNF that does not parse is
        said at once). See :meth:`core.llm.token_loop.TokenEngine.generate_tokens`."""
        compiled = self.grammar(grammar) if grammar else None
        llm = self.llm
        if not reuse_cache:
            llm.reset()
        reuse = common_prefix(llm._input_ids, tokens)
        if reuse == len(tokens):
            # Sampling needs fresh logits, so the last token is evaluated again.
            reuse -= 1
        # eval() drops the KV cells past n_tokens before it decodes.
        llm.n_tokens = reuse
        if sampling.seed is not None:
            llm.set_seed(sampling.seed)
        steps = llm.generate(
            tokens[reuse:],
            temp=sampling.temperature,
            top_p=sampling.top_p,
            repeat_penalty=sampling.repeat_penalty,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
            logits_processor=_no_repeat_ngram(len(tokens), sampling.no_repeat_ngram),
            reset=False,
            grammar=compiled,
        )
        return _counted(steps, llm, reuse, prefill)

    def begin_stream(self) -> None:
        with self._stream_lock:
            if self._streaming:
                raise RuntimeError(
                    "Another stream is running on this model; finish or cancel it first."
                )
            self._streaming = True
            self._close_when_idle = False

    def end_stream(self) -> None:
        with self._stream_lock:
            self._streaming = False
            if self._close_when_idle:
                self._close_when_idle = False
                self._free()


@contextmanager
def _without_amx_repacking(llama_cpp: ModuleType) -> Iterator[None]:
    """Load weights without the AMX repacked buffers on CPUs that have AMX.

    ggml's AMX matmul segfaults on the first multi-token batch on some machines
    (llama.cpp issue #20824; reproduced here with SmolLM2 Q4_1), killing the whole
    app. Plain CPU kernels are slower only for big prompts, and never crash.
    ``Llama`` offers no switch for it, so the default model params are adjusted
    for the duration of the load.
    """
    info = bytes(llama_cpp.llama_print_system_info()).decode("utf-8", "replace")
    if not uses_amx(info):
        yield
        return
    raw = llama_cpp.llama_cpp
    original = raw.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    with _PARAMS_PATCH_LOCK:
        raw.llama_model_default_params = params
        try:
            yield
        finally:
            raw.llama_model_default_params = original


_PARAMS_PATCH_LOCK = threading.Lock()


def _no_repeat_ngram(start: int, n: int) -> Any:
    """A llama-cpp-python logits processor that forbids completing an ``n``-gram already
    generated in this stream (tokens from ``start`` on); None when off."""
    if n < 2:
        return None
    import numpy as np
    from llama_cpp import LogitsProcessorList

    def processor(input_ids: Any, scores: Any) -> Any:
        banned = ngram_bans([int(t) for t in input_ids[start:]], n)
        if banned:
            scores[np.fromiter(banned, dtype=np.intp)] = -np.inf
        return scores

    return LogitsProcessorList([processor])


def _counted(steps: Iterator[int], llm: Llama, reuse: int, prefill: Prefill) -> Iterator[int]:
    """``steps`` with ``prefill`` filled in before the first token (the prompt is evaluated
    when the first token is asked for)."""
    try:
        first = next(steps)
    except StopIteration:
        return
    prefill.cached, prefill.evaluated = reuse, llm.n_tokens - reuse
    try:
        yield first
        yield from steps
    finally:
        close = getattr(steps, "close", None)
        if close is not None:
            close()


class _Pieces:
    """A llama.cpp token's bytes, as the vocabulary spells them (pieces may split a
    character; the session's UTF-8 decoder joins them)."""

    def __init__(self, backend: LlamaCppBackend) -> None:
        self._piece = backend.token_bytes

    def feed(self, token: int) -> bytes:
        return self._piece(token)

    def flush(self) -> bytes:
        return b""
