"""The blocks of a trace: one text block per tag, the citation links in them, and the row a
protocol error leaves.

A block grows by plain-text inserts while it streams and is rendered richly (Markdown,
citation links) exactly once, when it ends (see ``desktop.trace_view``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QColor, QResizeEvent, QTextCharFormat, QTextCursor, QWheelEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.agent.events import protocol_error_label
from core.knowledge.types import Hit
from desktop.markdown_text import render_markdown, results_html

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
CUT_MARK = "… (cut at the answer's token limit)"


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
        layout.documentSizeChanged.connect(self.fit)
        self.setFixedHeight(self._height_for(0.0))

    def _height_for(self, doc_height: float) -> int:
        margins = self.contentsMargins()
        return max(18, math.ceil(doc_height) + margins.top() + margins.bottom() + 2)

    @Slot(object)
    def fit(self, size: object = None) -> None:
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
        self.fit(None)

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
        if tag == "think":
            # The label opens and closes the block too, not only its small arrow.
            self.title.setCursor(Qt.CursorShape.PointingHandCursor)
            self.title.setToolTip("Show or hide the model's thinking")
            self.title.installEventFilter(self)
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
        self.cut = False
        """The token limit cut the text (:meth:`mark_cut`)."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.title and not self.toggle.isHidden():
            if event.type() == QEvent.Type.MouseButtonPress:
                return True  # taken, so that the release comes here too
            if event.type() == QEvent.Type.MouseButtonRelease:
                self.toggle.toggle()
                return True
        return super().eventFilter(watched, event)

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

    def finish(self, text: str, passages: Mapping[int, Hit]) -> None:
        """Render the block once, richly, now that its text is final: the answer's Markdown
        (balanced) with the app's own citation links, the vetted passages under the app's
        own labels."""
        self.finished = True
        self.state.hide()
        if self.tag == "answer":
            render_markdown(self.body.document(), text.strip(), set(passages))
        elif self.tag == "results":
            self.body.setHtml(results_html(text.strip(), passages))
        else:
            self.body.setPlainText(text.strip())
        self.body.fit()

    def mark_cut(self) -> None:
        """Say, at the end of the text, that the token limit cut it."""
        if self.cut:
            return
        self.cut = True
        cursor = QTextCursor(self.body.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        fmt = QTextCharFormat()
        fmt.setForeground(QColor("#92400e"))
        fmt.setFontItalic(True)
        cursor.insertBlock()
        cursor.insertText(CUT_MARK, fmt)
        self.body.fit()


class ProtocolErrorRow(QLabel):
    def __init__(self, kind: str, detail: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.setObjectName("protocolError")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        label = html.escape(protocol_error_label(kind))
        self.setText(f"<b>Format slip: {label}</b> — {html.escape(detail)}")
        self.setToolTip(f"The model broke the search format (protocol error {kind})")


class StoppedRow(QLabel):
    """Where a run the user stopped ended (live and when the conversation is reopened)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Stopped — you stopped this question before it finished.", parent)
        self.setObjectName("runStopped")
        self.setWordWrap(True)
