"""Shared test set-up: offline, headless, and a throwaway data dir per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.knowledge.embedding import Embedder, default_embedder
from core.knowledge.knowledge_base import KnowledgeBase
from core.knowledge.store import KnowledgeStore
from core.paths import DataLayout

# Nothing in the test suite may reach a model hub, and Qt runs headless.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty data dir, also exported as COTRAG_DATA_DIR for code that reads the env."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("COTRAG_DATA_DIR", str(folder))
    yield folder


# -- knowledge fixtures --
# The real store on a throwaway data dir, with the bundled embedder (loaded once per process).


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return default_embedder()


@pytest.fixture
def layout(data_dir: Path) -> DataLayout:
    return DataLayout(data_dir)


@pytest.fixture
def store(layout: DataLayout, embedder: Embedder) -> KnowledgeStore:
    return KnowledgeStore(layout, embedder=embedder)


@pytest.fixture
def kb(store: KnowledgeStore) -> KnowledgeBase:
    """An empty knowledge base named ``test``."""
    return store.create("test")
