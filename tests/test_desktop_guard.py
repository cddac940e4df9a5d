"""A tuned model's guard verdict in the app: every model picker marks a worse model (which
the user may still choose), the Training tab's finished run shows the verdict in one
line with "Compare with base", and the Compare tab opens on the stored table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qt_helpers import IGNORED_QT_MESSAGES, settings_in

from core.models.installed import ModelRegistry
from core.training.events import Done, GuardDone
from core.workspace import Workspace
from desktop.chat_toolbar import ChatToolbar
from desktop.compare_tab import CompareTab
from desktop.models_installed import InstalledModels
from desktop.training_lists import read_lists

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]

SENTENCE = (
    "Worse than the base: 9/40 vs 13/40 right on held-out questions (only tuned 2, only "
    "base 6, McNemar p = 0.29)."
)
TABLE = {"questions": 40, "both": 7, "only_a": 6, "only_b": 2, "neither": 25, "mcnemar_p": 0.29}


def _worse_model(ws: Workspace, name: str = "tuned-worse") -> None:
    """A tuned model's folder as the export and the guard leave it."""
    folder = ModelRegistry(ws.layout).tuned_root / name
    folder.mkdir(parents=True)
    (folder / "model.q8_0.gguf").write_bytes(b"GGUF")
    guard = {
        "verdict": "worse",
        "sentence": SENTENCE,
        "table": TABLE,
        "first_query": "question",
        "base": "default",
        "dataset": "docs-qa",
    }
    info = {"name": name, "tuned": True, "base": {"reference": "default"}, "guard": guard}
    info["dataset"] = {"name": "docs-qa"}
    (folder / "model.json").write_text(json.dumps(info), "utf-8")


def test_every_picker_marks_a_worse_model_and_it_can_still_be_chosen(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = Workspace(tmp_path / "data")
    _worse_model(ws)
    toolbar = ChatToolbar(ws)
    qtbot.addWidget(toolbar)
    toolbar.refresh_models()
    at = toolbar.model_combo.findData("tuned-worse")
    assert toolbar.model_combo.itemText(at) == "tuned-worse \u2014 worse than base"
    assert toolbar.model is None  # the bundled model stays chosen
    toolbar.model_combo.setCurrentIndex(at)  # the user may still choose it
    assert toolbar.model == "tuned-worse"

    compare = CompareTab(ws, settings_in(tmp_path))
    qtbot.addWidget(compare)
    compare.refresh()
    b = compare.b_combo.findData("tuned-worse")
    assert compare.b_combo.itemText(b).endswith("\u2014 worse than base")
    # Opening on it shows the stored paired table without running anything.
    compare.open_guard("tuned-worse")
    assert compare.b_combo.currentData() == "tuned-worse"
    assert compare.a_combo.currentData() == "default"
    text = compare.guard_label.text()
    assert not compare.guard_label.isHidden() and SENTENCE in text
    assert "only tuned 2 · only base 6 · neither 25" in text and not compare.running
    compare.b_combo.setCurrentIndex(compare.b_combo.findData("default"))
    assert compare.guard_label.isHidden()

    lists = read_lists(ws.layout, colab=False)
    assert lists.labels["tuned-worse"] == "tuned-worse \u2014 worse than base"
    installed = InstalledModels(ws)
    qtbot.addWidget(installed)
    installed.refresh()
    cells = [installed.table.item(r, 0) for r in range(installed.table.rowCount())]
    names = [c.text() for c in cells if c is not None]
    assert "tuned-worse \u2014 worse than base" in names
    assert ws.config.model == ""  # listing it made nothing the default


def test_the_training_tab_ends_with_the_verdict_and_opens_compare(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from desktop.training_tab import TrainingTab

    ws = Workspace(tmp_path / "data")
    _worse_model(ws)
    tab = TrainingTab(ws, settings_in(tmp_path))
    qtbot.addWidget(tab)
    fields = tab.form.fields
    assert fields.guard_box.isChecked() and tab.spec().guard and tab.spec().guard_qa == ""
    # The guard's own questions: a QA file the user names (greyed out with the guard off).
    fields.guard_qa.setText(" /somewhere/my-questions.jsonl ")
    assert tab.spec().guard_qa == "/somewhere/my-questions.jsonl"
    fields.guard_box.setChecked(False)
    assert not tab.spec().guard and not fields.guard_qa.parentWidget().isEnabled()
    monitor = tab.monitor
    monitor.show_event(GuardDone(verdict="worse", sentence=SENTENCE, table=TABLE), live=True)
    monitor.show_event(Done(model="tuned-worse", guard=SENTENCE), live=True)
    assert not monitor.guard_row.isHidden() and monitor.verdict_label.text() == SENTENCE
    with qtbot.waitSignal(tab.compare_requested) as asked:
        monitor.compare_button.click()
    assert asked.args == ["tuned-worse"]
