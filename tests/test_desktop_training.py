"""Training and Compare tabs for real: the worker runs through QProcess on the CPU, the
tuned model lands in the chat's picker, and the compare view pairs the answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from qt_helpers import IGNORED_QT_MESSAGES, settings_in
from small_docs import share_base_weights, tiny_workspace

from core.models.installed import ModelRegistry
from core.training.runs import RunStore
from core.training.spec import PRESET_NOTES, TrainSpec
from core.workspace import Workspace
from desktop.chat_tab import ChatTab
from desktop.compare_tab import CompareTab
from desktop.training_tab import TrainingTab

pytestmark = [
    pytest.mark.model,
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, base_weights: Path) -> Iterator[Workspace]:
    workspace = tiny_workspace(tmp_path_factory.mktemp("gui-train"))
    share_base_weights(workspace, base_weights)
    assert isinstance(workspace, Workspace)
    # The compare view's answers are checked for being there, not for their length.
    workspace.config.generation.answer_max_tokens = 48
    yield workspace
    workspace.close()


@pytest.fixture
def tab(qtbot, ws: Workspace, tmp_path: Path) -> Iterator[TrainingTab]:  # type: ignore[no-untyped-def]
    widget = TrainingTab(ws, settings_in(tmp_path))
    qtbot.addWidget(widget)
    widget.resize(1300, 820)
    widget.show()
    widget.refresh()
    qtbot.waitUntil(lambda: widget.form.dataset_combo.count() > 0, timeout=20_000)
    yield widget
    widget.shutdown()


def small(tab: TrainingTab, name: str, steps: int) -> None:
    fields = tab.form.fields
    tab.form.name_edit.setText(name)
    fields.max_steps.setValue(steps)
    fields.batch_size.setValue(1)
    fields.eval_every.setValue(0)
    fields.checkpoint_every.setValue(2)
    fields.learning_rate.setText("2e-3")
    for kind, box in fields.export_boxes.items():
        box.setChecked(kind == "lora")


def test_the_form_holds_the_spec_and_a_bad_value_is_a_sentence(qtbot, tab: TrainingTab) -> None:  # type: ignore[no-untyped-def]
    tab.form.preset_combo.setCurrentIndex(tab.form.preset_combo.findData("cpu-full"))
    spec = tab.spec()
    assert spec.dataset == "tiny" and spec.base == "default"
    assert spec.epochs == 2.0 and spec.lora_r == 32 and "q4_k_m" in spec.exports
    tab.form.fields.learning_rate.setText("fast")
    tab.start()
    qtbot.waitUntil(lambda: tab.banner.isVisible(), timeout=30_000)
    assert "learning_rate" in tab.banner.text()
    assert not tab.running and tab.form.start_button.isEnabled()


def test_a_taken_run_name_is_said_in_the_windows_words_and_resume_is_offered(  # type: ignore[no-untyped-def]
    qtbot, tab: TrainingTab, ws: Workspace
) -> None:
    run = RunStore(ws.layout).create("walk-5", TrainSpec(dataset="tiny"))
    run.write_state("cancelled")
    (run.checkpoints / "step-2").mkdir(parents=True)
    (run.checkpoints / "step-2" / "trainer.pt").write_bytes(b"")  # what Resume looks for
    tab.refresh()
    qtbot.waitUntil(lambda: tab.history.row_of("walk-5") >= 0, timeout=20_000)
    assert not tab.history.resume_button.isEnabled()  # nothing selected yet
    tab.form.name_edit.setText("walk-5")
    tab.start()
    qtbot.waitUntil(lambda: tab.banner.isVisible(), timeout=60_000)
    text = tab.banner.text()
    assert "“walk-5” exists already" in text and "press Resume" in text
    assert "--resume" not in text
    assert tab.history.selected_run() == "walk-5" and tab.history.resume_button.isEnabled()
    assert tab.form.start_button.isEnabled() and not tab.running
    tab.grab().save("/tmp/inputs/training-run-exists.png")
    RunStore(ws.layout).delete("walk-5")


def test_each_preset_says_what_it_is_for(tab: TrainingTab) -> None:
    combo = tab.form.preset_combo
    for i in range(combo.count()):
        combo.setCurrentIndex(i)
        note = PRESET_NOTES[str(combo.itemData(i))]
        assert combo.itemData(i, Qt.ItemDataRole.ToolTipRole) == note
        assert tab.form.preset_note.text() == note and combo.toolTip() == note


def test_a_run_trains_cancels_resumes_and_its_model_reaches_the_chat(  # type: ignore[no-untyped-def]
    qtbot, tab: TrainingTab, ws: Workspace, tmp_path: Path
) -> None:
    small(tab, "gui-run", 4)
    tab.start()
    qtbot.waitUntil(lambda: tab.running, timeout=60_000)
    qtbot.waitUntil(lambda: len(tab.monitor.chart.train) >= 2, timeout=300_000)
    tab.cancel()
    qtbot.waitUntil(lambda: not tab.running, timeout=120_000)
    assert "cancelled" in tab.monitor.status_label.text()

    # The history is re-read in the background after the run ends: wait for that read.
    qtbot.waitUntil(lambda: tab.history.cell("gui-run", "State") == "cancelled", timeout=20_000)
    tab.history.select("gui-run")
    assert tab.history.resume_button.isEnabled()
    steps_before = len(tab.monitor.chart.train)
    with qtbot.waitSignal(tab.models_changed, timeout=400_000):
        tab.resume_selected()
    assert "done" in tab.monitor.status_label.text()
    assert len(tab.monitor.chart.train) >= steps_before
    assert tab.monitor.chart.train[-1][0] == 4
    assert ModelRegistry(ws.layout).find("gui-run") is not None

    chat = ChatTab(ws, settings_in(tmp_path))
    qtbot.addWidget(chat)
    assert chat.model_combo.findData("gui-run") >= 0

    compare = CompareTab(ws, settings_in(tmp_path))
    qtbot.addWidget(compare)
    compare.resize(1300, 820)
    compare.show()
    compare.set_knowledge_bases(["docs"], "docs")
    compare.refresh()
    compare.b_combo.setCurrentIndex(compare.b_combo.findData("gui-run"))
    compare.mode_combo.setCurrentIndex(compare.mode_combo.findData("rag"))
    compare.question.setText("When does the backup service run?")
    compare.ask_both()
    qtbot.waitUntil(lambda: not compare.running, timeout=300_000)
    assert compare.trace_a.blocks and compare.trace_b.blocks
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"question": "When does the backup service run?", "answers": ["02:00"]})
        + "\n"
        + json.dumps({"question": "Which port does the proxy listen on?", "answers": ["8443"]})
        + "\n",
        "utf-8",
    )
    compare.set_qa_file(str(qa))
    compare.run_comparison()
    qtbot.waitUntil(lambda: not compare.running, timeout=300_000)
    assert compare.result["table"]["questions"] == 2
    assert compare.per_question.rowCount() == 2
    assert "McNemar" in compare.paired_label.text()
    compare.shutdown()
    chat.shutdown()


def test_a_live_run_keeps_its_header_row_and_bar_current(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.training.events import Eval, Started, Step

    ws = Workspace(tmp_path / "data")
    tab = TrainingTab(ws, settings_in(tmp_path))
    qtbot.addWidget(tab)
    monitor, history = tab.monitor, tab.history
    history.fill([{"name": "walk", "state": "running", "step": 0, "total": 0}])
    assert history.cell("walk", "Step") == "–"  # no count yet, not "0/0"
    monitor.run_name = "walk"
    monitor.working()
    monitor.show_event(Started(engine="torch", device="cpu", total=60), live=True)
    assert "the first step takes longest" in monitor.status_label.text()
    monitor.show_event(Eval(step=0, loss=1.5), live=True)
    assert "before training; step 1" in monitor.status_label.text()
    # The Runs table follows the steps while the run goes on (not "0/0" until it ends).
    monitor.show_event(Step(step=3, total=60, loss=1.25), live=True)
    assert history.cell("walk", "Step") == "3/60" and history.cell("walk", "Loss") == "1.250"
    assert monitor.progress.value() == 3
    # Cancelled: the bar stays where the run stopped.
    monitor.finished(False)
    assert (monitor.progress.value(), monitor.progress.maximum()) == (3, 60)
    # Resumed: the header says where it goes on from, not "the first step".
    monitor.show_event(Started(engine="torch", device="cpu", total=60, start_step=3), live=True)
    assert "resumed at step 3/60" in monitor.status_label.text()
    monitor.finished(True)
    assert monitor.progress.value() == monitor.progress.maximum() == 1
    ws.close()
