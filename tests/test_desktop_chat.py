"""Chat tab and main window: asking, the live trace, Stop, conversations, settings, closing.

Most tests drive the real agent loop with tests/fakes.ScriptedBackend, a FAKE generator
(scripted outputs), because they are about the window's behaviour; one test asks the
real bundled model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import KeywordRetriever, ScriptedBackend, ScriptedSession
from PySide6.QtCore import Qt, QUrl
from qt_helpers import IGNORED_QT_MESSAGES, settings_in

from core.agent.loop import Agent
from core.config import load_config
from core.knowledge.indexer import Indexer
from core.llm.base import Chunk, StreamRequest
from core.workspace import Workspace
from desktop.chat_tab import ChatTab
from desktop.passage_dialog import PassageDialog
from desktop.settings_dialog import SettingsDialog
from desktop.trace_blocks import StoppedRow
from desktop.window import MainWindow

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]

PASSAGES = {
    "tea.md": "Brew green tea at 70 to 80 degrees Celsius for two minutes.",
    "bike.txt": "Oil the bicycle chain every few hundred kilometres.",
}
SCRIPT = [
    "<think>I need the water temperature.</think>\n<query>green tea water degrees</query>",
    "<think>Passage 1 answers it.</think>\n<results>[1] gives the temperature.</results>",
    "Brew it at **70 to 80 degrees** [1].",
]


class SlowSession(ScriptedSession):
    """The FAKE session, pausing between tokens like a slow model."""

    def stream(self, request: StreamRequest) -> Iterator[Chunk]:
        for chunk in super().stream(request):
            time.sleep(0.01)
            yield chunk


class SlowBackend(ScriptedBackend):
    def session(self, prompt: str, *, reuse_cache: bool = True) -> ScriptedSession:
        session = SlowSession(self, prompt, reuse_cache)
        self.sessions.append(session)
        return session


def use_backend(monkeypatch: pytest.MonkeyPatch, ws: Workspace, backend: object) -> None:
    retriever = KeywordRetriever(PASSAGES)

    def agent(kb_name: str | None, **_: object) -> Agent:
        return Agent(backend, retriever if kb_name else None, ws.config)  # type: ignore[arg-type]

    monkeypatch.setattr(ws, "agent", agent)


@pytest.fixture
def chat(qtbot, ws: Workspace, tmp_path: Path) -> ChatTab:  # type: ignore[no-untyped-def]
    tab = ChatTab(ws, settings_in(tmp_path))
    qtbot.addWidget(tab)
    tab.resize(1100, 750)
    tab.show()
    tab.set_knowledge_bases(["Tea"], "Tea")
    return tab


def click_conversation(qtbot, chat: ChatTab, row: int) -> None:  # type: ignore[no-untyped-def]
    """Open a listed conversation as the user does: a click on its row."""
    listing = chat.side.list
    rect = listing.visualItemRect(listing.item(row))
    qtbot.mouseClick(listing.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_ask_shows_the_trace_in_order_with_clickable_citations_and_saves_it(
    qtbot,
    chat: ChatTab,
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    use_backend(monkeypatch, ws, ScriptedBackend(SCRIPT))
    chat.ask_box.question.setPlainText("How hot should green tea water be?")
    chat.ask_box.ask_button.click()
    assert not chat.ask_box.ask_button.isEnabled() and chat.ask_box.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not chat.running, timeout=20_000)
    assert chat.ask_box.ask_button.isEnabled() and not chat.ask_box.stop_button.isEnabled()

    trace = chat.trace
    tags = [getattr(w, "tag", type(w).__name__) for w in trace.blocks]
    assert tags == ["QLabel", "think", "query", "PassagesWidget", "think", "results", "answer"]
    assert "70 to 80 degrees" in trace.block_widgets("answer")[0].text()
    assert "tokens/s" in chat.footer.text() and "1 round" in chat.footer.text()

    trace.block_widgets("answer")[0].body.anchorClicked.emit(QUrl("cite:1"))
    dialog = chat.findChild(PassageDialog)
    assert dialog is not None and dialog.hit.source == "tea.md"
    dialog.close()

    # Saved as one JSON file with the full trace, listed, and reopened the same.
    files = list(ws.layout.conversations.glob("*.json"))
    assert len(files) == 1
    saved = json.loads(files[0].read_text("utf-8"))
    assert (
        saved["turns"][0]["answer"].startswith("Brew it")
        and "<query_res>" in (saved["turns"][0]["trace"])
    )
    assert chat.side.ids() == [saved["id"]]
    chat.new_conversation()
    assert trace.blocks == [] and trace.empty_label.isVisibleTo(trace)
    click_conversation(qtbot, chat, 0)
    tags_again = [getattr(w, "tag", type(w).__name__) for w in chat.trace.blocks]
    assert tags_again == tags
    assert 'href="cite:1"' in chat.trace.block_widgets("answer")[0].body.toHtml()

    target = chat.export_to(Path(files[0].parent.parent / "export.json")) or (
        files[0].parent.parent / "export.json"
    )
    assert json.loads(Path(target).read_text("utf-8"))["id"] == saved["id"]
    chat.delete_current()
    assert chat.side.ids() == [] and not list(ws.layout.conversations.glob("*.json"))


def test_stop_ends_the_run_and_re_enables_the_controls(
    qtbot,
    chat: ChatTab,
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    long_think = "<think>" + "let me think about this carefully " * 70 + "</think>"
    ws.config.loop.max_block_tokens = 1000
    ws.config.loop.max_total_tokens = 1024
    use_backend(monkeypatch, ws, SlowBackend([long_think, *SCRIPT]))
    chat.ask("How hot should green tea water be?")
    qtbot.waitUntil(lambda: len(chat.trace.block_widgets("think")) == 1, timeout=10_000)
    qtbot.mouseClick(chat.ask_box.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.running, timeout=10_000)
    assert chat.ask_box.ask_button.isEnabled() and not chat.ask_box.question.isReadOnly()
    assert chat.footer.text().startswith("Stopped.")
    assert not chat.trace.block_widgets("answer")
    assert isinstance(chat.trace.blocks[-1], StoppedRow)
    # Reopened, the stopped question still says so, in the trace and the footer.
    conv = chat.conversation
    assert conv is not None
    qtbot.waitUntil(lambda: bool(chat.conversations.load(conv.id).turns), timeout=10_000)
    chat.new_conversation()
    chat.open_conversation(conv.id)
    assert isinstance(chat.trace.blocks[-1], StoppedRow)
    assert chat.footer.text().startswith("Stopped.")


def test_buttons_with_nothing_to_act_on_are_disabled_and_the_thumbs_follow_the_turn(  # type: ignore[no-untyped-def]
    qtbot, chat: ChatTab, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    side, ask = chat.side, chat.ask_box.ask_button
    # No conversation open: nothing to export or delete.
    assert not side.export_button.isEnabled() and not side.delete_button.isEnabled()
    assert "Open a conversation" in side.delete_button.toolTip()
    # No knowledge base: Ask has nothing to search, unless the mode is closed book.
    chat.set_knowledge_bases([], "")
    assert not ask.isEnabled() and "No knowledge base" in ask.toolTip()
    mode = chat.toolbar.mode_combo
    mode.setCurrentIndex(mode.findData("closed"))
    assert ask.isEnabled()
    mode.setCurrentIndex(mode.findData("loop"))
    chat.set_knowledge_bases(["Tea"], "Tea")
    assert ask.isEnabled()

    use_backend(monkeypatch, ws, ScriptedBackend(SCRIPT))
    chat.ask("How hot should green tea water be?")
    qtbot.waitUntil(lambda: not chat.running, timeout=20_000)
    assert side.export_button.isEnabled() and side.delete_button.isEnabled()
    assert chat.footer.thumb_up.isVisibleTo(chat)
    # A new answer being written: the thumbs and Add to dataset… are not the last turn's.
    long_think = "<think>" + "let me think about this carefully " * 70 + "</think>"
    ws.config.loop.max_block_tokens, ws.config.loop.max_total_tokens = 1000, 1024
    use_backend(monkeypatch, ws, SlowBackend([long_think, *SCRIPT]))
    chat.ask("And black tea?")
    qtbot.waitUntil(lambda: len(chat.trace.block_widgets("think")) == 2, timeout=10_000)
    footer = chat.footer
    assert not footer.thumb_up.isVisibleTo(chat) and not footer.thumb_down.isVisibleTo(chat)
    assert not footer.add_dataset_button.isVisibleTo(chat)
    chat.stop()
    qtbot.waitUntil(lambda: not chat.running, timeout=10_000)
    chat.new_conversation()
    assert not side.export_button.isEnabled() and not side.delete_button.isEnabled()


def test_a_failure_is_a_sentence_in_the_window(
    qtbot,
    chat: ChatTab,
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    chat.set_knowledge_bases([], "")
    chat.toolbar.kb_combo.setCurrentIndex(-1)
    chat.ask("anything")
    assert chat.banner.isVisibleTo(chat) and "knowledge base" in chat.banner.text()
    assert not chat.running


def test_closing_the_window_during_a_run_exits_cleanly(
    qtbot,
    ws: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    long_think = "<think>" + "still thinking " * 300 + "</think>"
    ws.config.loop.max_block_tokens = 1000
    ws.config.loop.max_total_tokens = 1024
    use_backend(monkeypatch, ws, SlowBackend([long_think]))
    settings = settings_in(tmp_path)
    window = MainWindow(ws, settings)
    qtbot.addWidget(window)
    window.show()
    # The window's own start-up reading (the knowledge bases) is over: what is timed is
    # closing during the chat's run.
    qtbot.waitUntil(lambda: not window.kb_tab.busy(), timeout=60_000)
    window.chat_tab.set_knowledge_bases(["Tea"], "Tea")
    window.chat_tab.ask("How hot?")
    qtbot.waitUntil(lambda: bool(window.chat_tab.trace.blocks[1:]), timeout=10_000)
    job = window.chat_tab.current_job
    assert job is not None and job.running
    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < 5
    assert job.wait(timeout=0)  # its thread has ended
    assert settings.value("window/geometry") is not None


def test_settings_dialog_validates_and_saves_to_the_toml_config(
    qtbot,
    ws: Workspace,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    dialog = SettingsDialog(ws, settings_in(tmp_path))
    qtbot.addWidget(dialog)
    dialog.editor("chunking", "overlap").setValue(900)  # type: ignore[attr-defined]
    dialog.save()
    assert (
        dialog.error_label.isVisibleTo(dialog) and "chunking.overlap" in dialog.error_label.text()
    )
    assert not ws.layout.config_file.exists()
    dialog.editor("chunking", "overlap").setValue(100)  # type: ignore[attr-defined]
    dialog.editor("loop", "max_rounds").setValue(5)  # type: ignore[attr-defined]
    dialog.editor("loop", "grammar").setCurrentText("on")  # type: ignore[attr-defined]
    dialog.save()
    saved = load_config(ws.layout.config_file)
    assert saved.loop.max_rounds == 5 and saved.loop.grammar == "on"
    assert saved.chunking.overlap == 100 and ws.config.loop.max_rounds == 5


@pytest.mark.model
def test_asking_the_bundled_model_streams_a_trace_to_the_end(
    qtbot,
    chat: ChatTab,
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    ws.config.loop.max_rounds = 1
    ws.config.loop.max_block_tokens = 48
    ws.config.loop.max_total_tokens = 160
    ws.config.generation.answer_max_tokens = 48
    retriever = KeywordRetriever(PASSAGES)
    monkeypatch.setattr(
        ws, "agent", lambda kb, **_: Agent(ws.backend(), retriever, ws.config, grammar=True)
    )
    finished: list[object] = []
    chat.trace.run_finished.connect(finished.append)
    chat.ask("How hot should green tea water be?")
    qtbot.waitUntil(lambda: not chat.running, timeout=120_000)
    assert finished and finished[0].reason == "answered", chat.banner.text()  # type: ignore[attr-defined]
    tags = [b.tag for b in chat.trace.block_widgets()]
    assert tags[0] == "think" and tags[-1] == "answer"
    assert "results" in tags
    assert chat.trace.block_widgets("answer")[0].finished
    assert "tokens/s" in chat.footer.text()


class FailingSession(ScriptedSession):
    """The FAKE session, failing once the answer stage starts (a backend crash mid-run)."""

    def stream(self, request: StreamRequest) -> Iterator[Chunk]:
        if "Passages:" in self.prompt:
            raise RuntimeError("the engine ran out of memory")
        yield from super().stream(request)


class FailingBackend(ScriptedBackend):
    def session(self, prompt: str, *, reuse_cache: bool = True) -> ScriptedSession:
        session = FailingSession(self, prompt, reuse_cache)
        self.sessions.append(session)
        return session


def test_a_run_that_fails_after_streaming_keeps_its_trace_and_is_saved(
    qtbot,
    chat: ChatTab,
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    use_backend(monkeypatch, ws, FailingBackend(SCRIPT))
    chat.ask("How hot should green tea water be?")
    qtbot.waitUntil(lambda: not chat.running, timeout=20_000)
    assert "out of memory" in chat.banner.text()
    assert chat.trace.block_widgets("results")  # still on screen
    files = list(ws.layout.conversations.glob("*.json"))
    assert len(files) == 1
    turn = json.loads(files[0].read_text("utf-8"))["turns"][0]
    assert turn["finished"] == "error" and "out of memory" in turn["error"]
    assert "<results>" in turn["trace"]


def test_a_citation_opens_the_passage_of_its_own_question(
    qtbot,
    chat: ChatTab,
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    second = [
        "<think>Chain care.</think>\n<query>oil bicycle chain</query>",
        "<think>Passage 1.</think>\n<results>[1] says how often.</results>",
        "Every few hundred kilometres [1].",
    ]
    use_backend(monkeypatch, ws, ScriptedBackend([*SCRIPT, *second]))
    chat.ask("How hot should green tea water be?")
    qtbot.waitUntil(lambda: not chat.running, timeout=20_000)
    chat.ask("How often should I oil the chain?")
    qtbot.waitUntil(lambda: not chat.running, timeout=20_000)
    first_answer, second_answer = chat.trace.block_widgets("answer")

    for widget, source in ((first_answer, "tea.md"), (second_answer, "bike.txt")):
        widget.body.anchorClicked.emit(QUrl("cite:1"))
        dialog = chat.last_dialog
        assert isinstance(dialog, PassageDialog) and dialog.hit.source == source
        dialog.close()
    # Reopened from disk, the same holds.
    click_conversation(qtbot, chat, 0)
    first_answer, second_answer = chat.trace.block_widgets("answer")
    first_answer.body.anchorClicked.emit(QUrl("cite:1"))
    assert chat.last_dialog.hit.source == "tea.md"


def test_the_seeded_search_shows_as_the_apps_and_errors_stay_in_place_when_reopened(
    qtbot,
    chat: ChatTab,
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    script = [
        "<think>Again.</think>\n<query>How hot should green tea water be</query>",
        "<think>Passage 1 answers it.</think>\n<results>[1] gives the temperature.</results>",
        "Brew it at **70 to 80 degrees** [1].",
    ]
    retriever = KeywordRetriever(PASSAGES)
    backend = ScriptedBackend(script)

    def agent(kb_name: str | None, **_: object) -> Agent:
        return Agent(backend, retriever, ws.config, first_query="question")

    monkeypatch.setattr(ws, "agent", agent)
    chat.ask("How hot should green tea water be?")
    qtbot.waitUntil(lambda: not chat.running, timeout=20_000)

    def drawn() -> list[str]:
        out = []
        for w in chat.trace.blocks:
            title = getattr(w, "title", None)
            out.append(title.text() if title is not None else type(w).__name__)
        return out

    live = drawn()
    assert live[1] == "SEARCH · THE APP SEARCHED WITH YOUR QUESTION"
    assert "ProtocolErrorRow" in live and "NOTE FROM THE APP" in live
    assert live.index("ProtocolErrorRow") < live.index("NOTE FROM THE APP")
    click_conversation(qtbot, chat, 0)
    assert drawn() == live


def test_thumbs_and_add_to_dataset_turn_a_question_into_an_example(
    qtbot,
    chat: ChatTab,
    ws: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in PASSAGES.items():
        (docs / name).write_text(text, "utf-8")
    kb = ws.store.create("Tea")
    list(Indexer(kb, ws.embedder, ws.config.chunking).run([docs]))
    use_backend(monkeypatch, ws, ScriptedBackend(SCRIPT))
    assert not chat.footer.add_dataset_button.isVisibleTo(chat)
    chat.ask("How hot should green tea water be?")
    qtbot.waitUntil(lambda: not chat.running, timeout=20_000)
    assert chat.footer.add_dataset_button.isVisibleTo(chat)
    chat.footer.thumb_up.click()
    saved = json.loads(next(ws.layout.conversations.glob("*.json")).read_text("utf-8"))
    assert saved["turns"][0]["feedback"] == "up"

    chat.add_to_dataset("from-chat", "purple", "")
    qtbot.waitUntil(lambda: not chat.jobs.busy(), timeout=60_000)
    assert "Not added: no passage" in chat.banner.text()

    chat.add_to_dataset("from-chat", "70 to 80 degrees", "Brew it at 70 to 80 degrees [1].")
    qtbot.waitUntil(lambda: not chat.jobs.busy(), timeout=60_000)
    lines = (ws.layout.datasets / "from-chat" / "examples.jsonl").read_text("utf-8").splitlines()
    example = json.loads(lines[0])
    assert example["question"] == "How hot should green tea water be?"
    assert example["question_origin"] == "import" and example["source"].endswith("tea.md")
    assert example["record"]["answer"] == "Brew it at 70 to 80 degrees [1]."


def test_the_footer_says_what_a_run_waits_for_and_keeps_its_clock_running(qtbot) -> None:  # type: ignore[no-untyped-def]
    from desktop.chat_footer import ChatFooter

    footer = ChatFooter()
    qtbot.addWidget(footer)
    footer.start_clock("Loading the model…")
    assert footer.text().startswith("Loading the model… 0.")
    # Nothing arrives while the model loads: the time still moves.
    qtbot.waitUntil(lambda: footer.text() not in ("Loading the model… 0.0 s",), timeout=3000)
    qtbot.waitUntil(lambda: float(footer.text().split()[-2]) >= 0.4, timeout=3000)
    footer.set_phase("Generating…")
    assert footer.text().startswith("Generating… ") and footer.text().endswith(" s")
    footer.set_text("Stopping…")  # a plain text stops the clock
    qtbot.wait(450)
    assert footer.text() == "Stopping…"
