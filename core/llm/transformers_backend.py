"""The transformers backend (Hugging Face model folders) with KV-cache reuse.

The model is stepped one token at a time by our own loop, not ``model.generate``:
the loop needs the cache to outlive a stream, so that resuming after an injected
``<query_res>`` evaluates only the injected tokens. One ``DynamicCache`` per
backend holds the evaluated prefix; a stream crops it to the longest prefix it
shares with the session and evaluates the rest.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

from core.config import GenerationConfig
from core.errors import BackendNotInstalled, ModelLoadFailed, ModelNotFound, UnsupportedModel
from core.hardware import default_threads
from core.llm.base import Capabilities, Sampling, common_prefix
from core.llm.gbnf import DEAD, Grammar
from core.llm.hf_engine import MIN_P, PENALTY_LAST_N, TOP_K, HFTextEngine
from core.llm.hf_text import HFText, config_eos_ids
from core.llm.penalties import count_offsets, ngram_bans
from core.llm.token_loop import Prefill

PREFILL_CHUNK = 512
"""Prompt tokens per forward pass: bounds the attention scores' memory on long prompts."""
GRAMMARS_KEPT = 8
"""Compiled grammars kept with their masks (the loop's grammars differ per question)."""


class TransformersBackend(HFTextEngine["_LoadedModel"]):
    """A Hugging Face causal LM run by PyTorch. Not thread-safe: one stream at a time.

    ``generation.n_threads`` (0: one per physical core) goes to ``torch.set_num_threads``,
    which is process-wide: the embedder's torch runs with the same count.
    """

    name = "transformers"
    capabilities = Capabilities(constrained="gbnf", kv_reuse=True, token_ids=True)

    def __init__(self, model_path: str | Path, config: GenerationConfig) -> None:
        super().__init__(config)
        self.model_path = Path(model_path)
        self._grammars: dict[str, Grammar] = {}

    # -- lifecycle -----------------------------------------------------------------

    def load(self) -> None:
        with self._load_lock:
            if self._loaded is not None:
                return
            settings = read_model_config(self.model_path)
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
                from transformers import GenerationConfig as Generation
            except ImportError as exc:
                raise BackendNotInstalled("transformers", "transformers") from exc
            torch.set_num_threads(self.config.n_threads or default_threads())
            device, dtype = pick_device(torch)
            folder = str(self.model_path)
            try:
                tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    folder, **{_dtype_argument(): dtype}, local_files_only=True
                )
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ModelLoadFailed(
                    f"transformers could not load {self.model_path} ({exc}); check that the "
                    "folder holds a complete causal language model (weights and tokenizer)."
                ) from exc
            model.to(device)
            model.eval()
            try:
                generation = Generation.from_pretrained(folder, local_files_only=True)
            except OSError:
                generation = None
            eos = config_eos_ids(model.config, generation)
            self._text = HFText(tokenizer, eos)
            self._n_ctx = self._window(settings)
            self._loaded = _LoadedModel(torch, model, device)

    def _after_close(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def grammar(self, gbnf: str) -> Grammar:
        """A compiled grammar, once per distinct GBNF string (its masks are kept with it)."""
        compiled = self._grammars.pop(gbnf, None) or Grammar(gbnf)
        self._grammars[gbnf] = compiled  # most recent last
        while len(self._grammars) > GRAMMARS_KEPT:
            self._grammars.pop(next(iter(self._grammars)))
        return compiled

    def generate_tokens(
        self,
        tokens: list[int],
        sampling: Sampling,
        *,
        reuse_cache: bool,
        prefill: Prefill,
        grammar: str | None = None,
    ) -> Generator[int, None, None]:
        # The stream keeps the model it started on: a close() meanwhile frees it after.
        loaded = self.loaded
        torch = loaded.torch
        constraint = _Constraint(self.grammar(grammar), self.text) if grammar else None
        if not reuse_cache or loaded.cached_ids is None:
            loaded.reset_cache()
        reuse = loaded.crop_to(tokens)
        prefill.cached, prefill.evaluated = reuse, len(tokens) - reuse
        logits = loaded.forward(tokens[reuse:])
        generator = torch.Generator()
        if sampling.seed is not None:
            generator.manual_seed(sampling.seed)
        else:
            generator.seed()
        history: list[int] = []  # the penalty looks at this stream's tokens, as llama.cpp's
        while True:
            token = sample_token(torch, logits, history, sampling, generator)
            if constraint is not None and not constraint.accepts(token):
                # As llama.cpp: the grammar checks the sampler's choice first, and only
                # when it refuses are the logits masked and the token sampled again.
                masked = constraint.mask(logits)
                token = sample_token(torch, masked, history, sampling, generator)
                constraint.advance(token)
            elif constraint is not None:
                constraint.advance(token)
            yield token
            # Evaluated only when the caller asks for the next one: a stream that stops
            # here leaves the cache exactly at the session's tokens.
            history.append(token)
            logits = loaded.forward([token])


class _Constraint:
    """One stream's position in a grammar."""

    def __init__(self, grammar: Grammar, text: HFText) -> None:
        self.grammar = grammar
        self.texts = text.token_texts()
        self.end_ids = sorted(text.end_ids)
        self.state = grammar.start

    def accepts(self, token: int) -> bool:
        if token in self.end_ids:
            return self.grammar.accepting(self.state)
        text = self.texts[token] if token < len(self.texts) else ""
        return bool(text) and self.grammar.walk(self.state, text) != DEAD

    def advance(self, token: int) -> None:
        if token not in self.end_ids:
            self.state = self.grammar.walk(self.state, self.texts[token])

    def mask(self, logits: Any) -> Any:
        import torch

        allowed = self.grammar.masks.get(self.state)
        if allowed is None:
            tokens = self.grammar.allowed(self.state, self.texts)
            if self.grammar.accepting(self.state) or not tokens:
                tokens += self.end_ids  # complete (or stuck): the turn may end here
            allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
            allowed[torch.tensor(tokens, device=logits.device)] = True
            self.grammar.masks[self.state] = allowed
        return logits.masked_fill(~allowed, float("-inf"))


class _LoadedModel:
    """The weights on their device and the one KV cache, with the token ids it holds."""

    def __init__(self, torch: Any, model: Any, device: Any) -> None:
        self.torch, self.model, self.device = torch, model, device
        parameters = inspect.signature(model.forward).parameters
        # transformers 5.2x renamed past_key_values to cache (the old name warns).
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self._keep_logits = "logits_to_keep" in parameters
        self.cache: Any = None
        self.cached_ids: list[int] | None = None
        """The tokens ``cache`` holds, in order; None when unknown (a forward failed)."""
        self.reset_cache()

    def reset_cache(self) -> None:
        from transformers import DynamicCache

        try:
            self.cache = DynamicCache(config=self.model.config)
        except TypeError:  # transformers < 4.56 takes no config
            self.cache = DynamicCache()
        self.cached_ids = []

    def crop_to(self, tokens: list[int]) -> int:
        """Cut the cache back to its longest common prefix with ``tokens``; its length."""
        cached = self.cached_ids or []
        reuse = common_prefix(cached, tokens)
        if reuse == len(tokens):
            # Sampling needs fresh logits, so the last token is evaluated again.
            reuse -= 1
        drop = len(cached) - reuse
        if drop <= 0:
            return reuse
        if reuse == 0 or not getattr(self.cache, "is_croppable", True):
            self.reset_cache()
            return 0
        try:
            self.cache.crop(-drop)  # negative: remove that many (old and new API alike)
        except (ValueError, NotImplementedError):
            self.reset_cache()
            return 0
        self.cached_ids = cached[:reuse]
        return reuse

    def forward(self, ids: list[int]) -> Any:
        """Evaluate ``ids`` after the cached tokens; the logits of the last one."""
        torch = self.torch
        cached, self.cached_ids = self.cached_ids, None  # unknown until it succeeds
        assert cached is not None
        logits: Any = None
        with torch.inference_mode():
            for start in range(0, len(ids), PREFILL_CHUNK):
                part = torch.tensor([ids[start : start + PREFILL_CHUNK]], device=self.device)
                kwargs: dict[str, Any] = {self._cache_argument: self.cache, "use_cache": True}
                if self._keep_logits:
                    kwargs["logits_to_keep"] = 1
                logits = self.model(input_ids=part, **kwargs).logits
        self.cached_ids = cached + ids
        return logits[0, -1].float()


def sample_token(
    torch: Any, logits: Any, history: list[int], sampling: Sampling, generator: Any
) -> int:
    """One token, as llama.cpp's default chain samples it: repeat penalty over the last
    64 tokens of ``history`` (llama-cpp-python's sampler sees only the tokens generated in
    this stream, not the prompt), then greedy at temperature 0, else top-k 40, top-p,
    min-p 0.05, temperature."""
    penalty = sampling.repeat_penalty
    if penalty != 1.0 and history:
        window = torch.tensor(sorted(set(history[-PENALTY_LAST_N:])), device=logits.device)
        values = logits[window]
        logits = logits.clone()
        logits[window] = torch.where(values > 0, values / penalty, values * penalty)
    offsets = count_offsets(history, sampling.presence_penalty, sampling.frequency_penalty)
    banned = ngram_bans(history, sampling.no_repeat_ngram)
    if offsets or banned:
        logits = logits.clone()
        for token, offset in offsets.items():
            logits[token] -= offset
        if banned:
            logits[torch.tensor(sorted(banned), device=logits.device)] = float("-inf")
    if sampling.temperature <= 0:
        return int(torch.argmax(logits))
    values, indices = torch.topk(logits, min(TOP_K, logits.shape[-1]))
    values, indices = values.cpu(), indices.cpu()
    if sampling.top_p < 1.0:
        cumulative = torch.softmax(values, dim=-1).cumsum(dim=-1)
        keep = int((cumulative < sampling.top_p).sum()) + 1
        values, indices = values[:keep], indices[:keep]
    # min-p: drop tokens less likely than MIN_P times the most likely one.
    keep = int((values >= values[0] + torch.log(torch.tensor(MIN_P))).sum())
    values, indices = values[: max(1, keep)], indices[: max(1, keep)]
    probs = torch.softmax(values / sampling.temperature, dim=-1)
    choice = torch.multinomial(probs, 1, generator=generator)
    return int(indices[choice])


def _dtype_argument() -> str:
    """transformers 4.56 renamed ``torch_dtype`` to ``dtype`` (the old name warns)."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def pick_device(torch: Any) -> tuple[Any, Any]:
    """CUDA, then Apple's MPS, else the CPU (float32 there: half precision is slow on CPUs)."""
    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.device("cuda"), dtype
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps"), torch.float16
    return torch.device("cpu"), torch.float32


def read_model_config(folder: Path) -> dict[str, Any]:
    """The folder's config.json, checked enough to say early what is wrong with it."""
    path = folder / "config.json"
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelNotFound(
            f"{folder} has no config.json: choose a Hugging Face model folder or a .gguf file."
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadFailed(f"{path} cannot be read ({exc}); download the model again.") from exc
    if not isinstance(settings, dict) or not settings.get("model_type"):
        raise UnsupportedModel(
            f"{path} names no model_type, so transformers cannot tell which model it is: "
            "choose a complete Hugging Face model folder or a .gguf file."
        )
    return settings
