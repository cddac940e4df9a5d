"""The Knowledge base tab's right column: try a search, read a passage whole."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.knowledge.types import Hit
from desktop.kb_hit_row import HitRow
from desktop.passage_dialog import PassageDialog
from desktop.scaffold import hint, section_title


class SearchPanel(QWidget):
    """A query, a method and the hits; the tab runs the search (``search_button``,
    Return in ``search_box``) and hands the hits to :meth:`show_hits`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(section_title("Try a search", self))
        row = QHBoxLayout()
        self.search_box = QLineEdit(self)
        self.search_box.setPlaceholderText("Type what you are looking for…")
        self.search_box.setClearButtonEnabled(True)
        self.method_combo = QComboBox(self)
        self.method_combo.addItems(["hybrid", "dense", "bm25"])
        self.method_combo.setToolTip("dense: meaning · bm25: keywords · hybrid: both, fused")
        self.search_button = QPushButton("Search", self)
        row.addWidget(self.search_box, 1)
        row.addWidget(self.method_combo)
        row.addWidget(self.search_button)
        col.addLayout(row)
        self.hits = QListWidget(self)
        self.hits.setObjectName("searchHits")  # its rows pad themselves (HitRow)
        self.hits.setWordWrap(True)
        self.hits.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.hits.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.hits.viewport().installEventFilter(self)
        self.hits.setAlternatingRowColors(True)
        self.hits.itemActivated.connect(self.open_hit)
        self.hits.itemClicked.connect(self.open_hit)
        col.addWidget(self.hits, 1)
        col.addWidget(hint("Click a result to read the whole passage.", self))

    @property
    def query(self) -> str:
        return self.search_box.text().strip()

    @property
    def method(self) -> str:
        return self.method_combo.currentText()

    def show_hits(self, hits: Sequence[Hit]) -> None:
        self.hits.clear()
        if not hits:
            item = QListWidgetItem("Nothing found.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.hits.addItem(item)
        for hit in hits:
            row = HitRow(hit, self.hits)
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, hit)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, row.summary)
            item.setToolTip(hit.source)
            self.hits.addItem(item)
            self.hits.setItemWidget(item, row)
        self._fit_rows()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.hits.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_rows()
        return super().eventFilter(watched, event)

    def _fit_rows(self) -> None:
        """Each result as tall as its wrapped text at the list's width (no sideways scroll)."""
        width = self.hits.viewport().width()
        for i in range(self.hits.count()):
            item = self.hits.item(i)
            row = self.hits.itemWidget(item)
            if isinstance(row, HitRow):
                item.setSizeHint(QSize(width, row.height_for(width)))

    @Slot(QListWidgetItem)
    def open_hit(self, item: QListWidgetItem) -> None:
        """Show the passage of a listed hit whole, in a dialog."""
        hit = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(hit, Hit):
            dialog = PassageDialog(hit, self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.open()
