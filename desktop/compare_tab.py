"""Compare tab: two models on the same question, side by side, and on a whole question set,
paired per question (both right, only A, only B, neither; McNemar's exact p).

A and B run one after the other (one model in memory and on the CPU at a time); each
streams into its own trace view.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.workspace import Workspace
from desktop.error_banner import ErrorBanner
from desktop.tasks import Job, JobGroup, Push
from desktop.trace_view import TraceView

log = logging.getLogger(__name__)

METRICS = [
    ("accuracy", "Accuracy"),
    ("recall_at_k", "Recall@k"),
    ("mean_rounds", "Mean rounds"),
    ("protocol_error_rate", "Protocol-error rate"),
    ("seconds_per_question", "Seconds / question"),
]
QUESTION_COLUMNS = ["Question", "Expected", "A", "B"]
RIGHT, WRONG = "✓", "✗"


class CompareTab(QWidget):
    status_message = Signal(str)
    error = Signal(str)
    run_state_changed = Signal(bool)

    def __init__(
        self, workspace: Workspace, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.settings = settings
        self.jobs = JobGroup(self, self.show_error)
        self._job: Job | None = None
        self._model_busy = False
        self._qa_file = ""
        self.result: dict[str, Any] = {}
        self._build()
        self._set_running(False)

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 12)
        bar = QHBoxLayout()
        self.kb_combo = QComboBox(self)
        self.kb_combo.setPlaceholderText("no knowledge base")
        self.a_combo = QComboBox(self)
        self.b_combo = QComboBox(self)
        self.mode_combo = QComboBox(self)
        for mode, label in (("loop", "Loop"), ("rag", "RAG"), ("closed", "Closed book")):
            self.mode_combo.addItem(label, mode)
        for label, widget in (
            ("Knowledge base", self.kb_combo),
            ("Model A", self.a_combo),
            ("Model B", self.b_combo),
            ("Mode", self.mode_combo),
        ):
            bar.addWidget(QLabel(label, self))
            bar.addWidget(widget, 1)
        root.addLayout(bar)
        self.banner = ErrorBanner(self)
        root.addWidget(self.banner)

        self.views = QTabWidget(self)
        root.addWidget(self.views, 1)

        # One question, both models.
        side = QWidget(self.views)
        scol = QVBoxLayout(side)
        scol.setContentsMargins(0, 8, 0, 0)
        qrow = QHBoxLayout()
        self.question = QLineEdit(side)
        self.question.setPlaceholderText("A question for both models")
        self.question.returnPressed.connect(self.ask_both)
        self.ask_button = QPushButton("Ask both", side)
        self.ask_button.setObjectName("primary")
        self.ask_button.clicked.connect(self.ask_both)
        qrow.addWidget(self.question, 1)
        qrow.addWidget(self.ask_button)
        scol.addLayout(qrow)
        split = QSplitter(Qt.Orientation.Horizontal, side)
        self.trace_a = TraceView(split)
        self.trace_b = TraceView(split)
        for view, name in ((self.trace_a, "A"), (self.trace_b, "B")):
            view.set_empty_text(f"Model {name}'s trace appears here.")
        split.addWidget(self.trace_a)
        split.addWidget(self.trace_b)
        self.side_split = split
        self.side_titles = QHBoxLayout()
        self.title_a = QLabel("A", side)
        self.title_b = QLabel("B", side)
        for t in (self.title_a, self.title_b):
            t.setObjectName("sectionTitle")
            self.side_titles.addWidget(t, 1)
        scol.addLayout(self.side_titles)
        scol.addWidget(split, 1)
        self.views.addTab(side, "Side by side")

        # A question set, paired.
        table = QWidget(self.views)
        tcol = QVBoxLayout(table)
        tcol.setContentsMargins(0, 8, 0, 0)
        srow = QHBoxLayout()
        self.source_combo = QComboBox(table)
        self.source_combo.setToolTip("A dataset's validation split, or a QA file (JSON lines)")
        self.file_button = QPushButton("QA file…", table)
        self.file_button.clicked.connect(self.choose_qa_file)
        self.run_button = QPushButton("Run comparison", table)
        self.run_button.setObjectName("primary")
        self.run_button.clicked.connect(self.run_comparison)
        self.cancel_button = QPushButton("Cancel", table)
        self.cancel_button.clicked.connect(self.cancel)
        srow.addWidget(QLabel("Questions", table))
        srow.addWidget(self.source_combo, 1)
        srow.addWidget(self.file_button)
        srow.addWidget(self.run_button)
        srow.addWidget(self.cancel_button)
        tcol.addLayout(srow)
        self.progress = QProgressBar(table)
        tcol.addWidget(self.progress)
        grid = QGridLayout()
        self.summary_cells: dict[tuple[str, int], QLabel] = {}
        grid.addWidget(QLabel("", table), 0, 0)
        self.head_a = QLabel("A", table)
        self.head_b = QLabel("B", table)
        for col, head in ((1, self.head_a), (2, self.head_b)):
            head.setObjectName("sectionTitle")
            grid.addWidget(head, 0, col)
        for row, (key, label) in enumerate(METRICS, 1):
            grid.addWidget(QLabel(label, table), row, 0)
            for col in (1, 2):
                cell = QLabel("–", table)
                self.summary_cells[(key, col)] = cell
                grid.addWidget(cell, row, col)
        tcol.addLayout(grid)
        self.paired_label = QLabel("", table)
        self.paired_label.setObjectName("sectionTitle")
        self.paired_label.setWordWrap(True)
        tcol.addWidget(self.paired_label)
        self.per_question = QTableWidget(0, len(QUESTION_COLUMNS), table)
        self.per_question.setHorizontalHeaderLabels(QUESTION_COLUMNS)
        self.per_question.verticalHeader().hide()
        self.per_question.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.per_question.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        tcol.addWidget(self.per_question, 1)
        self.views.addTab(table, "Evaluation table")

    # -- lists --------------------------------------------------------------------
    def set_knowledge_bases(self, names: list[str], current: str) -> None:
        want = self.kb_combo.currentText() or current
        self.kb_combo.clear()
        self.kb_combo.addItems(names)
        index = self.kb_combo.findText(want)
        self.kb_combo.setCurrentIndex(index if index >= 0 else (0 if names else -1))

    def refresh(self) -> None:
        from core.dataset.storage import DatasetStore
        from core.models.registry import ModelRegistry

        registry = ModelRegistry(self.ws.layout)
        tuned = [(e.name, "tuned") for e in registry.tuned() if e.variants]
        tuned += [(e.name, e.format) for e in registry.library() if e.present]
        for combo, fallback in ((self.a_combo, 0), (self.b_combo, 1)):
            want = combo.currentData()
            combo.clear()
            combo.addItem("SmolLM2-135M (bundled)", "default")
            for name, label in tuned:
                combo.addItem(f"{name} ({label})", name)
            index = combo.findData(want) if want else -1
            if index < 0:
                index = min(fallback, combo.count() - 1) if tuned else 0
            combo.setCurrentIndex(index)
        source = self.source_combo.currentData()
        self.source_combo.clear()
        for name in DatasetStore(self.ws.layout.datasets).names():
            self.source_combo.addItem(f"dataset {name} (validation split)", f"dataset:{name}")
        if self._qa_file:
            self.source_combo.addItem(Path(self._qa_file).name, self._qa_file)
        index = self.source_combo.findData(source)
        self.source_combo.setCurrentIndex(max(0, index))

    def choose_qa_file(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "A QA file", "", "JSON lines (*.jsonl *.json);;All files (*)"
        )
        if file:
            self.set_qa_file(file)

    def set_qa_file(self, path: str) -> None:
        self._qa_file = path
        self.refresh()
        self.source_combo.setCurrentIndex(self.source_combo.findData(path))

    # -- state --------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._job is not None

    def set_model_busy(self, busy: bool) -> None:
        """Another tab is using the model: one stream at a time."""
        self._model_busy = busy
        self._update_buttons()

    def _set_running(self, on: bool) -> None:
        self._update_buttons()
        self.run_state_changed.emit(on)

    def _update_buttons(self) -> None:
        on = self.running
        idle = not on and not self._model_busy
        self.ask_button.setEnabled(idle)
        self.run_button.setEnabled(idle)
        self.cancel_button.setEnabled(on)
        for w in (self.kb_combo, self.a_combo, self.b_combo, self.mode_combo):
            w.setEnabled(not on)

    def _sides(self) -> tuple[Any, Any] | None:
        from core.comparison import Side

        mode = str(self.mode_combo.currentData())
        if mode != "closed" and not self.kb_combo.currentText():
            self.show_error("Choose a knowledge base first (or the closed-book mode).")
            return None
        a = Side(str(self.a_combo.currentData() or "default"), mode)
        b = Side(str(self.b_combo.currentData() or "default"), mode)
        return a, b

    def _agent(self, side: Any) -> Any:
        kb = self.kb_combo.currentText() if side.mode != "closed" else None
        return self.ws.agent(kb, model=None if side.model == "default" else side.model)

    def _release(self, side: Any) -> None:
        self.ws.release(None if side.model == "default" else side.model)

    # -- side by side ---------------------------------------------------------------
    def ask_both(self) -> None:
        text = self.question.text().strip()
        sides = self._sides()
        if not text or sides is None or self.running:
            return
        self.hide_error()
        a, b = sides
        self.title_a.setText(f"A · {self.a_combo.currentText()}")
        self.title_b.setText(f"B · {self.b_combo.currentText()}")
        for view in (self.trace_a, self.trace_b):
            view.clear()
            view.add_question(text)

        def work(push: Push, cancel: threading.Event) -> None:
            for index, side in enumerate((a, b)):
                agent = self._agent(side)
                for event in agent.run(text, mode=side.mode, cancel=cancel):
                    push((index, event))
                self._release(side)
                if cancel.is_set():
                    return

        self._job = self.jobs.start(
            work, "compare-ask", on_items=self._on_side_events, on_finished=self._on_finished
        )
        self._set_running(True)

    @Slot(list)
    def _on_side_events(self, items: list[tuple[int, object]]) -> None:
        for view_index in (0, 1):
            events = [e for i, e in items if i == view_index]
            if events:
                (self.trace_a, self.trace_b)[view_index].handle(events)

    # -- the question set ------------------------------------------------------------
    def run_comparison(self) -> None:
        sides = self._sides()
        source = self.source_combo.currentData()
        if sides is None or self.running:
            return
        if not source:
            self.show_error("Choose the questions: a dataset's validation split or a QA file.")
            return
        self.hide_error()
        a, b = sides
        self.head_a.setText(f"A · {self.a_combo.currentText()}")
        self.head_b.setText(f"B · {self.b_combo.currentText()}")
        self.per_question.setRowCount(0)
        self.paired_label.setText("")
        for cell in self.summary_cells.values():
            cell.setText("–")
        kb = self.kb_combo.currentText()

        def work(push: Push, cancel: threading.Event) -> dict[str, Any]:
            from core.cli.compare import load_items
            from core.comparison import compare

            items = load_items(self.ws, str(source))
            push(("total", len(items)))
            result = compare(
                self._agent,
                a,
                b,
                items,
                kb=kb,
                release=self._release,
                on_item=lambda side, i, r: push(("item", side, i)),
                cancel=cancel,
            )
            return result.to_dict()

        self._job = self.jobs.start(
            work,
            "compare-table",
            on_items=self._on_table_progress,
            on_result=self.show_result,
            on_finished=self._on_finished,
        )
        self._set_running(True)

    def _on_table_progress(self, items: list[tuple[Any, ...]]) -> None:
        for item in items:
            if item[0] == "total":
                self._total = int(item[1])
                self.progress.setRange(0, 2 * max(1, self._total))
                self.progress.setValue(0)
            else:
                _, side, index = item
                self.progress.setValue(side * self._total + index + 1)

    def show_result(self, result: dict[str, Any]) -> None:
        self.result = result
        summaries = result.get("summaries", [])
        for col, summary in enumerate(summaries[:2], 1):
            for key, _ in METRICS:
                value = summary.get(key)
                self.summary_cells[(key, col)].setText("–" if value is None else f"{value:g}")
        t = result.get("table", {})
        if len(summaries) < 2:
            self.paired_label.setText("Cancelled before model B ran: no paired table.")
            return
        self.paired_label.setText(
            f"Paired over {t['questions']} questions: both right {t['both']}, only A "
            f"{t['only_a']}, only B {t['only_b']}, neither {t['neither']} — McNemar exact "
            f"p = {t['mcnemar_p']:.3g}"
            + (" (a real difference)" if t["mcnemar_p"] < 0.05 else " (could be chance)")
        )
        rows = result.get("per_question", [])
        self.per_question.setRowCount(len(rows))
        for r, row in enumerate(rows):
            cells = [
                row["question"],
                ", ".join(row["expected"]),
                RIGHT if row["a_correct"] else WRONG,
                RIGHT if row["b_correct"] else WRONG,
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    item.setForeground(QColor("#15803d" if text == RIGHT else "#b91c1c"))
                    answer = row["a_answer"] if c == 2 else row["b_answer"]
                    item.setToolTip(answer)
                self.per_question.setItem(r, c, item)

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def _on_finished(self) -> None:
        self._job = None
        self._set_running(False)

    # -- errors, shutdown ----------------------------------------------------------------
    def show_error(self, message: str) -> None:
        self.banner.show_message(message)
        self.error.emit(message)

    def hide_error(self) -> None:
        self.banner.hide()

    def shutdown(self, timeout: float = 15.0) -> None:
        self.jobs.shutdown(timeout)
