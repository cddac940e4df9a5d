"""The passages a search returned, as cards: number, source, heading, score; a click opens
the whole passage."""

from __future__ import annotations

import html
from collections.abc import Collection

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from core.knowledge.types import Hit
from desktop.markdown_text import snippet_of


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
        label = QLabel(f"<b>[{number}]</b>&nbsp; {html.escape(hit.label)}", self)
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
        text = QLabel(snippet_of(hit.text, 220, hit.heading), self)
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
    """The passages a search returned (the loop's <query_res>): the new ones as cards, in
    the order they were numbered; those an earlier search showed, by number on one line
    (the model too reads them as "shown above"), so numbers on screen only ever grow."""

    passage_clicked = Signal(object)

    def __init__(
        self,
        query: str,
        numbered: list[tuple[int, Hit]],
        parent: QWidget | None = None,
        shown_before: Collection[int] = (),
    ):
        super().__init__(parent)
        self.setObjectName("block_query_res")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.setSpacing(6)
        fresh = sorted((p for p in numbered if p[0] not in shown_before), key=lambda p: p[0])
        again = [p for p in numbered if p[0] in shown_before]
        count = f"{len(numbered)} found" + (f" · {len(fresh)} new" if again else "")
        title = QLabel(f"PASSAGES · {count}", self)
        title.setObjectName("blockTitle")
        layout.addWidget(title)
        self.cards: list[PassageCard] = []
        self.again: dict[int, Hit] = dict(again)
        if not numbered:
            empty = QLabel("The search found nothing.", self)
            empty.setObjectName("cardText")
            layout.addWidget(empty)
        for number, hit in fresh:
            card = PassageCard(number, hit, self)
            card.clicked.connect(self.passage_clicked)
            layout.addWidget(card)
            self.cards.append(card)
        if again:
            links = " · ".join(
                f'<a href="cite:{n}">[{n}]</a> {html.escape(hit.label)}' for n, hit in again
            )
            self.again_label = QLabel(f"Found again (shown above): {links}", self)
            self.again_label.setObjectName("cardText")
            self.again_label.setWordWrap(True)
            self.again_label.setTextFormat(Qt.TextFormat.RichText)
            self.again_label.linkActivated.connect(self._open_again)
            layout.addWidget(self.again_label)

    def _open_again(self, link: str) -> None:
        hit = self.again.get(int(link.removeprefix("cite:") or 0))
        if hit is not None:
            self.passage_clicked.emit(hit)
