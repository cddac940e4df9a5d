"""Shared test set-up: offline, headless, and a throwaway data dir per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.workspace import Workspace

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
