"""The Knowledge base tab's left column: the documents of the knowledge base, and what
the last indexing run did with each file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.knowledge.manifest import DocInfo
from desktop.kb_indexing import RunTable
from desktop.scaffold import section_title


class DocumentsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        head.addWidget(section_title("Documents", self))
        self.remove_button = QPushButton("Remove document", self)
        self._busy = False
        """Indexing runs: documents are not removed meanwhile."""
        head.addStretch(1)
        head.addWidget(self.remove_button)
        col.addLayout(head)
        self.documents = QListWidget(self)
        self.documents.setAlternatingRowColors(True)
        self.documents.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.documents.itemSelectionChanged.connect(self._update_remove)
        col.addWidget(self.documents, 3)
        col.addWidget(section_title("Last indexing run", self))
        self.files = RunTable(self)
        col.addWidget(self.files, 2)
        self._update_remove()

    def show_placeholder(self, text: str) -> None:
        self.documents.clear()
        item = QListWidgetItem(text)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        self.documents.addItem(item)
        self._update_remove()

    def _has_documents(self) -> bool:
        items = (self.documents.item(i) for i in range(self.documents.count()))
        return any(item is not None and item.data(Qt.ItemDataRole.UserRole) for item in items)

    def set_busy(self, on: bool) -> None:
        self._busy = on
        self._update_remove()

    def _update_remove(self) -> None:
        """Remove document acts on the selected documents: enabled only with some (and not
        while indexing runs), its tooltip saying what it needs."""
        chosen = len(self.selected_sources())
        self.remove_button.setEnabled(bool(chosen) and not self._busy)
        if self._busy:
            tip = "Wait for the indexing to end"
        elif chosen:
            tip = f"Remove the {chosen} selected document{'s' if chosen != 1 else ''} "
            tip += "and their chunks from the knowledge base"
        elif self._has_documents():
            tip = "Select the documents to remove in the list first"
        else:
            tip = "No documents to remove"
        self.remove_button.setToolTip(tip)

    def show_documents(self, docs: Sequence[DocInfo]) -> None:
        self.documents.clear()
        if not docs:
            self.show_placeholder("No documents yet: drop files or folders above.")
        for doc in docs:
            name = Path(doc.source).name
            item = QListWidgetItem(f"{name}   ·  {doc.chunks} chunks")
            item.setToolTip(f"{doc.source}\nindexed {doc.indexed_at}")
            item.setData(Qt.ItemDataRole.UserRole, doc.source)
            self.documents.addItem(item)
        self._update_remove()

    def selected_sources(self) -> list[str]:
        return [
            str(i.data(Qt.ItemDataRole.UserRole))
            for i in self.documents.selectedItems()
            if i.data(Qt.ItemDataRole.UserRole)
        ]
