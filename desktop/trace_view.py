"""The live trace: one widget per tag block, filled as the agent's events arrive.

Streaming rule (measured in issue 3): the open block grows by plain-text inserts
at the end of its document, one insert per drained batch; a block is rendered
richly (Markdown, citation links) exactly once, when it ends. Nothing ever
re-renders the whole trace while tokens flow.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from core.agent.events import (
    Answer,
    BlockEnd,
    BlockStart,
    Finished,
    ProtocolError,
    Retrieval,
    Token,
    coalesce_tokens,
)
from core.knowledge.types import Hit
from desktop.replay import events_from_record
from desktop.trace_blocks import BlockWidget, ProtocolErrorRow, StoppedRow
from desktop.trace_cards import PassagesWidget

ASK_BELOW = (
    "Ask a question below.\nThe model's thinking, its searches, the passages it "
    "finds and its cited answer will appear here as they are written."
)


class TraceView(QScrollArea):
    """Shows one or more runs, block by block. Feed it batches with :meth:`handle`."""

    passage_requested = Signal(object)
    """A Hit the user clicked (a card or an [n] citation)."""
    run_finished = Signal(object)
    link_activated = Signal(str)
    """A link in the empty state was clicked (its href)."""
    """The Finished event of a run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("traceView")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._canvas = QWidget()
        self._canvas.setObjectName("traceCanvas")
        self._layout = QVBoxLayout(self._canvas)
        self._layout.setContentsMargins(18, 14, 18, 14)
        self._layout.setSpacing(10)
        self._layout.addStretch(1)
        self.setWidget(self._canvas)
        self.empty_label = QLabel(self._canvas)
        self.empty_label.setObjectName("emptyState")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.linkActivated.connect(self.link_activated)
        self.set_empty_text(ASK_BELOW)
        self._layout.insertWidget(0, self.empty_label)
        self.blocks: list[QWidget] = []
        self._runs: list[dict[int, Hit]] = [{}]
        """Passages by number, one map per run: numbers restart with every question."""
        self._open: BlockWidget | None = None
        self._cards_for_next_query_res = False
        self._follow = True
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range_changed)
        bar.valueChanged.connect(self._on_scrolled)

    # -- public -------------------------------------------------------------------
    def set_empty_text(self, text: str) -> None:
        self.empty_label.setText(text)

    def clear(self) -> None:
        for widget in self.blocks:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        self.blocks.clear()
        self._runs = [{}]
        self._open = None
        self._cards_for_next_query_res = False
        self._follow = True
        self.empty_label.show()

    @property
    def passages(self) -> dict[int, Hit]:
        """The passages of the run being shown last, by number."""
        return self._runs[-1]

    def number_of(self, hit: Hit) -> int | None:
        """The number a passage had in its run (the latest run that showed it)."""
        for run in reversed(self._runs):
            for number, shown in run.items():
                if shown == hit:
                    return number
        return None

    def add_question(self, question: str) -> None:
        if self.blocks:
            self._runs.append({})
        label = QLabel(question, self._canvas)
        label.setObjectName("questionBubble")
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._add(label)
        self._follow = True

    def block_widgets(self, tag: str | None = None) -> list[BlockWidget]:
        return [b for b in self.blocks if isinstance(b, BlockWidget) and tag in (None, b.tag)]

    def passage_widgets(self) -> list[PassagesWidget]:
        return [b for b in self.blocks if isinstance(b, PassagesWidget)]

    def error_rows(self) -> list[ProtocolErrorRow]:
        return [b for b in self.blocks if isinstance(b, ProtocolErrorRow)]

    @Slot(list)
    def handle(self, events: list[object]) -> None:
        """Apply a batch of agent events (consecutive tokens are merged into one insert)."""
        for event in coalesce_tokens(events):
            self._apply(event)

    def show_saved(self, turns: list[dict[str, Any]]) -> tuple[Finished | None, list[Exception]]:
        """Draw saved runs (``RunRecord`` dicts), each after its question, as they were drawn
        live. Returns the last run's ``Finished`` and why each run not drawn was not."""
        last: Finished | None = None
        damaged: list[Exception] = []
        for turn in turns:
            try:
                events = events_from_record(turn)
            except (KeyError, ValueError, TypeError) as exc:
                damaged.append(exc)
                continue
            self.add_question(str(turn.get("question", "")))
            self.handle(list(events))
            last = next((e for e in reversed(events) if isinstance(e, Finished)), last)
        return last, damaged

    # -- events -------------------------------------------------------------------
    def _apply(self, event: object) -> None:
        if isinstance(event, Token):
            block = self._open if self._open and self._open.tag == event.tag else None
            if block is None and event.tag != "query_res":
                block = self._start_block(event.tag)
            if block is not None:
                block.append(event.text)
        elif isinstance(event, BlockStart):
            if event.tag == "query_res" and self._cards_for_next_query_res:
                return
            self._start_block(event.tag, event.author, event.kind)
        elif isinstance(event, BlockEnd):
            self._end_block(event)
        elif isinstance(event, Retrieval):
            self._add_passages(event)
        elif isinstance(event, ProtocolError):
            self._add(ProtocolErrorRow(event.kind, event.detail, self._canvas))
        elif isinstance(event, Answer):
            answers = self.block_widgets("answer")
            if answers and not answers[-1].finished:
                answers[-1].finish(event.text, self.passages)
            if answers and event.cut:
                answers[-1].mark_cut()
        elif isinstance(event, Finished):
            if self._open is not None:
                self._open.finish(self._open.text(), self.passages)
                self._open = None
            if event.reason == "cancelled":
                self._add(StoppedRow(self._canvas))
            self.run_finished.emit(event)

    def _start_block(self, tag: str, author: str = "model", kind: str = "") -> BlockWidget:
        if self._open is not None:
            self._open.finish(self._open.text(), self.passages)
        block = BlockWidget(tag, self._canvas, author=author, kind=kind)
        run = self.passages
        # A citation opens the passage of the block's own run, whatever came after it.
        block.link_clicked.connect(lambda number, run=run: self._on_citation(run, number))
        self._add(block)
        self._open = block
        return block

    def _end_block(self, event: BlockEnd) -> None:
        if event.tag == "query_res" and self._cards_for_next_query_res:
            self._cards_for_next_query_res = False
            return
        block = self._open if self._open and self._open.tag == event.tag else None
        if block is None:
            block = self._start_block(event.tag, event.author, event.kind)
        block.finish(event.text, self.passages)
        self._open = None

    def _add_passages(self, event: Retrieval) -> None:
        numbers = list(event.numbers) or list(
            range(len(self.passages) + 1, len(self.passages) + 1 + len(event.hits))
        )
        numbered = list(zip(numbers, event.hits, strict=False))
        shown_before = set(self.passages)
        for number, hit in numbered:
            self.passages[number] = hit
        widget = PassagesWidget(event.query, numbered, self._canvas, shown_before)
        widget.passage_clicked.connect(self.passage_requested)
        self._add(widget)
        self._cards_for_next_query_res = True

    def _add(self, widget: QWidget) -> None:
        self.empty_label.hide()
        self._layout.insertWidget(self._layout.count() - 1, widget)
        self.blocks.append(widget)

    # -- slots --------------------------------------------------------------------
    def _on_citation(self, run: dict[int, Hit], number: int) -> None:
        hit = run.get(number)
        if hit is not None:
            self.passage_requested.emit(hit)

    @Slot(int, int)
    def _on_range_changed(self, _low: int, high: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(high)

    @Slot(int)
    def _on_scrolled(self, value: int) -> None:
        # Follow the stream only while the reader stays at the bottom.
        self._follow = value >= self.verticalScrollBar().maximum() - 4
