"""The Training tab's run history: every run with its state, step, losses and model, and the
Resume and Delete buttons for the one selected.

Its widgets sit in the tab's right column, in one layout with the monitor's chart and log,
so the three share its height as they always have.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import CotragError
from core.paths import DataLayout
from core.training.runs import RunStore
from desktop import embedder_runs as er
from desktop.confirm import confirm_destructive
from desktop.scaffold import section_title

HISTORY_COLUMNS = ["Run", "State", "Step", "Loss", "Validation", "Model"]


class RunHistory(QObject):
    selected = Signal(str)
    """A run was clicked (its name; '' when the selection went away)."""
    deleted = Signal(str)
    error = Signal(str)

    def __init__(self, layout: DataLayout, parent: QWidget) -> None:
        super().__init__(parent)
        self._layout = layout
        self._host = parent
        self.title = section_title("Runs", parent)
        self.table = QTableWidget(0, len(HISTORY_COLUMNS), parent)
        self.table.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(HISTORY_COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(lambda: self.selected.emit(self.selected_run()))
        self.resume_button = QPushButton("Resume", parent)
        self.resume_button.setToolTip("Continue a cancelled or interrupted run from its checkpoint")
        self.delete_run_button = QPushButton("Delete run", parent)
        self.delete_run_button.setObjectName("danger")
        self.delete_run_button.clicked.connect(self.delete_selected)
        self.buttons = QHBoxLayout()
        self.buttons.addStretch(1)
        self.buttons.addWidget(self.resume_button)
        self.buttons.addWidget(self.delete_run_button)

    def place(self, layout: QVBoxLayout) -> None:
        layout.addWidget(self.title)
        layout.addWidget(self.table, 2)
        layout.addLayout(self.buttons)

    def fill(self, runs: list[dict[str, Any]]) -> None:
        """The runs' summaries (:func:`desktop.embedder_runs.run_summary`), newest first; the
        selected run stays selected."""
        selected = self.selected_run()
        self.table.setRowCount(0)
        for summary in runs:
            row = self.table.rowCount()
            self.table.insertRow(row)
            loss, total = summary.get("loss"), summary.get("total", 0)
            cells = [
                summary["name"],
                summary["state"],
                # No count yet (the run prepares its base and data): not "0/0".
                f"{summary.get('step', 0)}/{total}" if total else "–",
                f"{loss:.3f}" if isinstance(loss, float | int) else "",
                er.validation_cell(summary),
                er.model_cell(summary),
            ]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(str(text))
                if col == 0:
                    item.setData(Qt.ItemDataRole.UserRole, summary)
                if col == 1 and summary.get("error"):
                    item.setToolTip(summary["error"])
                if col == 4 and summary.get("kind") == "embedder":
                    item.setToolTip("Recall@5 on the held-out questions: before → after tuning")
                self.table.setItem(row, col, item)
            if summary["name"] == selected:
                self.table.selectRow(row)

    def row_of(self, run: str) -> int:
        """The row that shows this run, -1 when it is not listed."""
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.text() == run:
                return row
        return -1

    def show_step(self, run: str, step: int, total: int, loss: float) -> None:
        """A running run's row follows its steps (the files it is read from are written
        when the run ends)."""
        row = self.row_of(run)
        if row < 0:
            return
        for column, text in (
            ("State", "running"),
            ("Step", f"{step}/{total}"),
            ("Loss", f"{loss:.3f}"),
        ):
            item = self.table.item(row, HISTORY_COLUMNS.index(column))
            if item is not None:
                item.setText(text)

    def cell(self, run: str, column: str) -> str:
        """What the history shows for this run in this column ('' when it is not listed)."""
        row = self.row_of(run)
        item = self.table.item(row, HISTORY_COLUMNS.index(column)) if row >= 0 else None
        return item.text() if item is not None else ""

    def select(self, run: str) -> None:
        row = self.row_of(run)
        if row >= 0:
            self.table.selectRow(row)

    def offer(self, name: str) -> str:
        """The run ``name`` holds the name a new run asked for (nothing runs): select it, so
        Resume is one click when it can go on, and say so in the window's words."""
        self.select(name)
        self.update_buttons(None)
        if self.resume_button.isEnabled():
            return (
                f"A run named “{name}” exists already and stopped before its end. It is "
                "selected under Runs: press Resume to continue it, or type another name to "
                "start a new run."
            )
        return (
            f"A run named “{name}” exists already (selected under Runs). Type another name "
            "to start a new run."
        )

    def selected_run(self) -> str:
        model = self.table.selectionModel()
        rows = model.selectedRows() if model else []
        if not rows:
            return ""
        item = self.table.item(rows[0].row(), 0)
        return item.text() if item else ""

    def selected_summary(self) -> dict[str, Any]:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return {}
        item = self.table.item(rows[0].row(), 0)
        data = item.data(Qt.ItemDataRole.UserRole) if item else None
        return data if isinstance(data, dict) else {}

    def update_buttons(self, running: str | None) -> None:
        """Resume a stopped run with a checkpoint; delete any run but the one ``running``
        (None: nothing runs)."""
        summary = self.selected_summary()
        state = summary.get("state", "")
        self.resume_button.setEnabled(
            running is None
            and state in ("cancelled", "interrupted", "failed")
            and bool(summary.get("checkpoint"))
        )
        self.delete_run_button.setEnabled(
            bool(summary) and not (running is not None and summary.get("name") == running)
        )

    def delete_selected(self) -> None:
        """Delete the selected run (its folder: checkpoints, log), once the user agrees."""
        name = self.selected_run()
        if not name:
            return
        if not confirm_destructive(
            self._host,
            "Delete run",
            f"Delete the run {name!r} with its checkpoints and log? Its tuned model (if "
            "any) stays.",
        ):
            return
        try:
            RunStore(self._layout).delete(name)
        except (CotragError, OSError) as exc:
            self.error.emit(str(exc))
            return
        self.deleted.emit(name)
