"""The welcome of a first start: shown on a fresh data folder only, gone for good once
dismissed, never on a folder with content; its sample knowledge base is really indexed, and
a suggested question is asked in the chat of that knowledge base.

The chat's generator is a FAKE (tests/fakes.ScriptedBackend, scripted tags); the search is
the real one over the guide."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import ScriptedBackend
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot
from qt_helpers import IGNORED_QT_MESSAGES, settings_in

from core.agent.loop import Agent
from core.first_run import SAMPLE_KB, suggested_questions
from core.knowledge import service
from core.workspace import Workspace
from desktop.window import WELCOME_DISMISSED, MainWindow

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]

SCRIPT = [
    "<think>The guide lists the formats.</think>\n<query>file formats knowledge base</query>",
    "<think>Passage 1 has them.</think>\n<results>[1] lists the formats.</results>",
    "PDF, Word, Markdown, HTML, reStructuredText and plain text [1].",
]


@pytest.fixture
def ws(data_dir: Path) -> Iterator[Workspace]:
    workspace = Workspace(data_dir)
    yield workspace
    workspace.close()


def open_window(qtbot: QtBot, ws: Workspace, settings: QSettings) -> MainWindow:
    window = MainWindow(ws, settings)
    qtbot.addWidget(window)
    window.resize(1024, 700)
    window.show()
    qtbot.waitUntil(lambda: window.painted, timeout=10_000)
    return window


def close_window(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.kb_tab.busy(), timeout=60_000)
    window.close()


def test_the_welcome_shows_on_a_fresh_folder_until_it_is_dismissed(
    qtbot: QtBot, ws: Workspace, tmp_path: Path
) -> None:
    settings = settings_in(tmp_path)
    window = open_window(qtbot, ws, settings)
    welcome = window.welcome
    assert welcome is not None and welcome.isVisible() and not window.tabs.isVisible()
    assert welcome.create_button.isVisible() and welcome.close_button.text() == "Not now"
    assert not any(b.isVisible() for b in welcome.question_buttons)

    qtbot.mouseClick(welcome.close_button, Qt.MouseButton.LeftButton)
    assert window.welcome is None and window.tabs.isVisible()
    assert window.tabs.currentWidget() is window.kb_tab
    assert settings.value(WELCOME_DISMISSED, False, type=bool)
    close_window(qtbot, window)

    # The folder is as fresh as before, but the welcome was dismissed: it does not return.
    again = open_window(qtbot, ws, settings)
    assert again.welcome is None and again.tabs.isVisible()
    close_window(qtbot, again)


def test_a_folder_with_a_knowledge_base_gets_no_welcome(
    qtbot: QtBot, ws: Workspace, tmp_path: Path
) -> None:
    service.create(ws, "Mine")
    window = open_window(qtbot, ws, settings_in(tmp_path))
    assert window.welcome is None and window.tabs.isVisible()
    close_window(qtbot, window)
    assert [kb.name for kb in service.list_kbs(ws)] == ["Mine"]


def test_the_sample_is_made_and_a_suggested_question_is_asked_in_the_chat(
    qtbot: QtBot, ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ScriptedBackend(SCRIPT)

    def agent(kb_name: str | None, **_: object) -> Agent:  # the real search, a FAKE model
        return Agent(backend, ws.retriever(kb_name) if kb_name else None, ws.config)  # type: ignore[arg-type]

    monkeypatch.setattr(ws, "agent", agent)
    settings = settings_in(tmp_path)
    window = open_window(qtbot, ws, settings)
    welcome = window.welcome
    assert welcome is not None
    qtbot.mouseClick(welcome.create_button, Qt.MouseButton.LeftButton)
    assert welcome.progress.isVisible() and welcome.progress.cancel_button.isEnabled()
    assert not welcome.create_button.isVisible()
    assert not welcome.close_button.isEnabled()  # not dismissed halfway
    qtbot.waitUntil(lambda: not welcome.working, timeout=120_000)
    assert welcome.banner.isHidden(), welcome.banner.text()
    buttons = welcome.question_buttons
    assert [b.text() for b in buttons] == [q.text for q in suggested_questions()]
    assert all(b.isVisible() for b in buttons) and not welcome.progress.isVisible()
    assert welcome.close_button.text() == "Close"
    # The Knowledge base tab lists the guide behind the welcome.
    qtbot.waitUntil(lambda: window.kb_tab.current_kb == SAMPLE_KB, timeout=60_000)

    question = buttons[0].text()
    qtbot.mouseClick(buttons[0], Qt.MouseButton.LeftButton)
    chat = window.chat_tab
    assert window.welcome is None and window.tabs.currentWidget() is chat
    assert settings.value(WELCOME_DISMISSED, False, type=bool)
    assert chat.toolbar.kb == SAMPLE_KB
    qtbot.waitUntil(lambda: not chat.running, timeout=60_000)
    bubbles = [w.text() for w in chat.trace.blocks if isinstance(w, QLabel)]
    assert bubbles[:1] == [question]
    assert chat.conversation is not None and chat.conversation.kb == SAMPLE_KB
    turn = chat.conversation.turns[0]
    assert turn["question"] == question
    # The search ran over the guide: the passages shown come from its pages.
    sources = {Path(hit.source).parent.name for hit in chat.trace.passages.values()}
    assert sources == {"guide"}
    close_window(qtbot, window)


def test_each_empty_tab_says_what_to_do_first_and_links_to_that_tab(
    qtbot: QtBot, ws: Workspace, tmp_path: Path
) -> None:
    settings = settings_in(tmp_path)
    settings.setValue(WELCOME_DISMISSED, True)
    window = open_window(qtbot, ws, settings)
    qtbot.waitUntil(lambda: not window.kb_tab.busy(), timeout=60_000)
    tabs = window.tabs
    chat, dataset, training = window.chat_tab, window.dataset_tab, window.training_tab
    compare = window.compare_tab
    qtbot.waitUntil(lambda: not training.jobs.busy(), timeout=30_000)
    empty_states = [
        (chat.trace.empty_label, "No knowledge base yet", "kb"),
        (dataset.examples.empty_hint, "there is none yet", "kb"),
        (compare.side.trace_a.empty_label, "No knowledge base yet", "kb"),
        (training.monitor.status_label, "make a dataset", "dataset"),
    ]
    for label, says, key in empty_states:
        assert says in label.text() and f'href="{key}"' in label.text(), label.text()
        tabs.setCurrentWidget(window.models_tab)
        label.linkActivated.emit(key)  # what a click on its link sends
        assert tabs.key_at(tabs.currentIndex()) == key

    # With a knowledge base, the chat and the dataset say what to do next instead.
    window.kb_tab.knowledge_bases_changed.emit(["Mine"], "Mine")
    assert "Ask a question below" in chat.trace.empty_label.text()
    assert "press Generate" in dataset.examples.empty_hint.text()
    close_window(qtbot, window)
