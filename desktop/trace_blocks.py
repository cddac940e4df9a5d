"""The blocks of a trace: one text block per tag, the citation links in them, and the row a
protocol error leaves.

A block grows by plain-text inserts while it streams and is rendered richly (Markdown,
citation links) exactly once, when it ends (see ``desktop.trace_view``).
"""

from __future__ import annotations

import html
import math
import re

from PySide6.QtCore import QSize, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QResizeEvent, QTextCursor, QWheelEvent
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
