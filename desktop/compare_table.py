"""The Compare tab's evaluation table: a question set run on A and on B, each side's
summary, and the pairs per question (both right, only A, only B, neither; McNemar's p).

Accuracy is scored on the short answer (an ``Answer:`` line, else the first sentence); the
old whole-answer containment and the median answer length stand beside it, so a model that
wins only by writing more shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.scaffold import section_title

METRICS = [
    ("accuracy", "Accuracy (first sentence)"),
    ("accuracy_contains", "Accuracy (contains)"),
    ("median_answer_words", "Median answer words"),
    ("recall_at_k", "Recall@k"),
    ("mean_rounds", "Mean rounds"),
    ("protocol_error_rate", "Runs with a format slip"),
    ("seconds_per_question", "Seconds / question"),
]
METRIC_TIPS = {
    "recall_at_k": "Share of questions whose right passage was among the passages found",
    "protocol_error_rate": "Share of questions whose run broke the search format at least "
    "once (protocol_error_rate)",
}
QUESTION_COLUMNS = [
    "Question",
    "Expected",
    "A",
    "B",
    "A contains",
    "B contains",
    "A words",
    "B words",
]
RIGHT, WRONG = "✓", "✗"


class EvaluationTable(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._total = 0
        tcol = QVBoxLayout(self)
        tcol.setContentsMargins(0, 8, 0, 0)
        srow = QHBoxLayout()
        self.source_combo = QComboBox(self)
        self.source_combo.setToolTip("A dataset's validation split, or a QA file (JSON lines)")
        self.file_button = QPushButton("QA file…", self)
        self.run_button = QPushButton("Run comparison", self)
        self.run_button.setObjectName("primary")
        self.cancel_button = QPushButton("Cancel", self)
        srow.addWidget(QLabel("Questions", self))
        srow.addWidget(self.source_combo, 1)
        srow.addWidget(self.file_button)
        srow.addWidget(self.run_button)
        srow.addWidget(self.cancel_button)
        tcol.addLayout(srow)
        self.progress = QProgressBar(self)
        tcol.addWidget(self.progress)
        grid = QGridLayout()
        self.summary_cells: dict[tuple[str, int], QLabel] = {}
        grid.addWidget(QLabel("", self), 0, 0)
        self.head_a = section_title("A", self)
        self.head_b = section_title("B", self)
        for col, head in ((1, self.head_a), (2, self.head_b)):
            grid.addWidget(head, 0, col)
        for row, (key, label) in enumerate(METRICS, 1):
            name = QLabel(label, self)
            name.setToolTip(METRIC_TIPS.get(key, ""))
            grid.addWidget(name, row, 0)
            for col in (1, 2):
                cell = QLabel("–", self)
                self.summary_cells[(key, col)] = cell
                grid.addWidget(cell, row, col)
        tcol.addLayout(grid)
        self.paired_label = section_title("", self)
        self.paired_label.setWordWrap(True)
        tcol.addWidget(self.paired_label)
        self.per_question = QTableWidget(0, len(QUESTION_COLUMNS), self)
        self.per_question.setHorizontalHeaderLabels(QUESTION_COLUMNS)
        self.per_question.verticalHeader().hide()
        self.per_question.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.per_question.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        tcol.addWidget(self.per_question, 1)

    # -- the question sources ----------------------------------------------------------
    def set_sources(self, datasets: list[str], qa_file: str) -> None:
        """Each dataset's validation split, and the QA file chosen (the choice is kept)."""
        source = self.source_combo.currentData()
        self.source_combo.clear()
        for name in datasets:
            self.source_combo.addItem(f"dataset {name} (validation split)", f"dataset:{name}")
        if qa_file:
            self.source_combo.addItem(Path(qa_file).name, qa_file)
        index = self.source_combo.findData(source)
        self.source_combo.setCurrentIndex(max(0, index))

    def source(self) -> str:
        """``dataset:NAME`` or a QA file's path ('' when there is none)."""
        return str(self.source_combo.currentData() or "")

    # -- a run -------------------------------------------------------------------------
    def start(self, a_label: str, b_label: str) -> None:
        """Headed by the two models, everything of the last run cleared."""
        self.head_a.setText(f"A · {a_label}")
        self.head_b.setText(f"B · {b_label}")
        self.per_question.setRowCount(0)
        self.paired_label.setText("")
        for cell in self.summary_cells.values():
            cell.setText("–")

    def show_progress(self, items: list[tuple[Any, ...]]) -> None:
        """``("total", n)`` once, then ``("item", side, index)`` per question answered."""
        for item in items:
            if item[0] == "total":
                self._total = int(item[1])
                self.progress.setRange(0, 2 * max(1, self._total))
                self.progress.setValue(0)
            else:
                _, side, index = item
                self.progress.setValue(side * self._total + index + 1)

    def show_result(self, result: dict[str, Any]) -> None:
        summaries = result.get("summaries", [])
        for col, summary in enumerate(summaries[:2], 1):
            for key, _ in METRICS:
                value = summary.get(key)
                self.summary_cells[(key, col)].setText("–" if value is None else f"{value:g}")
        t = result.get("table", {})
        if len(summaries) < 2:
            self.paired_label.setText("Cancelled before model B ran: no paired table.")
            return
        lines = [f"Paired over {t['questions']} questions:"]
        for label, counts in (("First sentence", t), ("Contains", t.get("contains"))):
            if counts:
                lines.append(f"{label}: {paired_text(counts)}")
        self.paired_label.setText("\n".join(lines))
        rows = result.get("per_question", [])
        self.per_question.setRowCount(len(rows))
        for r, row in enumerate(rows):
            cells = [
                row["question"],
                ", ".join(row["expected"]),
                *(mark(row.get(key)) for key in ("a_correct", "b_correct")),
                *(mark(row.get(key)) for key in ("a_contains", "b_contains")),
                *(str(row.get(key, "")) for key in ("a_words", "b_words")),
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    item.setToolTip(row["b_answer" if c % 2 else "a_answer"])
                if text in (RIGHT, WRONG):
                    item.setForeground(QColor("#15803d" if text == RIGHT else "#b91c1c"))
                self.per_question.setItem(r, c, item)


def mark(score: bool | None) -> str:
    return "–" if score is None else RIGHT if score else WRONG


def paired_text(t: dict[str, Any]) -> str:
    """Both right, only A, only B, neither, McNemar's p and what it means."""
    return (
        f"both right {t['both']}, only A {t['only_a']}, only B {t['only_b']}, neither "
        f"{t['neither']} — McNemar exact p = {t['mcnemar_p']:.3g}"
        + (" (a real difference)" if t["mcnemar_p"] < 0.05 else " (could be chance)")
    )
