"""The reader in the app: the Chat toolbar's "Answer with" choice (shown for a tuned model
only, sent with the question, the toolbar still fitting a window 1024 pixels wide) and the
Training form's reader rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes import KeywordRetriever, ScriptedBackend
from PySide6.QtWidgets import QComboBox, QPushButton
from qt_helpers import IGNORED_QT_MESSAGES, settings_in

from core.agent.loop import Agent
from core.training.spec import TrainSpec
from core.workspace import Workspace
from desktop.chat_tab import ChatTab
from desktop.spec_fields import SpecFields

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]


def add_tuned(ws: Workspace, name: str) -> None:
    """A tuned model as a training run leaves it (model.json naming its base, an export)."""
    folder = ws.layout.models / "tuned" / name
    folder.mkdir(parents=True)
    (folder / "model.q8_0.gguf").write_bytes(b"GGUF")
    info = {"tuned": True, "base": {"reference": "default", "name": "default"}}
    (folder / "model.json").write_text(json.dumps(info), "utf-8")


def test_answer_with_shows_for_a_tuned_model_and_goes_with_the_question(
    qtbot: Any, ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_tuned(ws, "my-tuned")
    asked: list[dict[str, object]] = []

    def agent(kb_name: str | None, **kwargs: object) -> Agent:
        asked.append(kwargs)
        backend = ScriptedBackend(["The answer [1]."])
        return Agent(backend, KeywordRetriever({"a.md": "The answer."}), ws.config)

    monkeypatch.setattr(ws, "agent", agent)
    tab = ChatTab(ws, settings_in(tmp_path))
    qtbot.addWidget(tab)
    tab.resize(1024, 700)
    tab.show()
    tab.set_knowledge_bases(["Docs"], "Docs")
    bar = tab.toolbar
    assert bar.model is None and not bar.answer_combo.isVisible()
    assert bar.answer_model is None, "an untuned model follows the setting"
    bar.model_combo.setCurrentIndex(bar.model_combo.findData("my-tuned"))
    assert bar.answer_combo.isVisible() and bar.answer_label.isVisible()
    assert bar.answer_model == "auto", "the setting's default: what the guard measured"
    bar.answer_combo.setCurrentIndex(bar.answer_combo.findData(""))
    assert bar.answer_model == ""
    bar.answer_combo.setCurrentIndex(bar.answer_combo.findData("base"))
    assert bar.answer_model == "base"
    # Nothing is cut or overlaps at 1024 pixels.
    assert tab.width() == 1024 and tab.minimumSizeHint().width() <= 1024
    shown = [
        w for w in (*bar.findChildren(QComboBox), *bar.findChildren(QPushButton)) if w.isVisible()
    ]
    assert len(shown) == 6
    boxes = [w.geometry() for w in shown]
    assert all(a == b or not a.intersects(b) for a in boxes for b in boxes)
    assert all(box.right() <= bar.width() for box in boxes)
    tab.ask("What is it?")
    qtbot.waitUntil(lambda: not tab.running, timeout=10_000)
    assert asked and asked[-1]["answer_model"] == "base"
    bar.set_enabled_for_run(True)
    assert not bar.answer_combo.isEnabled()


def test_the_training_form_holds_the_reader_rows(qtbot: Any) -> None:
    fields = SpecFields()
    qtbot.addWidget(fields)
    fields.show_spec(TrainSpec(dataset="d", raft_rows=3, raft_absent_share=0.25))
    assert (fields.raft_rows.value(), fields.raft_absent.value()) == (3, 0.25)
    fields.raft_rows.setValue(1)
    fields.raft_absent.setValue(0.4)
    read = fields.read(TrainSpec(dataset="d"))
    assert (read.raft_rows, read.raft_absent_share) == (1, 0.4)
    fields.set_kind("embedder")
    assert not fields.row_visible(fields.raft_rows)
    fields.set_kind("generator")
    assert fields.row_visible(fields.raft_rows) and fields.row_visible(fields.raft_absent)
