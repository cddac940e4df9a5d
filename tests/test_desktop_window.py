"""The main window builds a tab when it is first shown or asked for, and wires it then as
it wired every tab at start-up before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from qt_helpers import IGNORED_QT_MESSAGES, settings_in

from core.workspace import Workspace
from desktop.window import MainWindow

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]

LATER = ("chat", "dataset", "training", "compare", "models")


@pytest.fixture
def ws(data_dir: Path) -> Iterator[Workspace]:
    workspace = Workspace(data_dir)
    yield workspace
    workspace.close()


def painted_window(qtbot: QtBot, ws: Workspace, tmp_path: Path) -> MainWindow:
    """The main window, shown and painted once."""
    window = MainWindow(ws, settings_in(tmp_path))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.painted, timeout=10_000)
    return window


def test_the_window_paints_with_only_the_tab_it_shows(
    qtbot: QtBot,
    ws: Workspace,
    tmp_path: Path,
) -> None:
    window = painted_window(qtbot, ws, tmp_path)
    assert window.tabs.built_content("kb") is window.kb_tab
    assert window.tabs.currentWidget() is window.kb_tab
    assert all(window.tabs.built_content(key) is None for key in LATER)

    window.tabs.setCurrentIndex(3)
    training = window.tabs.built_content("training")
    assert training is not None and training is window.training_tab
    assert window.tabs.currentWidget() is training and window.tabs.widget(3) is training
    assert window.tabs.built_content("chat") is None

    # The tabs are asked for as a plain QTabWidget has them.
    window.tabs.setCurrentWidget(window.models_tab)
    assert window.tabs.currentIndex() == 5 == window.tabs.indexOf(window.models_tab)
    qtbot.waitUntil(lambda: not window.kb_tab.busy(), timeout=60_000)


def test_the_restored_tab_is_built_at_start_and_kept_at_close(
    qtbot: QtBot,
    ws: Workspace,
    tmp_path: Path,
) -> None:
    settings = settings_in(tmp_path)
    settings.setValue("window/tab", 4)
    settings.setValue("window/chat_splitter", b"kept as it was")
    window = MainWindow(ws, settings)
    qtbot.addWidget(window)
    assert window.tabs.built_content("compare") is not None
    assert window.tabs.built_content("chat") is None
    window.close()
    assert settings.value("window/tab") == 4
    # The Chat tab never opened: its saved layout is left alone.
    assert settings.value("window/chat_splitter") == b"kept as it was"


def test_a_tab_built_late_hears_what_it_missed(
    qtbot: QtBot,
    ws: Workspace,
    tmp_path: Path,
) -> None:
    window = MainWindow(ws, settings_in(tmp_path))  # not shown: no list is read
    qtbot.addWidget(window)
    window.kb_tab.knowledge_bases_changed.emit(["Tea", "Bikes"], "Tea")
    window.kb_tab.knowledge_bases_changed.emit(["Tea", "Bikes"], "Bikes")
    window.kb_tab.knowledge_bases_changed.emit(["Tea", "Bikes", "Solar"], "Solar")
    chat = window.chat_tab
    # As if it had been there all along: it took "Tea" first and kept it.
    assert [chat.toolbar.kb_combo.itemText(i) for i in range(chat.toolbar.kb_combo.count())] == [
        "Tea",
        "Bikes",
        "Solar",
    ]
    assert chat.toolbar.kb_combo.currentText() == "Tea"

    # One tab streams with the model: a tab built afterwards knows it must wait.
    window.dataset_tab.run_state_changed.emit(True)
    assert not chat.ask_box.ask_button.isEnabled()
    compare = window.compare_tab
    assert not compare.side.ask_button.isEnabled()
    window.dataset_tab.run_state_changed.emit(False)
    assert compare.side.ask_button.isEnabled()


def test_a_tab_s_status_message_stays_with_its_tab(
    qtbot: QtBot,
    ws: Workspace,
    tmp_path: Path,
) -> None:
    window = painted_window(qtbot, ws, tmp_path)
    bar = window.statusBar()
    window.kb_tab.status_message.emit("Indexed 3 files.")
    assert bar.currentMessage() == "Indexed 3 files."
    # Another tab: the knowledge base's message does not follow the user there.
    window.tabs.setCurrentWidget(window.dataset_tab)
    assert bar.currentMessage() == ""
    window.dataset_tab.status_message.emit("Exported 10 rows.")
    assert bar.currentMessage() == "Exported 10 rows."
    # A message from a tab not shown waits for its tab.
    window.kb_tab.error.emit("The PDF is damaged.")
    assert bar.currentMessage() == "Exported 10 rows."
    window.tabs.setCurrentWidget(window.kb_tab)
    assert bar.currentMessage() == "The PDF is damaged."
    window.tabs.setCurrentWidget(window.dataset_tab)
    assert bar.currentMessage() == "Exported 10 rows."
    qtbot.waitUntil(lambda: not window.kb_tab.busy(), timeout=60_000)


def test_a_file_nothing_opens_is_shown_with_its_path(qtbot: QtBot, tmp_path: Path) -> None:
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QMessageBox, QWidget

    from desktop.open_path import open_path

    parent = QWidget()
    qtbot.addWidget(parent)
    missing = tmp_path / "logs" / "cotrag.log"
    assert not open_path(parent, missing, "log file")
    box = parent.findChild(QMessageBox)
    assert box is not None and box.isVisible()
    assert box.text() == "There is no log file yet. It will be here:"
    assert box.informativeText() == str(missing)
    copy = next(b for b in box.buttons() if b.text() == "Copy path")
    copy.click()
    assert QGuiApplication.clipboard().text() == str(missing)
    assert box.isVisible()  # copying leaves the dialog open
