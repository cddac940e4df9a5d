"""Inputs the user did not touch never change: the mouse wheel over a combo box, spin box
or slider without focus scrolls the form around it instead (desktop/wheel_guard.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea, QWidget
from qt_helpers import IGNORED_QT_MESSAGES, settings_in

from core.workspace import Workspace
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
