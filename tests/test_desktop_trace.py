"""The live trace view and the worker-to-GUI bridge (no model, no store)."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import Qt, QUrl
from qt_helpers import IGNORED_QT_MESSAGES

from core.agent.events import (
    Answer,
    BlockEnd,
    BlockStart,
    Finished,
    ProtocolError,
    Retrieval,
    RunStats,
    Token,
)
from core.agent.events import coalesce_tokens as merge_tokens
from core.agent.record import RunRecord
from core.knowledge.types import Hit
from desktop.replay import events_from_record
from desktop.tasks import Job
from desktop.trace_view import TraceView

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]

TEA = Hit("t#0", "Brew green tea at 70 to 80 degrees.", 0.81, "/docs/tea.md", "Tea > Water", 0)
BIKE = Hit("b#2", "Oil the chain every few hundred km.", 0.42, "/docs/bike.txt", "", 2)


def tokens(tag: str, text: str) -> list[object]:
    return [Token(tag, word) for word in text.split(" ") for word in (word + " ",)]


def sample_run() -> list[object]:
    think = "I should look up the water temperature."
    return [
        BlockStart("think"),
        *tokens("think", think),
        BlockEnd("think", think),
        BlockStart("query"),
        *tokens("query", "green tea water"),
        BlockEnd("query", "green tea water"),
        Retrieval("green tea water", [TEA, BIKE], [1, 2]),
        BlockStart("query_res"),
        BlockEnd("query_res", "[1] tea.md#0: Brew green tea …"),
        ProtocolError("stray_text", "Text outside any block was ignored."),
        BlockStart("results"),
        BlockEnd("results", "[1] gives the temperature."),
        BlockStart("answer"),
        *tokens("answer", "Use water at 70 to 80 degrees [1]."),
        BlockEnd("answer", "Use water at **70 to 80 degrees** [1]."),
        Answer("Use water at **70 to 80 degrees** [1].", [1]),
        Finished("answered", RunStats(rounds=1, completion_tokens=40, generation_seconds=0.5)),
    ]


@pytest.fixture
def view(qtbot):  # type: ignore[no-untyped-def]
    widget = TraceView()
    qtbot.addWidget(widget)
    widget.resize(700, 600)
    widget.show()
    return widget


def test_blocks_appear_in_protocol_order_with_cards_and_errors(view: TraceView) -> None:
    view.handle(sample_run())
    kinds = [type(w).__name__ + ":" + getattr(w, "tag", "") for w in view.blocks]
    assert kinds == [
        "BlockWidget:think",
        "BlockWidget:query",
        "PassagesWidget:",
        "ProtocolErrorRow:",
        "BlockWidget:results",
        "BlockWidget:answer",
    ]
    cards = view.passage_widgets()[0].cards
    assert [(c.number, c.hit.source) for c in cards] == [(1, "/docs/tea.md"), (2, "/docs/bike.txt")]
    assert view.error_rows()[0].kind == "stray_text"
    answer = view.block_widgets("answer")[0]
    # Markdown was rendered (bold markers gone) and the citation is a link.
    assert "**" not in answer.text() and "70 to 80 degrees" in answer.text()
    assert 'href="cite:1"' in answer.body.toHtml()
    assert not view.empty_label.isVisible()


def test_an_open_block_streams_as_plain_text_before_it_is_rendered(view: TraceView) -> None:
    view.handle([BlockStart("answer"), Token("answer", "Use **bold** [1]")])
    block = view.block_widgets("answer")[0]
    assert not block.finished and block.text() == "Use **bold** [1]"
    view.handle([Token("answer", " more"), BlockEnd("answer", "Use **bold** [1] more")])
    assert block.finished and block.text() == "Use bold [1] more"


def test_clicking_a_citation_or_a_card_opens_that_passage(view: TraceView, qtbot) -> None:  # type: ignore[no-untyped-def]
    view.handle(sample_run())
    with qtbot.waitSignal(view.passage_requested) as signal:
        view.block_widgets("answer")[0].body.anchorClicked.emit(QUrl("cite:1"))
    assert signal.args == [TEA]
    card = view.passage_widgets()[0].cards[1]
    with qtbot.waitSignal(view.passage_requested) as signal:
        qtbot.mouseClick(card, Qt.MouseButton.LeftButton)
    assert signal.args == [BIKE]


def test_thinking_can_be_collapsed(view: TraceView, qtbot) -> None:  # type: ignore[no-untyped-def]
    view.handle(sample_run())
    think = view.block_widgets("think")[0]
    assert not think.collapsed
    qtbot.mouseClick(think.toggle, Qt.MouseButton.LeftButton)
    assert think.collapsed and think.body.isHidden()
    qtbot.mouseClick(think.toggle, Qt.MouseButton.LeftButton)
    assert not think.collapsed
    assert view.block_widgets("query")[0].toggle.isHidden()


def test_a_saved_run_reopens_as_the_same_trace(view: TraceView) -> None:
    record = RunRecord(question="How hot?", mode="loop")
    for event in sample_run():
        record.add(event)  # type: ignore[arg-type]
    view.handle(events_from_record(record.to_dict()))
    tags = [getattr(w, "tag", type(w).__name__) for w in view.blocks]
    # The protocol error is drawn where it happened, as it was live.
    assert tags == ["think", "query", "PassagesWidget", "ProtocolErrorRow", "results", "answer"]
    assert view.passages[1].text == TEA.text
    assert 'href="cite:1"' in view.block_widgets("answer")[0].body.toHtml()


def test_tokens_of_one_block_merge_into_one_insert() -> None:
    merged = merge_tokens(
        [Token("think", "a"), Token("think", "b"), BlockEnd("think", "ab"), Token("query", "c")]
    )
    assert merged == [Token("think", "ab"), BlockEnd("think", "ab"), Token("query", "c")]


def test_worker_items_arrive_in_order_on_the_gui_thread_in_few_batches(qtbot) -> None:  # type: ignore[no-untyped-def]
    gui = threading.get_ident()
    received: list[object] = []
    threads: set[int] = set()
    batches = []

    def work(push, cancel):  # type: ignore[no-untyped-def]
        for i in range(3000):
            push(i)
            if i % 100 == 0:
                time.sleep(0.002)
        return "done"

    def on_items(items: list[object]) -> None:
        threads.add(threading.get_ident())
        batches.append(len(items))
        received.extend(items)

    job = Job(work)
    job.items.connect(on_items)
    results: list[object] = []
    job.succeeded.connect(results.append)
    with qtbot.waitSignal(job.finished, timeout=10_000):
        job.start()
    assert received == list(range(3000))
    assert threads == {gui}
    assert results == ["done"]
    assert len(batches) < 300  # coalesced: nowhere near one repaint per item


def test_a_failing_worker_reports_a_sentence(qtbot) -> None:  # type: ignore[no-untyped-def]
    def work(push, cancel):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    job = Job(work)
    with qtbot.waitSignal(job.failed, timeout=5000) as signal:
        job.start()
    assert "disk full" in signal.args[0] and "log file" in signal.args[0]
