"""The llama.cpp backend (GGUF models) with KV-cache reuse across a session's streams.

One ``Llama`` holds one KV cache. A session keeps the exact token list of its
sequence; each stream evaluates only the tokens after the longest prefix that
the cache already holds, so resuming after an injected ``<query_res>`` costs
the injected tokens, not the whole conversation again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from core.config import GenerationConfig
from core.errors import (
    BackendNotInstalled,
    ContextOverflow,
    GrammarError,
    ModelLoadFailed,
    ModelNotFound,
)
from core.hardware import default_threads, uses_amx
from core.llm.base import (
    Capabilities,
    Chunk,
    FinishReason,
    GenStats,
    StreamRequest,
    common_prefix,
)
from core.llm.chat_template import CHATML_TEMPLATE, fold_system
from core.llm.penalties import ngram_bans
from core.llm.stops import StopMatcher, Utf8Decoder

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
        return bytes(self.llm.detokenize([token], special=False))

    def is_end_of_generation(self, token: int) -> bool:
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        return bool(llama_cpp.llama_vocab_is_eog(vocab, token))

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

    def session(self, prompt: str, *, reuse_cache: bool = True) -> LlamaSession:
        return LlamaSession(self, prompt, reuse_cache=reuse_cache)

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


class LlamaSession:
    """One growing sequence on a :class:`LlamaCppBackend`."""

    def __init__(self, backend: LlamaCppBackend, prompt: str, *, reuse_cache: bool = True) -> None:
        self._backend = backend
        self._reuse_cache = reuse_cache
        self._parts: list[str] = [prompt]
        self._tokens: list[int] = backend.tokenize_prompt(prompt)

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
        self._tokens.extend(self._backend.tokenize_text(text))
        self._parts.append(text)

    def stream(self, request: StreamRequest) -> Iterator[Chunk]:
        backend = self._backend
        n_ctx = backend.n_ctx
        if not self._tokens:
            raise ValueError("The session has no prompt to continue from; start it with one.")
        if len(self._tokens) >= n_ctx:
            raise ContextOverflow(
                f"The sequence is {len(self._tokens)} tokens but the context window is "
                f"{n_ctx}: raise generation.n_ctx, retrieve fewer passages or fewer rounds."
            )
        grammar = backend.grammar(request.grammar) if request.grammar else None
        stats = GenStats()
        if request.max_tokens <= 0:
            yield Chunk("", finish_reason="length", stats=stats)
            return
        if request.cancel is not None and request.cancel.is_set():
            yield Chunk("", finish_reason="cancelled", stats=stats)
            return

        backend.begin_stream()
        # Taken only now: from here on a close() waits for this stream to end.
        llm = backend.llm
        generated: list[int] = []
        unsent: list[int] = []  # sampled since the last chunk
        pieces: list[bytes] = []
        emitted: list[str] = []
        decoder = Utf8Decoder()
        matcher = StopMatcher(request.stop)
        finish: FinishReason = "cancelled"  # what an abandoned stream amounts to
        tail = ""
        try:
            if not self._reuse_cache:
                llm.reset()
            reuse = common_prefix(llm._input_ids, self._tokens)
            if reuse == len(self._tokens):
                # Sampling needs fresh logits, so the last token is evaluated again.
                reuse -= 1
            # eval() drops the KV cells past n_tokens before it decodes.
            llm.n_tokens = reuse
            sampling = request.sampling
            if sampling.seed is not None:
                llm.set_seed(sampling.seed)
            started = time.perf_counter()
            first_token_at: float | None = None
            tokens_gen = llm.generate(
                self._tokens[reuse:],
                temp=sampling.temperature,
                top_p=sampling.top_p,
                repeat_penalty=sampling.repeat_penalty,
                presence_penalty=sampling.presence_penalty,
                frequency_penalty=sampling.frequency_penalty,
                logits_processor=_no_repeat_ngram(len(self._tokens), sampling.no_repeat_ngram),
                reset=False,
                grammar=grammar,
            )
            try:
                for token in tokens_gen:
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                        stats.prompt_tokens = llm.n_tokens - reuse
                        stats.cached_tokens = reuse
                        stats.prompt_seconds = first_token_at - started
                    if backend.is_end_of_generation(token):
                        finish = "eos"
                        break
                    generated.append(token)
                    unsent.append(token)
                    piece = backend.token_bytes(token)
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
                tokens_gen.close()
                ended = time.perf_counter()
                if first_token_at is not None:
                    stats.generation_seconds = ended - first_token_at
                stats.completion_tokens = len(generated)
                tail = self._commit(generated, pieces, emitted, decoder, matcher)
        finally:
            backend.end_stream()
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
        decoder: Utf8Decoder,
        matcher: StopMatcher,
    ) -> str:
        """Add this stream's output to the sequence; return text not yet yielded."""
        tail = ""
        if matcher.stopped is None:
            text, _ = matcher.feed(decoder.flush())
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
        (``>\\n``), and leaving it would put text in the cache that the session lacks."""
        target = wanted.encode("utf-8")
        keep = 0
        end = 0
        for piece in pieces:
            if target[end : end + len(piece)] != piece:
                break
            end += len(piece)
            keep += 1
        # Never cut a character in two: back off to a boundary.
        while keep and end < len(target) and (target[end] & 0xC0) == 0x80:
            keep -= 1
            end -= len(pieces[keep])
        missing = target[end:]
        extra = self._backend.tokenize_text(missing.decode("utf-8")) if missing else []
        return generated[:keep] + extra
