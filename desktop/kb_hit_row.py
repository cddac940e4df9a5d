"""One search result in the Knowledge base tab: where it is from and its score on one line
(the place elided, whole in its tooltip), then the passage's opening as text, its Markdown
rendered away."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from core.knowledge.types import Hit
from desktop.markdown_text import snippet_of


class ElidedLabel(QLabel):
    """A one-line label that elides its text at its width; the whole text is its tooltip."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.full_text = text
        self.setToolTip(text)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(40)
        self.setText(text)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        elided = self.fontMetrics().elidedText(
            self.full_text, Qt.TextElideMode.ElideMiddle, self.width()
        )
        if elided != self.text():
            self.setText(elided)


class HitRow(QWidget):
    """A search result: ``file#chunk › heading`` … ``method score``, then its snippet."""

    def __init__(self, hit: Hit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hit = hit
        where = hit.label + (f"  ›  {' '.join(hit.heading.split())}" if hit.heading else "")
        snippet = snippet_of(hit.text, heading=hit.heading)
        score = f"{hit.method} {hit.score:.3f}"
        self.summary = f"{where}  {score}\n{snippet}"
        self._layout = layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(2)
        top = QHBoxLayout()
        top.setSpacing(8)
        self.place = ElidedLabel(where, self)
        self.place.setObjectName("hitPlace")
        self.place.setStyleSheet("font-weight: 600;")
        self.score = QLabel(score, self)
        self.score.setObjectName("hitScore")
        self.score.setStyleSheet("color: #64748b;")
        self.score.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        top.addWidget(self.place, 1)
        top.addWidget(self.score)
        layout.addLayout(top)
        self.snippet = QLabel(snippet, self)
        self.snippet.setObjectName("hitSnippet")
        self.snippet.setTextFormat(Qt.TextFormat.PlainText)
        self.snippet.setWordWrap(True)
        self.snippet.setStyleSheet("color: #475569;")
        layout.addWidget(self.snippet)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

    def height_for(self, width: int) -> int:
        """The row's height at ``width``, its snippet wrapped (styled fonts included)."""
        for widget in (self, self.place, self.score, self.snippet):
            widget.ensurePolished()
        return self._layout.totalHeightForWidth(width)
