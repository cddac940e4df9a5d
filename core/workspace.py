"""Wires the pieces for one data dir: config, store, embedder, generator.

The CLI, the desktop app and the benchmarks all start here. Everything heavy is
created lazily and kept (one embedder, one loaded model per path).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from core.agent.loop import Agent
from core.config import AppConfig, load_config, save_config
from core.errors import ConfigError
from core.knowledge.embedder import Embedder, default_embedder
from core.knowledge.knowledge_base import KnowledgeBase
from core.knowledge.store import KnowledgeStore
from core.knowledge.types import Hit
from core.llm.base import Backend
from core.llm.engines import (
    create_backend,
    default_model_path,
    model_is_tuned,
    model_needs_grammar,
)
from core.models.installed import ModelRegistry, recorded_guard, tuned_info
from core.paths import DataLayout

log = logging.getLogger(__name__)


@dataclass
class KBRetriever:
    """Adapts a knowledge base to the agent's Retriever protocol."""

    kb: KnowledgeBase
    method: str = "hybrid"

    def search(self, query: str, k: int) -> list[Hit]:
        return self.kb.search(query, k=k, method=self.method)

    def describe(self) -> dict[str, str]:
        """What a run record keeps of the knowledge base it searched."""
        return {
            "name": self.kb.name,
            "id": self.kb.id,
            "embedder": self.kb.embedder_name,
            "method": self.method,
        }


class Workspace:
    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.layout = DataLayout.at(data_dir)
        self.config: AppConfig = load_config(self.layout.config_file)
        self._store: KnowledgeStore | None = None
        self._embedder: Embedder | None = None
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()

    # -- settings -----------------------------------------------------------------
    def save_config(self) -> None:
        save_config(self.config, self.layout.config_file)

    # -- knowledge ----------------------------------------------------------------
    @property
    def store(self) -> KnowledgeStore:
        """The Chroma-backed store. Opening can block on a locked SQLite file: never call
        this first on a thread that must stay responsive."""
        embedder = self.embedder  # not under the lock below: it takes the same lock
        with self._lock:
            if self._store is None:
                self._store = KnowledgeStore(self.layout, self.config.store, embedder=embedder)
            return self._store

    @property
    def embedder(self) -> Embedder:
        """The embedding model with the configured runtime (``embedding.backend``; created
        here, loaded on first use)."""
        with self._lock:
            if self._embedder is None:
                self._embedder = default_embedder(self.config.embedding.backend)
            return self._embedder

    def retriever(self, kb_name: str, method: str | None = None) -> KBRetriever:
        return KBRetriever(self.store.get(kb_name), method or self.config.retrieval.method)

    # -- generation ---------------------------------------------------------------
    def model_path(self, model: str | None = None) -> Path:
        """The file an engine loads: ``model`` (a path, ``default``, a tuned model's name or
        ``name:variant``), else the configured model, else the bundled one."""
        chosen = ModelRegistry(self.layout).resolve(model or self.config.model)
        return Path(chosen).expanduser() if chosen else default_model_path()

    def backend(self, model: str | None = None) -> Backend:
        """The loaded model, created with the current generation settings.

        A model loaded before the settings changed a load-time field (context size,
        threads, seed) is closed and loaded again with the new ones: a loaded backend
        that kept the old context size ended in a context overflow.
        """
        path = self.model_path(model)
        key = str(path)
        generation = self.config.generation
        stale: Backend | None = None
        with self._lock:
            backend = self._backends.get(key)
            if (
                backend is not None
                and hasattr(backend, "config")
                and _load_settings(backend) != _load_settings(generation)
            ):
                stale = self._backends.pop(key)
                backend = None
            if backend is None:
                backend = create_backend(path, generation)
                self._backends[key] = backend
            elif getattr(backend, "config", generation) is not generation:
                backend.config = generation  # type: ignore[attr-defined]
        if stale is not None:
            log.info("reloading %s with the new generation settings", path.name)
            stale.close()  # waits for a stream still running on it
        backend.load()
        return backend

    def agent(
        self,
        kb_name: str | None,
        *,
        model: str | None = None,
        grammar: bool | None = None,
        method: str | None = None,
        first_query: str | None = None,
        answer_model: str | None = None,
    ) -> Agent:
        """``first_query`` overrides ``loop.first_query`` (question, model or auto);
        ``answer_model`` overrides ``loop.answer_model`` (empty, base or a model): the
        model of the answer stage, loaded beside the searcher when it is another one."""
        path = self.model_path(model)
        backend = self.backend(model)
        first = first_query or self.config.loop.first_query
        if first == "auto":
            first = auto_first_query(path)
        if first not in ("question", "model"):
            raise ConfigError(f"first query is {first!r}: use auto, question or model.")
        answer_ref = self.answer_model_ref(model, answer_model)
        answer_path = self.model_path(answer_ref) if answer_ref is not None else path
        answer_backend = self.backend(answer_ref) if answer_path != path else None
        retriever = self.retriever(kb_name, method) if kb_name else None
        return Agent(
            backend,
            retriever,
            self.config,
            grammar=self._grammar(grammar, path, backend),
            first_query=first,  # type: ignore[arg-type]
            model_id=str(path),
            answer_backend=answer_backend,
            answer_grammar=self._grammar(grammar, answer_path, answer_backend or backend),
            answer_model_id=str(answer_path),
        )

    def _grammar(self, grammar: bool | None, path: Path, backend: Backend) -> bool:
        if grammar is not None:
            return grammar
        setting = self.config.loop.grammar
        # "auto" asks for a grammar only where the engine can apply one; "on" insists.
        can_constrain = backend.capabilities.constrained == "gbnf"
        return setting == "on" or (
            setting == "auto" and can_constrain and model_needs_grammar(path)
        )

    def answer_model_ref(self, model: str | None, answer_model: str | None = None) -> str | None:
        """The model reference the answer stage runs for a search ``model``; None for the
        searcher itself. ``answer_model`` (else ``loop.answer_model``): empty for the same
        model, ``base`` for the model a tuned model was trained from, ``auto`` for what the
        tuned model's guard found better of those two, or a model."""
        wanted = (self.config.loop.answer_model if answer_model is None else answer_model).strip()
        if wanted == "auto":
            wanted = auto_answer_model(self.model_path(model))
        if not wanted:
            return None
        if wanted == "base":
            return self.base_model_ref(model)
        return wanted

    def base_model_ref(self, model: str | None) -> str | None:
        """The base a tuned model (a name, ``name:variant`` or one of its files) was trained
        from, as its model.json records it; None for a model not tuned here."""
        base = tuned_info(self.model_path(model).expanduser().resolve()).get("base") or {}
        if not isinstance(base, dict):
            return None
        for key in ("reference", "gguf"):
            ref = str(base.get(key) or "").strip()
            if ref:
                return ref
        return None

    def release(self, model: str | None = None) -> None:
        """Close one loaded model (the compare view loads A, then B)."""
        key = str(self.model_path(model))
        with self._lock:
            backend = self._backends.pop(key, None)
        if backend is not None:
            backend.close()

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()


def auto_first_query(path: Path) -> str:
    """Who writes the first search of a run: what the tuned model's guard measured on
    held-out questions when it ran, else the model itself when it was tuned on the tag
    protocol and the app (with the question) for any other model."""
    recorded = str(recorded_guard(path).get("first_query", ""))
    if recorded in ("question", "model"):
        return recorded
    return "model" if model_is_tuned(path) else "question"


def auto_answer_model(path: Path) -> str:
    """Who writes the answer when the setting is ``auto``: ``base`` when the tuned model's
    guard found the tuned search with its base reading better than the tuned model alone,
    else the model that searched (``""``)."""
    return "base" if recorded_guard(path).get("answer_model") == "base" else ""


LOAD_TIME_SETTINGS = ("n_ctx", "n_threads", "seed")
"""Generation settings an engine takes when it loads the weights (the rest apply per call)."""


def _load_settings(source: object) -> tuple[object, ...]:
    config = getattr(source, "config", source)
    return tuple(getattr(config, name, None) for name in LOAD_TIME_SETTINGS)


def setup_logging(layout: DataLayout, level: int = logging.INFO) -> Path:
    """Send the full story (tracebacks included) to a rotating log file in the data dir."""
    path = layout.logs / "cotrag.log"
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "baseFilename", None) == str(path):
            return path
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(min(root.level or level, level))
    return path
