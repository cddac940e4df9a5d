"""What the Knowledge base tab shows of indexing: where to drop files, the progress row
while a run goes on, and the table of the last run's files."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QColor, QHideEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from core.durations import time_left
from core.knowledge.indexer import FileDone, IndexSummary, Progress
from desktop.fit import ElidedLabel

STATUS_COLOURS = {
    "indexed": "#047857",
    "unchanged": "#64748b",
    "failed": "#b91c1c",
    "removed": "#9a3412",
}


def local_paths(urls: list[QUrl]) -> list[Path]:
    return [Path(u.toLocalFile()) for u in urls if u.isLocalFile() and u.toLocalFile()]


def summary_sentence(summary: IndexSummary) -> str:
    """What a finished (or cancelled) run did, for the status bar."""
    parts = [f"{summary.indexed} indexed", f"{summary.unchanged} unchanged"]
    if summary.removed:
        parts.append(f"{summary.removed} removed")
    if summary.failed:
        parts.append(f"{summary.failed} failed (see the table)")
    verb = "Cancelled" if summary.cancelled else "Done"
    return f"{verb}: " + ", ".join(parts) + f" · {summary.chunks} chunks in {summary.seconds:.1f} s"


class DropZone(QFrame):
    """The visible target; the whole tab accepts drops, this shows where and how."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dropZone")
        self.setProperty("hover", False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        self.text = QLabel(
            "<b>Drop files or folders anywhere here</b> to index them.<br>"
            "<span style='color:#64748b'>PDF, Word, Markdown, HTML, reStructuredText and plain "
            "text. Unchanged files are skipped.</span>",
            self,
        )
        self.text.setObjectName("dropText")
        self.text.setWordWrap(True)
        layout.addWidget(self.text, 1)
        self.add_files = QPushButton("Add files…", self)
        self.add_folder = QPushButton("Add folder…", self)
        layout.addWidget(self.add_files)
        layout.addWidget(self.add_folder)

    def set_hover(self, on: bool) -> None:
        self.setProperty("hover", on)
        self.style().unpolish(self)
        self.style().polish(self)


WAITS = {
    "loading": "Loading the embedding model…",
    "preparing": "Preparing the embedding model for this computer (the first time only, "
    "up to a minute)…",
}
"""What the progress row says while the embedding model loads, by ``Progress.stage``."""


class IndexProgress(QWidget):
    """The row shown while indexing: a bar, files and chunks done, and Cancel."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.bar = QProgressBar(self)
        self.bar.setTextVisible(False)
        self.label = ElidedLabel("", self)
        self.label.setObjectName("hint")
        self.cancel_button = QPushButton("Cancel", self)
        row.addWidget(self.bar, 2)
        row.addWidget(self.label, 3)
        row.addWidget(self.cancel_button)

        self._waiting = ""
        self._since = 0.0
        self._clock = QTimer(self)
        self._clock.setInterval(250)
        self._clock.timeout.connect(self._tick)

    def start(self) -> None:
        self.bar.setRange(0, 0)
        self._wait("Reading files…")

    def _wait(self, what: str) -> None:
        """Say what the run waits for, with the time it has waited, kept current."""
        self._waiting, self._since = what, time.monotonic()
        self._tick()
        self._clock.start()

    def _tick(self) -> None:
        self.label.setText(f"{self._waiting} {time.monotonic() - self._since:.0f} s")

    def hideEvent(self, event: QHideEvent) -> None:
        self._clock.stop()  # the run ended
        super().hideEvent(event)

    def cancelling(self) -> None:
        self._clock.stop()
        self.label.setText("Cancelling after the current batch…")
        self.cancel_button.setEnabled(False)

    def show_progress(self, p: Progress) -> None:
        if p.stage:
            self.bar.setRange(0, 0)
            self._wait(WAITS.get(p.stage, "Loading the embedding model…"))
            return
        self._clock.stop()
        self.bar.setRange(0, max(1, p.files_total))
        self.bar.setValue(p.files_done)
        rate = f"{p.chunks_per_s:.0f} chunks/s · " if p.chunks_per_s else ""
        self.label.setText(
            f"{p.files_done} of {p.files_total} files · {p.chunks_done} chunks · "
            f"{rate}{time_left(p.eta_s)}"
        )
        self.label.setToolTip(p.current)


class RunTable(QTableWidget):
    """One row per file of the last indexing run: its status, chunks and why it failed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self.setHorizontalHeaderLabels(["File", "Status", "Chunks", "Reason"])
        self.verticalHeader().hide()
        self.setAlternatingRowColors(True)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.setColumnWidth(0, 220)
        # Status and chunks as wide as their header or values, in whatever font.
        for col in (1, 2):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)

    def add(self, event: FileDone) -> None:
        row = self.rowCount()
        self.insertRow(row)
        name = QTableWidgetItem(Path(event.path).name)
        name.setToolTip(event.path)
        status = QTableWidgetItem(event.status)
        status.setForeground(QColor(STATUS_COLOURS.get(event.status, "#1f2937")))
        chunks = QTableWidgetItem(str(event.chunks) if event.chunks else "")
        chunks.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        reason = QTableWidgetItem(event.reason)
        reason.setToolTip(event.reason)
        for col, item in enumerate((name, status, chunks, reason)):
            self.setItem(row, col, item)
        self.scrollToBottom()
