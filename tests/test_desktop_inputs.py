"""Inputs the user did not touch never change: the mouse wheel over a combo box, spin box
or slider without focus scrolls the form around it instead (desktop/wheel_guard.py); the
job check refuses at once what the worker would; the window speaks the user's words."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QLabel, QScrollArea, QWidget
from qt_helpers import IGNORED_QT_MESSAGES, settings_in

from core.agent.events import RunStats
from core.dataset.reasons import REJECTION_LABELS
from core.durations import loss_text, took
from core.knowledge.manifest import DocInfo
from core.workspace import Workspace
from desktop.bar_chart import ROW
from desktop.chat_footer import format_stats
from desktop.compare_table import EvaluationTable
from desktop.dataset_report import QualityReport
from desktop.dataset_tab import DatasetTab
from desktop.kb_tab import KnowledgeTab
from desktop.trace_blocks import ProtocolErrorRow
from desktop.training_tab import TrainingTab
from desktop.wheel_guard import install_wheel_guard

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]


def wheel_down(widget: QWidget) -> None:
    """One notch of the wheel, down, over the middle of ``widget``."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(QPoint(int(centre.x()), int(centre.y())))),
        QPoint(0, 0),
        QPoint(0, -120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def test_the_wheel_over_an_unfocused_combo_box_scrolls_the_training_form(  # type: ignore[no-untyped-def]
    qtbot, ws: Workspace, tmp_path: Path
) -> None:
    install_wheel_guard()
    tab = TrainingTab(ws, settings_in(tmp_path))
    qtbot.addWidget(tab)
    tab.resize(1024, 520)  # short enough that the form scrolls
    tab.show()
    qtbot.waitExposed(tab)
    fields = tab.form.fields
    combo = fields.engine_combo
    viewport = fields.parentWidget()
    assert viewport is not None
    scroll = viewport.parentWidget()
    assert isinstance(scroll, QScrollArea)
    bar = scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    assert combo.currentData() == "auto"
    assert combo.focusPolicy() == Qt.FocusPolicy.StrongFocus
    tab.grab().save("/tmp/inputs/training-wheel-before.png")

    wheel_down(combo)
    qtbot.waitUntil(lambda: bar.value() > 0)
    assert combo.currentData() == "auto"  # the engine stays as the user left it
    for spin in (fields.max_steps, fields.batch_size):
        before = spin.value()
        wheel_down(spin)
        assert spin.value() == before

    # With focus (a click or Tab), the wheel is the user's: the value changes.
    tab.activateWindow()
    combo.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(combo.hasFocus)
    wheel_down(combo)
    qtbot.waitUntil(lambda: combo.currentData() != "auto")


def test_the_guard_is_installed_once(qapp) -> None:  # type: ignore[no-untyped-def]
    assert install_wheel_guard() is install_wheel_guard()


def test_start_refuses_at_once_what_the_worker_would_refuse_here(  # type: ignore[no-untyped-def]
    qtbot, ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible, whatever the machine
    tab = TrainingTab(ws, settings_in(tmp_path))
    qtbot.addWidget(tab)
    tab.resize(1024, 700)
    tab.show()
    engine = tab.form.fields.engine_combo
    engine.setCurrentIndex(engine.findData("unsloth"))
    started = time.monotonic()
    tab.start()
    qtbot.waitUntil(lambda: tab.banner.isVisible(), timeout=5_000)
    assert time.monotonic() - started < 2.0
    assert "engine is unsloth but no NVIDIA GPU is visible" in tab.banner.text()
    assert not tab.running and tab.form.start_button.isEnabled()
    tab.grab().save("/tmp/inputs/training-unsloth-refused.png")


# -- the user's words, not the program's ------------------------------------------------
def test_rejection_reasons_are_plain_words_with_the_code_in_the_tooltip(qtbot) -> None:  # type: ignore[no-untyped-def]
    report = QualityReport()
    qtbot.addWidget(report)
    report.resize(420, 600)
    report.show_report(
        {
            "examples": 10,
            "documents": 3,
            "rejected": 9,
            "acceptance_rate": 0.5,
            "splits": {"train": 8, "validation": 2},
            "rejections": {"one_hop": 2, "round_trip_second_hop": 4, "near_duplicate": 3},
        }
    )
    report.show()
    chart = report.charts["rejections"]
    labels = [label for label, _ in chart.values]
    assert labels == ["2nd search misses", "repeats a question", "one search is enough"]
    assert not any("_" in label for label in labels)
    assert "(round_trip_second_hop)" in chart.tip_at(ROW + 1)
    assert "(one_hop)" in chart.tip_at(3 * ROW + 1)
    # Each label fits the chart's label column at its narrowest (150 px).
    metrics = chart.fontMetrics()
    assert all(metrics.horizontalAdvance(label) <= 144 for label in REJECTION_LABELS.values())
    report.grab().save("/tmp/inputs/dataset-report-reasons.png")


def test_a_protocol_error_and_the_run_figures_read_as_words(qtbot) -> None:  # type: ignore[no-untyped-def]
    row = ProtocolErrorRow("repeated_query", "searched 'backup schedule' again")
    qtbot.addWidget(row)
    assert "the same search twice" in row.text() and "repeated_query" not in row.text()
    assert "repeated_query" in row.toolTip()
    stats = RunStats(rounds=2, prompt_tokens=1840, cached_tokens=620, seconds=4.2)
    stats.protocol_errors = 1
    text = format_stats(stats)
    assert "cache" not in text and "evaluated" not in text
    assert "1,840 tokens read, 620 already known" in text and "1 format slip" in text
    table = EvaluationTable()
    qtbot.addWidget(table)
    names = [label.text() for label in table.findChildren(QLabel)]
    assert "Runs with a format slip" in names and not any("Protocol" in n for n in names)


def test_cotrag_trains_final_line_is_rounded() -> None:
    assert took(23 * 60 + 31.4) == "23 min 31 s" and took(42.4) == "42 s"
    assert took(3725) == "1 h 02 min"
    assert loss_text(0.02647238431705369) == "0.026" and loss_text(0.3472823481992405) == "0.347"
    assert loss_text(None) == "–" and loss_text(0.00123) == "0.0012"


# -- enabled only with something to act on -----------------------------------------------
def test_remove_document_and_generate_wait_for_something_to_act_on(  # type: ignore[no-untyped-def]
    qtbot, ws: Workspace, tmp_path: Path
) -> None:
    kb = KnowledgeTab(ws)
    qtbot.addWidget(kb)
    kb.resize(1024, 700)
    kb.show()
    kb.refresh()
    panel = kb.documents_panel
    qtbot.waitUntil(lambda: panel.documents.count() == 1)  # the placeholder
    assert not panel.remove_button.isEnabled()
    assert panel.remove_button.toolTip() == "No documents to remove"
    kb.grab().save("/tmp/inputs/kb-empty.png")
    panel.show_documents(
        [DocInfo("/docs/a.md", "h1", 3, "2026-01-01T00:00:00Z"), DocInfo("/docs/b.md", "h2", 2, "")]
    )
    assert not panel.remove_button.isEnabled() and "Select" in panel.remove_button.toolTip()
    panel.documents.item(1).setSelected(True)
    assert (
        panel.remove_button.isEnabled() and "1 selected document" in panel.remove_button.toolTip()
    )
    panel.set_busy(True)
    assert not panel.remove_button.isEnabled()

    data = DatasetTab(ws, settings_in(tmp_path))
    qtbot.addWidget(data)
    data.resize(1024, 700)
    data.show()
    form = data.form
    assert (
        not form.generate_button.isEnabled()
        and "No knowledge base" in form.generate_button.toolTip()
    )
    assert not form.export_button.isEnabled() and not form.delete_button.isEnabled()
    data.set_knowledge_bases(["Manuals"], "Manuals")
    assert form.generate_button.isEnabled() and form.generate_button.text() == "Generate"
    data.grab().save("/tmp/inputs/dataset-fresh.png")
    data.shutdown()
    kb.shutdown()
