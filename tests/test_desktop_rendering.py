"""Answers and passages rendered right: citations outside code only, unbalanced Markdown
closed, the app's own passage labels, numbers that grow, cut and stopped runs said."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QTextDocument
from qt_helpers import IGNORED_QT_MESSAGES

from core.agent.events import (
    Answer,
    BlockEnd,
    BlockStart,
    Finished,
    Retrieval,
    RunStats,
    Token,
)
from core.agent.record import RunRecord
from core.knowledge.types import Hit
from desktop.markdown_text import balance_markdown, markdown_plain, render_markdown, snippet_of
from desktop.replay import events_from_record
from desktop.trace_blocks import CUT_MARK, StoppedRow
from desktop.trace_view import TraceView

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]

HITS = [
    Hit(f"p#{i}", f"Passage {i} text.", 0.9 - i / 10, "/docs/path.md", "", 20 + i) for i in range(4)
]


def anchors(doc: QTextDocument) -> list[tuple[str, str]]:
    """(text, href) of every link in the document."""
    found = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.charFormat().isAnchor():
                found.append((fragment.text(), fragment.charFormat().anchorHref()))
            it += 1
        block = block.next()
    return found


@pytest.fixture
def view(qtbot):  # type: ignore[no-untyped-def]
    widget = TraceView()
    qtbot.addWidget(widget)
    widget.resize(700, 600)
    widget.show()
    return widget


def test_citations_inside_code_stay_the_models_text(qapp) -> None:  # type: ignore[no-untyped-def]
    doc = QTextDocument()
    text = "Call `items[2]` as [2] says.\n\n```\nx = rows[1]\n```\n\nSee [1, 2] and [9]."
    render_markdown(doc, text, {1, 2})
    plain = doc.toPlainText()
    assert "items[2]" in plain and "x = rows[1]" in plain
    assert "cite:" not in plain and "\\[" not in plain
    assert anchors(doc) == [("[2]", "cite:2"), ("1", "cite:1"), ("2", "cite:2")]


def test_unbalanced_markdown_is_closed_or_neutralised(qapp) -> None:  # type: ignore[no-untyped-def]
    # A stray backtick must not pair with a later one and turn the text between monospace.
    stray = "Run the ` installer first.\nThen open `settings` and **save."
    doc = QTextDocument()
    render_markdown(doc, stray, set())
    mono = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            if it.fragment().charFormat().fontFixedPitch():
                mono.append(it.fragment().text())
            it += 1
        block = block.next()
    assert mono == ["settings"]
    assert "Run the ` installer" in doc.toPlainText() and "**save" in doc.toPlainText()
    # A fence the model never closed is closed where it stopped; balanced text is untouched.
    assert balance_markdown("Code:\n```\nx = 1").endswith("x = 1\n```")
    assert balance_markdown("`a` and ``b`c`` **d**") == "`a` and ``b`c`` **d**"


def test_markdown_reads_without_its_marks(qapp) -> None:  # type: ignore[no-untyped-def]
    assert markdown_plain("### Setup\n\nRun `make` **now**.") == "Setup\nRun make now."
    # A snippet is one line, without the heading shown beside it.
    assert snippet_of("### Setup\n\nRun `make`\n**now**.", heading="Guide > Setup") == (
        "Run make now."
    )


def test_vetted_passages_carry_the_apps_labels_and_links(view: TraceView, qtbot) -> None:  # type: ignore[no-untyped-def]
    view.handle(
        [
            Retrieval("q", HITS[:3], [1, 2, 3]),
            BlockStart("results"),
            # The model copied a wrong label for [3] and made one up for a passage never shown.
            BlockEnd("results", "[3] path.md#50 — it names the port\n[6] path.md#78: more"),
        ]
    )
    results = view.block_widgets("results")[0]
    text = results.text()
    assert "[3] path.md#22 — it names the port" in text
    assert "#50" not in text and "#78" not in text
    assert "[6] (no passage has this number) — more" in text
    assert 'href="cite:3"' in results.body.toHtml() and "cite:6" not in results.body.toHtml()
    with qtbot.waitSignal(view.passage_requested) as signal:
        results.body.anchorClicked.emit(QUrl("cite:3"))
    assert signal.args == [HITS[2]]


def test_passages_shown_again_keep_their_number_and_new_ones_grow(view: TraceView) -> None:
    view.handle(
        [
            Retrieval("first", [HITS[0], HITS[1]], [1, 2]),
            Retrieval("second", [HITS[2], HITS[1], HITS[3], HITS[0]], [3, 2, 4, 1]),
        ]
    )
    first, second = view.passage_widgets()
    assert [c.number for c in first.cards] == [1, 2]
    assert [c.number for c in second.cards] == [3, 4]
    assert sorted(second.again) == [1, 2]
    shown = [n for w in view.passage_widgets() for n in (c.number for c in w.cards)]
    assert shown == sorted(shown)


def test_a_cut_answer_and_a_stopped_run_say_so_live_and_reopened(view: TraceView) -> None:
    cut_run = [
        Retrieval("q", HITS[:1], [1]),
        BlockStart("answer"),
        Token("answer", "The port is 80 and the"),
        BlockEnd("answer", "The port is 80 and the"),
        Answer("The port is 80 and the", [], cut=True),
        Finished("answered", RunStats()),
    ]
    stopped_run = [
        BlockStart("think"),
        Token("think", "Let me"),
        BlockEnd("think", "Let me"),
        Finished("cancelled", RunStats()),
    ]
    for reopen in (False, True):
        view.clear()
        for question, events in (("cut?", cut_run), ("stop?", stopped_run)):
            record = RunRecord(question=question)
            for event in events:
                record.add(event)  # type: ignore[arg-type]
            view.add_question(question)
            replayed: list[object] = list(events_from_record(record.to_dict()))
            view.handle(replayed if reopen else list(events))
        answer = view.block_widgets("answer")[0]
        assert answer.cut and answer.text().endswith(CUT_MARK)
        stopped = [w for w in view.blocks if isinstance(w, StoppedRow)]
        assert len(stopped) == 1 and view.blocks[-1] is stopped[0]


def test_an_old_record_without_the_cut_flag_still_loads() -> None:
    record = RunRecord(question="q")
    record.add(Answer("Done.", []))
    data = record.to_dict()
    del data["answer_cut"]
    assert not RunRecord.from_dict(data).answer_cut


def test_the_thinking_label_opens_and_closes_the_block(view: TraceView, qtbot) -> None:  # type: ignore[no-untyped-def]
    view.handle([BlockStart("think"), BlockEnd("think", "Thinking it over.")])
    think = view.block_widgets("think")[0]
    qtbot.mouseClick(think.title, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: think.collapsed)
    qtbot.mouseClick(think.title, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not think.collapsed)
