"""The screen audit: at 1024×700 and 1600×1000, on every tab with content in it, every
visible text fits its widget (or is elided with the whole text in its tooltip) and no two
sibling widgets overlap. The window is built once for the module: a knowledge base (the
real embedder), a dataset of template traces, a saved multi-round conversation reopened in
the chat, a finished training run, and the compare tab with its models chosen."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)
from qt_helpers import settings_in
from small_docs import tiny_workspace

from core.agent.record import RunRecord
from core.chat import keep_turn
from core.conversations import ConversationStore
from core.dataset.storage import DatasetStore
from core.workspace import Workspace
from desktop.fit import fit_combo
from desktop.screen_audit import audit, report
from desktop.screenshots import stage_finished_run, wait_until
from desktop.style import stylesheet
from desktop.window import MainWindow

SIZES = [(1024, 700), (1600, 1000)]
TABS = ["kb", "chat", "dataset", "training", "compare", "models"]


@pytest.fixture(scope="module")
def window(qapp: QApplication, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MainWindow]:
    root = tmp_path_factory.mktemp("audit")
    qapp.setStyleSheet(stylesheet())  # the app's look: its fonts and paddings take room
    ws = tiny_workspace(root, examples=6)
    assert isinstance(ws, Workspace)
    examples = DatasetStore(ws.layout.datasets).open("tiny").examples()
    record = max(examples, key=lambda e: int(e.get("rounds", 0)))["record"]
    store = ConversationStore(ws.layout.conversations)
    conversation = keep_turn(store, RunRecord.from_dict(record), kb="docs")
    stage_finished_run(ws, "tiny", "tiny-tuned")
    win = MainWindow(ws, settings_in(root))
    win.tabs.build_all()
    win.resize(1024, 700)
    win.show()
    assert wait_until(lambda: win.painted and not win.kb_tab.busy(), 60)
    win.chat_tab.open_conversation(conversation.id)
    win.dataset_tab.open_dataset("tiny")
    assert wait_until(lambda: win.dataset_tab.examples.table.rowCount() > 0, 30)
    win.dataset_tab.examples.table.selectRow(0)
    history = win.training_tab.history.table
    assert wait_until(lambda: history.rowCount() > 0, 30)
    history.selectRow(0)  # its loss curve and figures in the monitor
    assert wait_until(lambda: len(win.training_tab.monitor.chart.train) > 0, 30)
    yield win
    win.close()
    QApplication.processEvents()
    qapp.setStyleSheet("")
    ws.close()


def _settle(seconds: float = 0.3) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_tab_is_readable(window: MainWindow, size: tuple[int, int]) -> None:
    window.resize(*size)
    failures: list[str] = []
    for key in TABS:
        window.tabs.setCurrentWidget(window.tabs.content(key))
        _settle()
        if (window.width(), window.height()) != size:
            failures.append(f"{key}: the window is {window.width()}x{window.height()}, not {size}")
        found = audit(window)
        failures.extend(f"{key}: {line}" for line in report(found).splitlines())
    assert not failures, "\n".join(failures)


def test_the_audit_finds_clipped_text_and_overlapping_siblings(qapp: QApplication) -> None:
    host = QWidget()
    row = QHBoxLayout(host)
    clipped = QLabel("A label far too long for the room it has")
    clipped.setFixedWidth(60)
    elided = QLabel("A label far…")
    elided.setToolTip("A label far too long for the room it has")
    elided.setFixedWidth(90)
    cut_combo = QComboBox()
    cut_combo.addItem("A choice far too long for its box")
    cut_combo.setFixedWidth(90)
    fitted = fit_combo(QComboBox())
    fitted.addItem("A choice far too long for its box, shortened")
    fitted.setFixedWidth(90)
    for widget in (clipped, elided, cut_combo, fitted):
        row.addWidget(widget)
    row.addStretch()
    loose = QPushButton("Covered", host)
    loose.setGeometry(0, 0, 120, 30)  # over the layout's labels
    host.resize(600, 60)
    host.show()
    _settle(0.1)
    found = audit(host)
    clipped_found = [f for f in found if f.problem == "clipped"]
    assert [f.text for f in clipped_found] == [
        "A label far too long for the room it has",
        "A choice far too long for its box",
    ]
    assert clipped_found[0].need > clipped_found[0].have == 60
    assert "QLabel" in clipped_found[0].path
    overlaps = [f for f in found if f.problem == "overlaps"]
    assert overlaps and all("'Covered'" in f.detail for f in overlaps)
    host.close()
