"""The mlx-lm backend (MLX model folders: Apple silicon, or mlx's CPU build on Linux).

Tokens come from mlx-lm's ``generate_step`` with a prompt cache that outlives a
stream: the cache is trimmed back to the longest prefix it shares with the
session, and only the rest of the prompt is evaluated. ``generate_step`` works
one token ahead (it evaluates a token while the caller reads the previous one),
so after a stream the cache's own offset says how many tokens it holds.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

from core.config import GenerationConfig
from core.errors import BackendNotInstalled, GrammarError, ModelLoadFailed, ModelNotFound
from core.llm.base import Capabilities, Sampling, common_prefix
from core.llm.hf_engine import MIN_P, PENALTY_LAST_N, TOP_K, HFTextEngine
from core.llm.hf_text import HFText, config_eos_ids
from core.llm.penalties import count_offsets, ngram_bans
from core.llm.token_loop import Prefill


def import_mlx_lm() -> Any:
    try:
        import mlx.core  # noqa: F401  (mlx-lm imports without it; loading fails later)
        import mlx_lm
    except ImportError as exc:
        # mlx-lm installs anywhere, but mlx itself needs Apple silicon or `mlx[cpu]`.
        raise BackendNotInstalled("mlx", "mlx-lm", extra="mlx") from exc
    return mlx_lm


class MlxBackend(HFTextEngine["_LoadedModel"]):
    """A model run by mlx-lm. Not thread-safe: one stream at a time."""

    name = "mlx"
    capabilities = Capabilities(constrained=None, kv_reuse=True, token_ids=True)

    def __init__(self, model: str | Path, config: GenerationConfig) -> None:
        super().__init__(config)
        self.model_ref = str(model)
        """A local MLX folder, or a hub repository already in the local cache."""

    # -- lifecycle -----------------------------------------------------------------

    def load(self) -> None:
        with self._load_lock:
            if self._loaded is not None:
                return
            mlx_lm = import_mlx_lm()
            folder = self._local_folder()
            settings = _read_json(folder / "config.json")
            try:
                model, wrapper = mlx_lm.load(str(folder), model_config=_rope_settings(settings))
            except (OSError, ValueError, KeyError) as exc:
                raise ModelLoadFailed(
                    f"mlx-lm could not load {folder} ({exc}); check that it is a complete MLX "
                    "model folder (mlx_lm.convert writes one from a Hugging Face folder)."
                ) from exc
            generation = _read_json(folder / "generation_config.json")
            eos = config_eos_ids(settings, generation) | set(wrapper.eos_token_ids)
            self._text = HFText(getattr(wrapper, "_tokenizer", wrapper), eos)
            self._n_ctx = self._window(settings)
            self._loaded = _LoadedModel(model)

    def _local_folder(self) -> Path:
        path = Path(self.model_ref).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ModelNotFound(f"{path} has no config.json: choose an MLX model folder.")
            return path
        # A hub id: only from the local cache, never a download in a worker thread.
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(self.model_ref, local_files_only=True))
        except (LocalEntryNotFoundError, ValueError) as exc:
            raise ModelNotFound(
                f"The MLX model {self.model_ref} is neither a folder nor downloaded: download "
                "it from the Models tab first, or choose a local MLX folder."
            ) from exc

    def _after_close(self) -> None:
        import mlx.core as mx

        mx.clear_cache()

    def generate_tokens(
        self,
        tokens: list[int],
        sampling: Sampling,
        *,
        reuse_cache: bool,
        prefill: Prefill,
        grammar: str | None = None,
    ) -> Generator[int, None, None]:
        if grammar:  # the session refuses it first (capabilities.constrained is None)
            raise GrammarError("The mlx backend cannot constrain its output with a grammar.")
        import mlx.core as mx
        from mlx_lm.generate import generate_step
        from mlx_lm.sample_utils import make_sampler

        # The stream keeps the model it started on: a close() meanwhile frees it after.
        loaded = self.loaded
        if not reuse_cache or loaded.cached_ids is None:
            loaded.reset_cache()
        reuse = loaded.trim_to(tokens)
        prefill.cached, prefill.evaluated = reuse, len(tokens) - reuse
        if sampling.seed is not None:
            mx.random.seed(sampling.seed)
        sampler = make_sampler(
            temp=max(0.0, sampling.temperature),
            top_p=sampling.top_p,
            min_p=MIN_P,
            top_k=TOP_K,
        )
        processors = []
        if sampling.repeat_penalty != 1.0:
            processors.append(_repeat_penalty(mx, sampling.repeat_penalty, len(tokens) - reuse))
        if sampling.presence_penalty or sampling.frequency_penalty or sampling.no_repeat_ngram:
            processors.append(_count_penalties(mx, sampling, len(tokens) - reuse))
        generated: list[int] = []
        loaded.cached_ids = None  # unknown while the cache is being written
        steps = generate_step(
            mx.array(tokens[reuse:]),
            loaded.model,
            max_tokens=-1,
            sampler=sampler,
            logits_processors=processors,
            prompt_cache=loaded.cache,
        )
        try:
            for token, _ in steps:
                generated.append(int(token))
                yield int(token)
        finally:
            steps.close()
            held = _cache_length(loaded.cache)
            sequence = tokens + generated
            loaded.cached_ids = sequence[:held] if held is not None else None


class _LoadedModel:
    """The weights and the one prompt cache, with the token ids it holds."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: Any = None
        self.cached_ids: list[int] | None = None
        """The tokens ``cache`` holds, in order; None when unknown."""
        self.reset_cache()

    def reset_cache(self) -> None:
        from mlx_lm.models.cache import make_prompt_cache

        self.cache = make_prompt_cache(self.model)
        self.cached_ids = []

    def trim_to(self, tokens: list[int]) -> int:
        """Trim the cache back to its longest common prefix with ``tokens``; its length."""
        from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

        cached = self.cached_ids or []
        reuse = common_prefix(cached, tokens)
        if reuse == len(tokens):
            reuse -= 1  # sampling needs fresh logits: the last token is evaluated again
        drop = len(cached) - reuse
        if drop <= 0:
            return reuse
        if reuse == 0 or not can_trim_prompt_cache(self.cache):
            self.reset_cache()
            return 0
        trim_prompt_cache(self.cache, drop)
        self.cached_ids = cached[:reuse]
        return reuse


def _repeat_penalty(mx: Any, penalty: float, prompt_tokens: int) -> Any:
    """llama.cpp's repeat penalty: over the last 64 tokens generated in this stream, not the
    prompt (mlx-lm's own processor would count the prompt tokens given to this call)."""

    def process(tokens: Any, logits: Any) -> Any:
        generated = tokens[prompt_tokens:]
        recent = [int(t) for t in generated[-PENALTY_LAST_N:].tolist()] if generated.size else []
        if not recent:
            return logits
        index = mx.array(sorted(set(recent)))
        values = logits[:, index]
        logits[:, index] = mx.where(values > 0, values / penalty, values * penalty)
        return logits

    return process


def _count_penalties(mx: Any, sampling: Any, prompt_tokens: int) -> Any:
    """Presence / frequency penalties and the no-repeat n-gram ban over this stream's
    generated tokens (``core.llm.penalties``)."""

    def process(tokens: Any, logits: Any) -> Any:
        generated = tokens[prompt_tokens:]
        history = [int(t) for t in generated.tolist()] if generated.size else []
        offsets = count_offsets(history, sampling.presence_penalty, sampling.frequency_penalty)
        if offsets:
            index = mx.array(sorted(offsets))
            amounts = mx.array([offsets[t] for t in sorted(offsets)], dtype=logits.dtype)
            logits[:, index] = logits[:, index] - amounts
        banned = ngram_bans(history, sampling.no_repeat_ngram)
        if banned:
            logits[:, mx.array(sorted(banned))] = -float("inf")
        return logits

    return process


def _rope_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """RoPE settings in the older top-level form that mlx-lm's models read.

    transformers 5 writes them as ``rope_parameters``, and mlx-lm 0.32 ignores that key:
    a folder saved by transformers 5 then loads with mlx-lm's default rope_theta
    (10000 instead of SmolLM2's 100000), and the model writes nonsense.
    """
    rope = settings.get("rope_parameters")
    if not isinstance(rope, dict):
        return {}
    extra: dict[str, Any] = {}
    if "rope_theta" not in settings and "rope_theta" in rope:
        extra["rope_theta"] = rope["rope_theta"]
    if rope.get("rope_type", "default") != "default" and not settings.get("rope_scaling"):
        extra["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
    return extra


def _cache_length(cache: Any) -> int | None:
    offsets = {getattr(layer, "offset", None) for layer in cache}
    if len(offsets) != 1:
        return None
    offset = offsets.pop()
    return int(offset) if isinstance(offset, int) else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
