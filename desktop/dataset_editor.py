"""The Dataset tab's example page: one example's trace, and the form that edits its
question, answers and the passages its ``<results>`` vet."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.agent.record import RunRecord
from core.dataset.editing import ResultEntry, results_entries
from desktop.passage_dialog import PassageDialog
from desktop.replay import events_from_record
from desktop.trace_view import TraceView

RESULT_COLUMNS = ["Cite", "Passage", "Why it is relevant"]


class ExampleEditor(QWidget):
    unreadable = Signal(str)
    """An example's trace cannot be shown: the sentence to say so."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        ecol = QVBoxLayout(self)
        ecol.setContentsMargins(6, 8, 6, 8)
        self.trace = TraceView(self)
        self.trace.set_empty_text("Click an example to see its trace.")
        self.trace.passage_requested.connect(self._open_passage)
        # The trace over the edit fields, the handle between them to give either more room.
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.setChildrenCollapsible(False)
        split.addWidget(self.trace)
        fields = QWidget(split)
        fcol = QVBoxLayout(fields)
        fcol.setContentsMargins(0, 6, 0, 0)
        split.addWidget(fields)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setSizes([10_000, 1])  # the fields at their least height, the trace the rest
        ecol.addWidget(split, 1)
        edit_form = QFormLayout()
        self.edit_question = QLineEdit(self)
        self.edit_answer = QLineEdit(self)
        self.edit_cited = QPlainTextEdit(self)
        self.edit_cited.setFixedHeight(54)
        self.edit_results = self._results_table()
        edit_form.addRow("Question", self.edit_question)
        edit_form.addRow("Answer", self.edit_answer)
        edit_form.addRow("Cited answer", self.edit_cited)
        edit_form.addRow(QLabel("Results", self))
        edit_form.addRow(self.edit_results)  # the whole width: its reasons need the room
        fcol.addLayout(edit_form)
        erow = QHBoxLayout()
        self.save_button = QPushButton("Save edit", self)
        self.remove_button = QPushButton("Delete example", self)
        self.remove_button.setObjectName("danger")
        self.undo_button = QPushButton("Undo", self)
        self.undo_button.setToolTip("Bring back the examples as they were before the last change")
        for b in (self.save_button, self.remove_button, self.undo_button):
            erow.addWidget(b)
        erow.addStretch(1)
        fcol.addLayout(erow)
        self.last_dialog: PassageDialog | None = None

    def enable(self, selected: int, *, generating: bool, has: bool, undo: bool = False) -> None:
        """Edits need one example selected (a delete: some), Undo an edit or a delete of the
        open dataset to take back (``undo``); none while a run writes the dataset."""
        self.save_button.setEnabled(selected == 1 and not generating)
        self.remove_button.setEnabled(selected > 0 and not generating)
        self.undo_button.setEnabled(has and undo and not generating)
        self.undo_button.setToolTip(
            "Bring back the examples as they were before the last edit or delete"
            if has and undo
            else "Nothing to undo: no edit or delete of this dataset to take back"
        )

    def _results_table(self) -> QTableWidget:
        table = QTableWidget(0, len(RESULT_COLUMNS), self)
        table.setHorizontalHeaderLabels(RESULT_COLUMNS)
        table.verticalHeader().hide()
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        table.setWordWrap(False)
        table.setToolTip(
            "Tick the passages the <results> block vets (ticked ones first, in their order); "
            "double-click a reason to change it."
        )
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(1, 110)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        # Never so narrow that a header is cut ("Why it is rele"): the pane keeps this width.
        # (The tick column holds a check box beside its number; the scroll bar takes room.)
        least = sum(header.sectionSizeFromContents(c).width() for c in (0, 2)) + 110 + 24
        bar = table.verticalScrollBar().sizeHint().width()
        table.setMinimumWidth(least + bar + 2 * table.frameWidth())
        table.setFixedHeight(120)
        return table

    def show_example(self, example: dict[str, Any] | None) -> bool:
        """Show ``example`` (None: nothing); False when its trace cannot be shown."""
        self.trace.clear()
        self.edit_question.setText("" if example is None else str(example.get("question", "")))
        self.edit_answer.setText("" if example is None else str(example.get("answer", "")))
        for line in (self.edit_question, self.edit_answer):
            line.setCursorPosition(0)  # a long question shows its start, not its end
        self.edit_cited.setPlainText(
            "" if example is None else str(example["record"].get("answer", ""))
        )
        self.edit_results.setRowCount(0)
        if example is None:
            return True
        try:
            events = events_from_record(example["record"])
            self._fill_results(RunRecord.from_dict(example["record"]))
        except (KeyError, TypeError, ValueError) as exc:
            self.unreadable.emit(f"This example's trace cannot be shown ({exc}).")
            return False
        self.trace.add_question(str(example.get("question", "")))
        self.trace.handle(list(events))
        return True

    def _fill_results(self, record: RunRecord) -> None:
        """One row per passage the trace showed: the vetted ones first, ticked, in the
        order the results give them, each with its reason; then the others."""
        passages = record.passages
        cited = [e for e in results_entries(record) if e.number in passages]
        numbers = {e.number for e in cited}
        rows = [*cited, *(ResultEntry(n) for n in sorted(passages) if n not in numbers)]
        fixed = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        for entry in rows:
            row = self.edit_results.rowCount()
            self.edit_results.insertRow(row)
            hit = passages[entry.number]
            tick = QTableWidgetItem(f"[{entry.number}]")
            tick.setFlags(fixed | Qt.ItemFlag.ItemIsUserCheckable)
            tick.setCheckState(
                Qt.CheckState.Checked if entry.number in numbers else Qt.CheckState.Unchecked
            )
            tick.setData(Qt.ItemDataRole.UserRole, entry.number)
            label = QTableWidgetItem(hit.label)
            label.setFlags(fixed)
            label.setToolTip(hit.text[:600])
            reason = QTableWidgetItem(entry.reason)
            reason.setToolTip(
                (entry.reason + "\n\n" if entry.reason else "")
                + "Why this passage answers the question (no '<', '[' or ']')"
            )
            for col, item in enumerate((tick, label, reason)):
                self.edit_results.setItem(row, col, item)

    def edited_results(self) -> list[ResultEntry]:
        """The ticked passages, in the table's order, with their reasons."""
        out = []
        for row in range(self.edit_results.rowCount()):
            tick, reason = self.edit_results.item(row, 0), self.edit_results.item(row, 2)
            if tick is not None and tick.checkState() == Qt.CheckState.Checked:
                text = reason.text() if reason is not None else ""
                out.append(ResultEntry(int(tick.data(Qt.ItemDataRole.UserRole)), text.strip()))
        return out

    @Slot(object)
    def _open_passage(self, hit: Any) -> None:
        dialog = PassageDialog(hit, self, self.trace.number_of(hit))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.last_dialog = dialog
