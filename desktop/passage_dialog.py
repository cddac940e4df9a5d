"""Read one passage (chunk) in full: where it comes from and its whole text."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout, QWidget

from core.knowledge.types import Hit
from desktop.markdown_text import balance_markdown


class PassageDialog(QDialog):
    def __init__(self, hit: Hit, parent: QWidget | None = None, number: int | None = None) -> None:
        super().__init__(parent)
        self.hit = hit
        prefix = f"[{number}] " if number is not None else ""
        self.setWindowTitle(f"{prefix}{hit.label}")
        self.resize(640, 480)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 12)
        where = f"<b>{html.escape(hit.source)}</b> · chunk {hit.chunk_index}"
        if hit.heading:
            where += f"<br><span style='color:#2563eb'>{html.escape(hit.heading)}</span>"
        where += (
            f"<br><span style='color:#64748b'>{hit.method} score {hit.score:.3f} · "
            f"characters {hit.start}–{hit.end}</span>"
        )
        header = QLabel(where, self)
        header.setWordWrap(True)
        layout.addWidget(header)
        self.text = QTextBrowser(self)
        self.text.setOpenExternalLinks(False)
        self.text.setOpenLinks(False)
        # A passage is Markdown as its document wrote it (a cut chunk may leave a fence open).
        self.text.setMarkdown(balance_markdown(hit.text))
        layout.addWidget(self.text, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
