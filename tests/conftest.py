"""Shared test set-up: offline, headless, and a throwaway data dir per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.knowledge.embedder import Embedder, default_embedder
from core.knowledge.knowledge_base import KnowledgeBase
from core.knowledge.store import KnowledgeStore
from core.llm.engines import default_model_path
from core.paths import DataLayout
from core.workspace import Workspace

if TYPE_CHECKING:
    from tests.hub_server import HubServer

# Nothing in the test suite may reach a model hub, and Qt runs headless.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture
def ws(data_dir: Path) -> Iterator[Workspace]:
    """A workspace on the empty data dir, closed after the test (a test file that needs one
    with documents indexed, or shared by its tests, defines its own ``ws``)."""
    workspace = Workspace(data_dir)
    yield workspace
    workspace.close()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty data dir, also exported as COTRAG_DATA_DIR for code that reads the env."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("COTRAG_DATA_DIR", str(folder))
    yield folder


# -- models fixtures --


@pytest.fixture
def use_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[HubServer], Path]:
    """Point the app's hub client at a loopback hub, anonymously and online, with a fresh
    hub cache (returned) and the hub's faults cleared."""
    from huggingface_hub import constants

    def point(hub: HubServer) -> Path:
        cache = tmp_path / "hub-cache"
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(cache))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        # The suite runs the hub library offline; a loopback hub is the one exception.
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        hub.faults.reset()
        return cache

    return point


# -- the bundled model as training weights --


@pytest.fixture(scope="session")
def model_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that outlives the run (pytest's cache), keyed by the bundled GGUF."""
    gguf = default_model_path().stat()
    key = f"bundled-model-{gguf.st_size}-{int(gguf.st_mtime)}"
    cache = request.config.cache
    return cache.mkdir(key) if cache is not None else tmp_path_factory.mktemp(key)


@pytest.fixture(scope="session")
def base_weights(model_cache: Path) -> Path:
    """The bundled GGUF dequantized into the Hugging Face folder training starts from
    (``ensure_hf`` for real, once per bundled model): about half a minute that every data
    dir would otherwise pay again. A module that trains links it into its data dir with
    ``small_docs.share_base_weights``."""
    pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("transformers", reason="transformers is not installed")
    from core.training.base_models import ensure_hf, resolve_base

    return ensure_hf(resolve_base("default", DataLayout(model_cache)))


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
