"""The Dataset tab's middle: the examples of the open dataset in a table, with filters by
kind, split, question writer and status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.fit import FillColumn
from desktop.scaffold import hint, section_title, tab_link

COLUMNS = ["Question", "Answer", "Kind", "Split", "Question by", "Rounds", "Document"]
ANY = "any"
FILTERS = (
    ("kind", "Kind"),
    ("split", "Split"),
    ("question_origin", "By"),
    ("status", "Status"),
)


GENERATE_FIRST = (
    "Pick a knowledge base and press Generate: the app writes questions from your "
    "documents, checks each one (the answer is in the passage, searching with the "
    "question finds it) and records the search trace a tuned model should write."
)
NO_KNOWLEDGE_BASE = (
    "A dataset is generated from a knowledge base, and there is none yet: build one from "
    "your documents in the " + tab_link("kb", "Knowledge base tab") + " first (or bring "
    "question-and-answer pairs with Import QA…)."
)


class ExamplesPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._examples: list[dict[str, Any]] = []
        mcol = QVBoxLayout(self)
        mcol.setContentsMargins(6, 12, 6, 12)
        self.title = section_title("Examples", self)
        mcol.addWidget(self.title)
        # The filters under the title, two pairs a row: each combo as wide as its longest
        # value, so "any" and "behaviour" are never cut, in a pane a third of 1024 px.
        bar = QGridLayout()
        bar.setHorizontalSpacing(6)
        self.filters: dict[str, QComboBox] = {}
        for i, (key, label) in enumerate(FILTERS):
            lab = hint(label, self)
            lab.setWordWrap(False)
            combo = QComboBox(self)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.addItem(ANY)
            combo.currentIndexChanged.connect(self.fill_table)
            self.filters[key] = combo
            bar.addWidget(lab, i // 2, (i % 2) * 2)
            bar.addWidget(combo, i // 2, (i % 2) * 2 + 1)
        bar.setColumnStretch(4, 1)
        mcol.addLayout(bar)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        # The short columns fit their contents, the answer starts at a readable width (the
        # user may drag it), the question takes what is left but never less than 220 px: a
        # narrow pane scrolls sideways instead of squeezing the question to nothing.
        header = self.table.horizontalHeader()
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(1, 130)
        self.question_column = FillColumn(self.table, 0, 220)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        mcol.addWidget(self.table, 1)
        self.empty_hint = hint(GENERATE_FIRST, self)
        mcol.addWidget(self.empty_hint)

    def set_has_knowledge_base(self, has: bool) -> None:
        """What to do first: generate from a knowledge base, or build one (a link there)."""
        self.empty_hint.setText(GENERATE_FIRST if has else NO_KNOWLEDGE_BASE)

    @property
    def examples(self) -> list[dict[str, Any]]:
        """Every example of the open dataset, filtered or not."""
        return self._examples

    def set_examples(self, examples: list[dict[str, Any]]) -> None:
        """Show another dataset's examples (the filters keep a value the new ones have)."""
        self._examples = list(examples)
        self._refill_filters()
        self.fill_table()

    def clear(self) -> None:
        self._examples = []
        self.fill_table()

    def add_example(self, example: dict[str, Any]) -> None:
        """One more example, kept while a run goes."""
        self._examples.append(example)
        if example in self.visible_examples():
            self._append_row(example)
        self.empty_hint.hide()
        self.title.setText(f"Examples · {len(self._examples)}")

    def _refill_filters(self) -> None:
        for key, combo in self.filters.items():
            keep = combo.currentText()
            values = sorted({str(e.get(key, "")) for e in self._examples} - {""})
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(ANY)
            combo.addItems(values)
            if keep in values:
                combo.setCurrentText(keep)
            combo.blockSignals(False)

    def visible_examples(self) -> list[dict[str, Any]]:
        chosen = {k: c.currentText() for k, c in self.filters.items() if c.currentText() != ANY}
        return [e for e in self._examples if all(str(e.get(k)) == v for k, v in chosen.items())]

    @Slot()
    def fill_table(self) -> None:
        rows = self.visible_examples()
        self.table.setRowCount(0)
        for example in rows:
            self._append_row(example)
        shown = len(rows)
        total = len(self._examples)
        self.title.setText(f"Examples · {shown}" + (f" of {total}" if shown != total else ""))
        self.empty_hint.setVisible(total == 0)

    def _append_row(self, example: dict[str, Any]) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        values = [
            example.get("question", ""),
            example.get("answer", ""),
            example.get("kind", ""),
            example.get("split", ""),
            example.get("question_origin", ""),
            str(example.get("rounds", "")),
            Path(str(example.get("source", ""))).name,
        ]
        for col, value in enumerate(values):
            item = QTableWidgetItem(str(value))
            item.setToolTip(str(value))
            if col == 0:
                item.setData(Qt.ItemDataRole.UserRole, example.get("id"))
            self.table.setItem(row, col, item)

    def selected_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        ids = []
        for row in rows:
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole):
                ids.append(str(item.data(Qt.ItemDataRole.UserRole)))
        return ids

    def example(self, example_id: str) -> dict[str, Any] | None:
        return next((e for e in self._examples if e.get("id") == example_id), None)

    def selected_example(self) -> dict[str, Any] | None:
        """The example selected, when exactly one is."""
        ids = self.selected_ids()
        return self.example(ids[0]) if len(ids) == 1 else None
