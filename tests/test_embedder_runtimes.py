"""The fast embedding runtimes (ONNX Runtime, OpenVINO) against torch, on the bundled MiniLM.

Real exports of the real model into a temp folder: each takes a few seconds.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from core.config import EmbedderBackend
from core.knowledge import embedder_runtimes
from core.knowledge.embedder import Embedder, default_embedder
from core.knowledge.embedder_runtimes import export_dir

SENTENCES = [
    "How do I publish a scoped package?",
    "npm ci installs exactly what package-lock.json lists.",
    "Les dépendances vont dans node_modules.",
    "word " * 300,  # past the 256-token cut
]
RUNTIME_MODULE: dict[EmbedderBackend, str] = {"onnx": "onnxruntime", "openvino": "openvino"}
RUNTIME_NEEDS: dict[EmbedderBackend, tuple[str, ...]] = {
    "onnx": ("onnxruntime", "onnx"),  # chromadb brings onnxruntime; the export needs onnx
    "openvino": ("openvino",),
}
INSTALLED: list[EmbedderBackend] = [
    b
    for b, modules in RUNTIME_NEEDS.items()
    if all(importlib.util.find_spec(m) is not None for m in modules)
]


def _needs(backend: EmbedderBackend) -> None:
    if backend not in INSTALLED:
        needs = " ".join(RUNTIME_NEEDS[backend])
        pytest.skip(f"the {backend} backend needs {needs} (pip install {needs})")


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return np.array(default_embedder().embed(SENTENCES))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache for the module, so each runtime is exported once."""
    return tmp_path_factory.mktemp("embedders")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_fast_runtime_gives_torchs_vectors(
    backend: EmbedderBackend, cache: Path, torch_vectors: np.ndarray
) -> None:
    _needs(backend)
    embedder = Embedder(backend=backend, cache_dir=cache)

    vectors = np.array(embedder.embed(SENTENCES))

    assert embedder.backend == backend
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert cosines.min() >= 0.999, cosines
    # Same vectors, so the same name: a knowledge base built with torch stays searchable.
    assert embedder.model_name == default_embedder().model_name
    assert embedder.dimension == len(vectors[0])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_export_is_complete_and_reused(
    backend: EmbedderBackend,
    cache: Path,
    torch_vectors: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _needs(backend)
    Embedder(backend=backend, cache_dir=cache).load()
    folder = export_dir(cache, Embedder().model_path, backend)
    assert (folder / "export.json").exists()
    assert _leftovers(cache) == []
    assert not Embedder(backend=backend, cache_dir=cache).will_prepare()  # exported already

    def no_export(*_args: object) -> None:
        raise AssertionError("the cached export should have been used")

    monkeypatch.setattr(embedder_runtimes, "export_model", no_export)
    again = Embedder(backend=backend, cache_dir=cache)
    assert again.backend == backend
    assert (np.array(again.embed(SENTENCES[:1])) * torch_vectors[:1]).sum() >= 0.999


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_a_first_load_says_it_will_export_first(backend: EmbedderBackend, tmp_path: Path) -> None:
    _needs(backend)
    assert Embedder(backend=backend, cache_dir=tmp_path).will_prepare()  # nothing cached
    assert not Embedder(backend="torch", cache_dir=tmp_path).will_prepare()


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_missing_runtime_falls_back_to_torch(
    backend: EmbedderBackend,
    tmp_path: Path,
    torch_vectors: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, RUNTIME_MODULE[backend], None)  # import now fails
    embedder = Embedder(backend=backend, cache_dir=tmp_path)

    with caplog.at_level(logging.WARNING, logger="core.knowledge.embedder"):
        vectors = np.array(embedder.embed(SENTENCES))

    assert embedder.backend == "torch"
    assert "pip install" in caplog.text and "torch is used instead" in caplog.text
    np.testing.assert_allclose(vectors, torch_vectors, atol=1e-5)
    assert list(tmp_path.iterdir()) == []


def test_auto_without_runtimes_is_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in RUNTIME_MODULE.values():
        monkeypatch.setitem(sys.modules, module, None)
    assert Embedder(backend="auto", cache_dir=tmp_path).backend == "torch"


def test_auto_prefers_the_fastest_installed(cache: Path) -> None:
    if not INSTALLED:
        pytest.skip("neither onnxruntime nor openvino is installed")
    expected = "openvino" if "openvino" in INSTALLED else "onnx"
    assert Embedder(backend="auto", cache_dir=cache, device="cpu").backend == expected


def test_export_that_fails_the_check_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if not INSTALLED:
        pytest.skip("neither onnxruntime nor openvino is installed")
    backend = INSTALLED[0]
    monkeypatch.setattr(embedder_runtimes, "MIN_COSINE", 1.5)  # no export can pass

    with caplog.at_level(logging.WARNING, logger="core.knowledge.embedder"):
        embedder = Embedder(backend=backend, cache_dir=tmp_path)
        assert embedder.backend == "torch"

    assert "differ from torch's" in caplog.text
    assert list(tmp_path.iterdir()) == []  # neither the export nor its temp folder


def test_interrupted_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not INSTALLED:
        pytest.skip("neither onnxruntime nor openvino is installed")

    def half_export(backend: str, model_path: Path, out: Path) -> None:
        (out / "model.onnx").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(embedder_runtimes, "export_model", half_export)
    with pytest.raises(KeyboardInterrupt):
        Embedder(backend=INSTALLED[0], cache_dir=tmp_path).load()
    assert list(tmp_path.iterdir()) == []


def test_openvino_sends_no_telemetry(tmp_path: Path) -> None:
    """Importing openvino (and exporting with ov.convert_model) would start its telemetry: a
    client id under ~/intel and events sent without asking. A fresh process, so the import
    itself is part of the test."""
    _needs("openvino")
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "from core.knowledge.embedder import Embedder; import sys; "
        "e = Embedder(backend='openvino', cache_dir=sys.argv[1]); e.load(); print(e.backend)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache")],
        env={**os.environ, "HOME": str(home)},
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.stdout.strip() == "openvino", done.stderr[-2000:]
    assert list(home.iterdir()) == []


def test_openvino_export_via_onnx_when_its_telemetry_is_live(
    tmp_path: Path, torch_vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If something else already imported openvino_telemetry, ov.convert_model would report
    usage: the export then goes torch -> ONNX -> OpenVINO's reader, same vectors."""
    _needs("openvino")
    if importlib.util.find_spec("onnx") is None:
        pytest.skip("onnx is not installed (pip install onnx)")
    monkeypatch.setitem(sys.modules, "openvino_telemetry", types.ModuleType("openvino_telemetry"))

    embedder = Embedder(backend="openvino", cache_dir=tmp_path)
    vectors = np.array(embedder.embed(SENTENCES))

    assert embedder.backend == "openvino"
    assert ((vectors * torch_vectors).sum(axis=1) >= 0.999).all()
    assert not (export_dir(tmp_path, embedder.model_path, "openvino") / "model.onnx").exists()
