"""The versions of a knowledge base's vectors, one row each; ★ marks the one that serves."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from core.knowledge.service import KbVersions

VERSION_COLUMNS = ["", "Version", "Embedder", "State", "Chunks"]


class VersionTable(QTableWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(VERSION_COLUMNS), parent)
        self.setHorizontalHeaderLabels(VERSION_COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().hide()
        header = self.horizontalHeader()
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        for c in (0, 1, 3, 4):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.setMaximumHeight(130)
        self.setToolTip("★ marks the version that serves searches")

    def show_versions(self, versions: KbVersions, select: int) -> None:
        """List ``versions``, selecting version ``select`` (0: none)."""
        self.setRowCount(0)
        for row in versions.rows:
            r = self.rowCount()
            self.insertRow(r)
            chunks = row.chunks if row.state == "ready" else row.done
            cells = [
                "★" if row.serving else "",
                f"v{row.number}",
                row.label,
                "serving" if row.serving else row.state,
                f"{chunks}" + (f"/{versions.total}" if row.state == "building" else ""),
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0:
                    item.setData(Qt.ItemDataRole.UserRole, row.number)
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if row.serving:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.setItem(r, c, item)
            if row.number == select:
                self.selectRow(r)

    def selected_version(self) -> int:
        rows = self.selectionModel().selectedRows()
        if not rows:
            return 0
        item = self.item(rows[0].row(), 0)
        value = item.data(Qt.ItemDataRole.UserRole) if item else None
        return int(value) if isinstance(value, int) else 0

    def select_version(self, number: int) -> None:
        for r in range(self.rowCount()):
            item = self.item(r, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == number:
                self.selectRow(r)
                return
