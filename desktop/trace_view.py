"""The live trace: one widget per tag block, filled as the agent's events arrive.

Streaming rule (measured in issue 3): the open block grows by plain-text inserts
at the end of its document, one insert per drained batch; a block is rendered
richly (Markdown, citation links) exactly once, when it ends. Nothing ever
re-renders the whole trace while tokens flow.
"""

from __future__ import annotations

import html
import math
import re

from PySide6.QtCore import QSize, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QMouseEvent, QResizeEvent, QTextCursor, QWheelEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

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

TITLES = {
    "think": "Thinking",
    "query": "Search",
    "query_res": "Passages",
    "results": "Vetted passages",
    "answer": "Answer",
}
KIND_TITLES = {
    ("query", "seed"): "Search · the app searched with your question",
    ("query_res", "note"): "Note from the app",
}
_CITE_RE = re.compile(r"\[(\d+)\]")


def link_citations(markdown: str, known: set[int]) -> str:
    """Turn ``[n]`` into a Markdown link ``cite:n`` when passage n exists."""

    def repl(match: re.Match[str]) -> str:
        n = int(match.group(1))
        return f"[\\[{n}\\]](cite:{n})" if n in known else match.group(0)

    return _CITE_RE.sub(repl, markdown)


def html_with_citations(text: str, known: set[int]) -> str:
    escaped = html.escape(text)

    def repl(match: re.Match[str]) -> str:
        n = int(match.group(1))
        return f'<a href="cite:{n}">[{n}]</a>' if n in known else match.group(0)

    body = _CITE_RE.sub(repl, escaped).replace("\n", "<br>")
    return f"<div>{body}</div>"


class AutoText(QTextBrowser):
    """A read-only text view as tall as its content (the trace scrolls, not the block)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setOpenLinks(False)
        self.document().setDocumentMargin(2)
        layout = self.document().documentLayout()
        layout.documentSizeChanged.connect(self._fit)
        self.setFixedHeight(self._height_for(0.0))

    def _height_for(self, doc_height: float) -> int:
        margins = self.contentsMargins()
        return max(18, math.ceil(doc_height) + margins.top() + margins.bottom() + 2)

    @Slot(object)
    def _fit(self, size: object = None) -> None:
        doc = self.document()
        width = self.viewport().width()
        if width > 0 and doc.textWidth() != width:
            doc.setTextWidth(width)
        height = self._height_for(doc.size().height())
        if height != self.height():
            self.setFixedHeight(height)

    def append_plain(self, text: str) -> None:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit(None)

    def wheelEvent(self, event: QWheelEvent) -> None:
        # The whole trace scrolls; a block never captures the wheel.
        event.ignore()

    def sizeHint(self) -> QSize:
        return QSize(200, self.height())


class BlockWidget(QFrame):
    """One tag block: a header (what it is) and its text."""

    link_clicked = Signal(int)

    def __init__(
        self, tag: str, parent: QWidget | None = None, *, author: str = "model", kind: str = ""
    ) -> None:
        super().__init__(parent)
        self.tag = tag
        self.author = author
        self.kind = kind
        self.finished = False
        self.setObjectName(f"block_{tag}")
        self.setProperty("block", tag)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.setSpacing(4)
        header = QHBoxLayout()
        header.setSpacing(6)
        self.toggle = QToolButton(self)
        self.toggle.setObjectName("blockToggle")
        self.toggle.setAutoRaise(True)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow)
        self.toggle.setCheckable(True)
        self.toggle.setChecked(True)
        self.toggle.setToolTip("Show or hide this block")
        self.toggle.toggled.connect(self._on_toggled)
        self.toggle.setVisible(tag == "think")
        title = KIND_TITLES.get((tag, kind)) or TITLES.get(tag, tag)
        self.title = QLabel(title.upper(), self)
        self.title.setObjectName("blockTitle")
        if author == "loop":
            self.title.setToolTip("Written by the app, not by the model")
        self.state = QLabel("writing…", self)
        self.state.setObjectName("blockState")
        header.addWidget(self.toggle)
        header.addWidget(self.title)
        header.addStretch(1)
        header.addWidget(self.state)
        layout.addLayout(header)
        self.body = AutoText(self)
        self.body.setObjectName(f"body_{tag}")
        self.body.anchorClicked.connect(self._on_anchor)
        layout.addWidget(self.body)

    @property
    def collapsed(self) -> bool:
        return self.body.isHidden()

    def set_collapsed(self, collapsed: bool) -> None:
        self.toggle.setChecked(not collapsed)

    @Slot(bool)
    def _on_toggled(self, expanded: bool) -> None:
        self.body.setVisible(expanded)
        arrow = Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow
        self.toggle.setArrowType(arrow)

    @Slot(QUrl)
    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() == "cite":
            try:
                self.link_clicked.emit(int(url.path()))
            except ValueError:
                return

    def append(self, text: str) -> None:
        self.body.append_plain(text)

    def text(self) -> str:
        return self.body.toPlainText()

    def finish(self, text: str, known: set[int]) -> None:
        """Render the block once, richly, now that its text is final."""
        self.finished = True
        self.state.hide()
        if self.tag == "answer":
            self.body.setMarkdown(link_citations(text.strip(), known))
        elif self.tag == "results":
            self.body.setHtml(html_with_citations(text.strip(), known))
        else:
            self.body.setPlainText(text.strip())
        self.body._fit()


class PassageCard(QFrame):
    """A retrieved passage: number, source, heading, score; click to read it whole."""

    clicked = Signal(object)

    def __init__(self, number: int, hit: Hit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.number = number
        self.hit = hit
        self.setObjectName("passageCard")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Click to read the whole passage")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 8)
        layout.setSpacing(2)
        top = QHBoxLayout()
        name = hit.source.replace("\\", "/").rsplit("/", 1)[-1]
        label = QLabel(f"<b>[{number}]</b>&nbsp; {html.escape(name)} #{hit.chunk_index}", self)
        label.setObjectName("cardSource")
        score = QLabel(f"{hit.method} {hit.score:.3f}", self)
        score.setObjectName("cardScore")
        top.addWidget(label)
        top.addStretch(1)
        top.addWidget(score)
        layout.addLayout(top)
        if hit.heading:
            heading = QLabel(hit.heading, self)
            heading.setObjectName("cardHeading")
            heading.setTextFormat(Qt.TextFormat.PlainText)
            layout.addWidget(heading)
        snippet = " ".join(hit.text.split())
        if len(snippet) > 220:
            snippet = snippet[:220].rsplit(" ", 1)[0] + " …"
        text = QLabel(snippet, self)
        text.setObjectName("cardText")
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(text)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.hit)
        event.accept()


class PassagesWidget(QFrame):
    """The passages a search returned (the loop's <query_res>), as cards."""

    passage_clicked = Signal(object)

    def __init__(self, query: str, numbered: list[tuple[int, Hit]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("block_query_res")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.setSpacing(6)
        title = QLabel(f"PASSAGES · {len(numbered)} found", self)
        title.setObjectName("blockTitle")
        layout.addWidget(title)
        self.cards: list[PassageCard] = []
        if not numbered:
            empty = QLabel("The search found nothing.", self)
            empty.setObjectName("cardText")
            layout.addWidget(empty)
        for number, hit in numbered:
            card = PassageCard(number, hit, self)
            card.clicked.connect(self.passage_clicked)
            layout.addWidget(card)
            self.cards.append(card)


class ProtocolErrorRow(QLabel):
    def __init__(self, kind: str, detail: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.setObjectName("protocolError")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setText(f"<b>Protocol error · {html.escape(kind)}</b> — {html.escape(detail)}")


class TraceView(QScrollArea):
    """Shows one or more runs, block by block. Feed it batches with :meth:`handle`."""

    passage_requested = Signal(object)
    """A Hit the user clicked (a card or an [n] citation)."""
    run_finished = Signal(object)
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
        self.set_empty_text(
            "Ask a question below.\nThe model's thinking, its searches, the passages it "
            "finds and its cited answer will appear here as they are written."
        )
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
                answers[-1].finish(event.text, set(self.passages))
        elif isinstance(event, Finished):
            if self._open is not None:
                self._open.finish(self._open.text(), set(self.passages))
                self._open = None
            self.run_finished.emit(event)

    def _start_block(self, tag: str, author: str = "model", kind: str = "") -> BlockWidget:
        if self._open is not None:
            self._open.finish(self._open.text(), set(self.passages))
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
        block.finish(event.text, set(self.passages))
        self._open = None

    def _add_passages(self, event: Retrieval) -> None:
        numbers = list(event.numbers) or list(
            range(len(self.passages) + 1, len(self.passages) + 1 + len(event.hits))
        )
        numbered = list(zip(numbers, event.hits, strict=False))
        for number, hit in numbered:
            self.passages[number] = hit
        widget = PassagesWidget(event.query, numbered, self._canvas)
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
