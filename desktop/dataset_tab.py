"""Dataset tab: turn a knowledge base into verified training traces, inspect, fix, export."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.agent.record import RunRecord
from core.durations import time_left
from core.dataset.candidates import KINDS
from core.dataset.editing import ResultEntry
from core.workspace import Workspace
from desktop.bar_chart import BarChart
from desktop.confirm import confirm_destructive
from desktop.error_banner import ErrorBanner
from desktop.passage_dialog import PassageDialog
from desktop.replay import events_from_record
from desktop.tasks import Job, JobGroup, Push
from desktop.trace_view import TraceView

log = logging.getLogger(__name__)

COLUMNS = ["Question", "Answer", "Kind", "Split", "Question by", "Rounds", "Document"]
RESULT_COLUMNS = ["Cite", "Passage", "Why it is relevant"]
ANY = "any"
FORMATS = [
    ("chat", "Chat messages with train mask (JSONL)"),
    ("chatml", "ChatML text with train mask (JSONL)"),
    ("instruction", "Instruction / input / output (JSONL)"),
    ("qa", "Question / context / answer (JSONL)"),
]


class DatasetTab(QWidget):
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
        self._gen_job: Job | None = None
        self._model_busy = False
        self._examples: list[dict[str, Any]] = []
        self._started = 0.0
        self.current_name = ""
        self._build()
        self._fill_teachers()
        self._set_generating(False)

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter = split
        root.addWidget(split)

        # Left: the datasets and the generator.
        left = QWidget(split)
        lcol = QVBoxLayout(left)
        lcol.setContentsMargins(12, 12, 6, 12)
        title = QLabel("Datasets", left)
        title.setObjectName("sectionTitle")
        lcol.addWidget(title)
        self.dataset_list = QListWidget(left)
        self.dataset_list.setMaximumHeight(150)
        self.dataset_list.itemClicked.connect(self._on_dataset_clicked)
        lcol.addWidget(self.dataset_list)
        row = QHBoxLayout()
        self.import_button = QPushButton("Import QA…", left)
        self.import_button.setToolTip("QA pairs (JSON, JSONL, CSV, SQuAD) traced through the KB")
        self.import_button.clicked.connect(self.choose_import)
        self.export_button = QPushButton("Export…", left)
        self.export_button.clicked.connect(self.choose_export)
        self.delete_button = QPushButton("Delete", left)
        self.delete_button.setObjectName("danger")
        self.delete_button.clicked.connect(self.ask_delete_dataset)
        for b in (self.import_button, self.export_button, self.delete_button):
            row.addWidget(b)
        lcol.addLayout(row)

        gen_title = QLabel("Generate", left)
        gen_title.setObjectName("sectionTitle")
        lcol.addSpacing(8)
        lcol.addWidget(gen_title)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.kb_combo = QComboBox(left)
        self.kb_combo.setPlaceholderText("no knowledge base")
        self.name_edit = QLineEdit(left)
        self.name_edit.setPlaceholderText("e.g. manual-v1 (a name that exists continues it)")
        self.count_spin = QSpinBox(left)
        self.count_spin.setRange(1, 100_000)
        self.count_spin.setValue(200)
        self.teacher_combo = QComboBox(left)
        self.teacher_combo.currentIndexChanged.connect(self._on_teacher_changed)
        self.endpoint_edit = QLineEdit(left)
        self.endpoint_edit.setPlaceholderText("http://localhost:8080/v1")
        self.endpoint_model = QLineEdit(left)
        self.endpoint_model.setPlaceholderText("model name at the endpoint")
        self.endpoint_key = QLineEdit(left)
        self.endpoint_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.endpoint_key.setPlaceholderText("API key (kept in the OS keyring)")
        form.addRow("Knowledge base", self.kb_combo)
        form.addRow("Name", self.name_edit)
        form.addRow("Examples", self.count_spin)
        form.addRow("Questions by", self.teacher_combo)
        self._endpoint_rows = [
            ("Endpoint", self.endpoint_edit),
            ("Model", self.endpoint_model),
            ("API key", self.endpoint_key),
        ]
        for label, widget in self._endpoint_rows:
            form.addRow(label, widget)
        self.form = form
        lcol.addLayout(form)
        kinds = QHBoxLayout()
        kinds.setSpacing(6)
        self.kind_boxes: dict[str, QCheckBox] = {}
        for kind in KINDS:
            box = QCheckBox(kind, left)
            box.setChecked(True)
            self.kind_boxes[kind] = box
            kinds.addWidget(box)
        kinds.addStretch(1)
        lcol.addLayout(kinds)
        self.teacher_traces = QCheckBox("The model also tries to write each trace", left)
        self.teacher_traces.setToolTip(
            "The question writer runs the search loop itself; its trace is kept when it is "
            "clean, vets the right passage and answers right (slow with a small model)."
        )
        lcol.addWidget(self.teacher_traces)
        self.licence = QLabel(
            "Check the licence of the model that writes the questions: some forbid training "
            "other models on their output.",
            left,
        )
        self.licence.setObjectName("hint")
        self.licence.setWordWrap(True)
        lcol.addWidget(self.licence)
        buttons = QHBoxLayout()
        self.generate_button = QPushButton("Generate", left)
        self.generate_button.setObjectName("primary")
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Cancel", left)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.cancel_button)
        lcol.addLayout(buttons)
        self.progress = QProgressBar(left)
        self.progress.setTextVisible(False)
        lcol.addWidget(self.progress)
        self.progress_label = QLabel("", left)
        self.progress_label.setObjectName("hint")
        self.progress_label.setWordWrap(True)
        lcol.addWidget(self.progress_label)
        self.error_banner = ErrorBanner(left)
        lcol.addWidget(self.error_banner)
        lcol.addStretch(1)

        # Middle: the examples.
        middle = QWidget(split)
        mcol = QVBoxLayout(middle)
        mcol.setContentsMargins(6, 12, 6, 12)
        bar = QHBoxLayout()
        self.examples_title = QLabel("Examples", middle)
        self.examples_title.setObjectName("sectionTitle")
        bar.addWidget(self.examples_title)
        bar.addStretch(1)
        self.filters: dict[str, QComboBox] = {}
        for key, label in (
            ("kind", "Kind"),
            ("split", "Split"),
            ("question_origin", "By"),
            ("status", "Status"),
        ):
            lab = QLabel(label, middle)
            lab.setObjectName("hint")
            combo = QComboBox(middle)
            combo.addItem(ANY)
            combo.currentIndexChanged.connect(self._fill_table)
            self.filters[key] = combo
            bar.addWidget(lab)
            bar.addWidget(combo)
        mcol.addLayout(bar)
        self.table = QTableWidget(0, len(COLUMNS), middle)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._on_selection)
        mcol.addWidget(self.table, 1)
        self.empty_hint = QLabel(
            "Pick a knowledge base and press Generate: the app writes questions from your "
            "documents, checks each one (the answer is in the passage, searching with the "
            "question finds it) and records the search trace a tuned model should write.",
            middle,
        )
        self.empty_hint.setObjectName("hint")
        self.empty_hint.setWordWrap(True)
        mcol.addWidget(self.empty_hint)

        # Right: one example (trace + edit) and the quality report.
        self.side = QTabWidget(split)
        example = QWidget(self.side)
        ecol = QVBoxLayout(example)
        ecol.setContentsMargins(6, 8, 6, 8)
        self.trace = TraceView(example)
        self.trace.set_empty_text("Click an example to see its trace.")
        self.trace.passage_requested.connect(self._open_passage)
        ecol.addWidget(self.trace, 1)
        edit_form = QFormLayout()
        self.edit_question = QLineEdit(example)
        self.edit_answer = QLineEdit(example)
        self.edit_cited = QPlainTextEdit(example)
        self.edit_cited.setFixedHeight(54)
        self.edit_results = QTableWidget(0, len(RESULT_COLUMNS), example)
        self.edit_results.setHorizontalHeaderLabels(RESULT_COLUMNS)
        self.edit_results.verticalHeader().hide()
        self.edit_results.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.edit_results.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.edit_results.setWordWrap(False)
        self.edit_results.setToolTip(
            "Tick the passages the <results> block vets (ticked ones first, in their order); "
            "double-click a reason to change it."
        )
        rheader = self.edit_results.horizontalHeader()
        rheader.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        rheader.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        rheader.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.edit_results.setFixedHeight(120)
        edit_form.addRow("Question", self.edit_question)
        edit_form.addRow("Answer", self.edit_answer)
        edit_form.addRow("Cited answer", self.edit_cited)
        edit_form.addRow("Results", self.edit_results)
        ecol.addLayout(edit_form)
        erow = QHBoxLayout()
        self.save_button = QPushButton("Save edit", example)
        self.save_button.clicked.connect(self.save_edit)
        self.remove_button = QPushButton("Delete example", example)
        self.remove_button.setObjectName("danger")
        self.remove_button.clicked.connect(self.delete_selected)
        self.undo_button = QPushButton("Undo", example)
        self.undo_button.setToolTip("Bring back the examples as they were before the last change")
        self.undo_button.clicked.connect(self.undo)
        for b in (self.save_button, self.remove_button, self.undo_button):
            erow.addWidget(b)
        erow.addStretch(1)
        ecol.addLayout(erow)
        self.side.addTab(example, "Example")

        report = QScrollArea(self.side)
        report.setWidgetResizable(True)
        inner = QWidget(report)
        rcol = QVBoxLayout(inner)
        rcol.setContentsMargins(10, 10, 10, 10)
        self.report_summary = QLabel("", inner)
        self.report_summary.setWordWrap(True)
        rcol.addWidget(self.report_summary)
        self.charts = {
            "kinds": BarChart("Kinds", "#3b82f6", inner),
            "rejections": BarChart("Rejected, by reason", "#f97316", inner),
            "origins": BarChart("Questions written by · traces", "#8b5cf6", inner),
            "rounds": BarChart("Search rounds per trace", "#10b981", inner),
            "trace_tokens": BarChart("Trace length (≈tokens)", "#64748b", inner),
        }
        for chart in self.charts.values():
            rcol.addWidget(chart)
            rcol.addSpacing(6)
        rcol.addStretch(1)
        report.setWidget(inner)
        self.side.addTab(report, "Quality report")

        split.addWidget(left)
        split.addWidget(middle)
        split.addWidget(self.side)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 4)
        split.setStretchFactor(2, 3)
        split.setSizes([330, 560, 420])
        self._show_endpoint(False)

    # -- teachers -----------------------------------------------------------------
    def refresh_teachers(self) -> None:
        """Re-read the models that can write questions (one was pulled or added)."""
        keep = self.teacher_combo.currentData()
        self._fill_teachers()
        index = self.teacher_combo.findData(keep)
        self.teacher_combo.setCurrentIndex(max(0, index))

    def _fill_teachers(self) -> None:
        self.teacher_combo.clear()
        self.teacher_combo.addItem("Bundled model (SmolLM2-135M)", "bundled")
        self.teacher_combo.addItem("Templates only (no model)", "none")
        from core.models.registry import ModelRegistry

        for entry in ModelRegistry(self.ws.layout).library():
            if entry.present:
                self.teacher_combo.addItem(f"{entry.name} ({entry.format})", entry.name)
        self.teacher_combo.addItem("OpenAI-compatible endpoint…", "endpoint")

    def _show_endpoint(self, on: bool) -> None:
        for _, widget in self._endpoint_rows:
            self.form.setRowVisible(widget, on)

    @Slot(int)
    def _on_teacher_changed(self, _index: int) -> None:
        self._show_endpoint(self.teacher_combo.currentData() == "endpoint")

    # -- knowledge bases and datasets ---------------------------------------------
    @Slot(list, str)
    def set_knowledge_bases(self, names: list[str], current: str) -> None:
        keep = self.kb_combo.currentText()
        self.kb_combo.clear()
        self.kb_combo.addItems(names)
        chosen = keep if keep in names else current
        if chosen:
            self.kb_combo.setCurrentText(chosen)

    def _job(self, work: Any, name: str, **callbacks: Any) -> Job:
        return self.jobs.start(work, name, **callbacks)

    def busy(self) -> bool:
        return self.jobs.busy()

    def refresh(self, select: str = "") -> None:
        from core.dataset.service import datasets

        def work(push: Push, cancel: threading.Event) -> list[tuple[str, int, str]]:
            store = datasets(self.ws)
            out = []
            for name in store.names():
                dataset = store.open(name)
                out.append((name, len(dataset.examples()), str(dataset.meta.get("kb", ""))))
            return out

        want = select or self.current_name
        self._job(work, "ds-list", on_result=lambda rows: self._got_list(rows, want))

    def _got_list(self, rows: list[tuple[str, int, str]], want: str) -> None:
        self.dataset_list.clear()
        for name, count, kb in rows:
            item = QListWidgetItem(f"{name}\n{count} examples · from {kb}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.dataset_list.addItem(item)
            if name == want:
                self.dataset_list.setCurrentItem(item)
        if want and any(r[0] == want for r in rows):
            self.open_dataset(want)
        self._update_buttons()

    @Slot(QListWidgetItem)
    def _on_dataset_clicked(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.ItemDataRole.UserRole)
        if name:
            self.open_dataset(str(name))

    def open_dataset(self, name: str) -> None:
        from core.dataset import export as exporting
        from core.dataset.service import datasets

        self.current_name = name
        if not self.name_edit.text():
            self.name_edit.setText(name)

        def work(push: Push, cancel: threading.Event) -> tuple[list[dict[str, Any]], Any]:
            dataset = datasets(self.ws).open(name)
            return dataset.examples(), exporting.report(dataset)

        self._job(work, "ds-open", on_result=self._got_dataset)

    def _got_dataset(self, result: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
        self._examples, report = result
        self._refill_filters()
        self._fill_table()
        self.show_report(report)
        self._update_buttons()

    # -- table --------------------------------------------------------------------
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
    def _fill_table(self) -> None:
        rows = self.visible_examples()
        self.table.setRowCount(0)
        for example in rows:
            self._append_row(example)
        shown = len(rows)
        total = len(self._examples)
        self.examples_title.setText(
            f"Examples · {shown}" + (f" of {total}" if shown != total else "")
        )
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

    def _example(self, example_id: str) -> dict[str, Any] | None:
        return next((e for e in self._examples if e.get("id") == example_id), None)

    @Slot()
    def _on_selection(self) -> None:
        ids = self.selected_ids()
        example = self._example(ids[0]) if len(ids) == 1 else None
        self.show_example(example)
        self._update_buttons()

    def show_example(self, example: dict[str, Any] | None) -> None:
        self.trace.clear()
        for widget in (self.edit_question, self.edit_answer):
            widget.setText(
                ""
                if example is None
                else str(example.get("question" if widget is self.edit_question else "answer", ""))
            )
        self.edit_cited.setPlainText(
            "" if example is None else str(example["record"].get("answer", ""))
        )
        self.edit_results.setRowCount(0)
        if example is None:
            return
        try:
            events = events_from_record(example["record"])
            self._fill_results(RunRecord.from_dict(example["record"]))
        except (KeyError, TypeError, ValueError) as exc:
            self.show_error(f"This example's trace cannot be shown ({exc}).")
            return
        self.trace.add_question(str(example.get("question", "")))
        self.trace.handle(list(events))
        self.side.setCurrentIndex(0)

    def _fill_results(self, record: RunRecord) -> None:
        """One row per passage the trace showed: the vetted ones first, ticked, in the
        order the results give them, each with its reason; then the others."""
        from core.dataset.editing import results_entries

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

    # -- report -------------------------------------------------------------------
    def show_report(self, report: dict[str, Any]) -> None:
        splits = report.get("splits", {})
        self.report_summary.setText(
            f"<b>{report['examples']}</b> examples ({splits.get('train', 0)} train, "
            f"{splits.get('validation', 0)} validation) from {report['documents']} documents. "
            f"<b>{report['rejected']}</b> candidates rejected; acceptance "
            f"{report['acceptance_rate']:.0%}."
        )
        self.charts["kinds"].set_values(report.get("kinds", {}))
        self.charts["rejections"].set_values(
            sorted(report.get("rejections", {}).items(), key=lambda kv: -kv[1])
        )
        origins = [(f"questions: {k}", v) for k, v in report.get("question_origins", {}).items()]
        origins += [(f"traces: {k}", v) for k, v in report.get("trace_origins", {}).items()]
        self.charts["origins"].set_values(origins)
        self.charts["rounds"].set_values(
            [
                (f"{k} round{'s' if str(k) != '1' else ''}", v)
                for k, v in report.get("rounds", {}).items()
            ]
        )
        self.charts["trace_tokens"].set_values(report.get("trace_tokens", {}))

    # -- generating ---------------------------------------------------------------
    @Slot(bool)
    def set_model_busy(self, busy: bool) -> None:
        """The chat is using the model: one stream at a time, so Generate waits."""
        self._model_busy = busy
        self._update_buttons()

    def _refuse_while_model_busy(self) -> bool:
        if self._model_busy:
            self.show_error("The chat is using the model; generate when its answer is done.")
        return self._model_busy

    def _update_buttons(self) -> None:
        generating = self._gen_job is not None
        self.generate_button.setEnabled(not generating and not self._model_busy)
        self.generate_button.setToolTip(
            "Wait for the chat's answer: the model runs one thing at a time"
            if self._model_busy
            else ""
        )
        self.cancel_button.setEnabled(generating)
        has = bool(self.current_name)
        self.export_button.setEnabled(has and not generating)
        self.delete_button.setEnabled(has and not generating)
        self.import_button.setEnabled(not generating and not self._model_busy)
        one = len(self.selected_ids()) == 1
        self.save_button.setEnabled(one and not generating)
        self.remove_button.setEnabled(bool(self.selected_ids()) and not generating)
        self.undo_button.setEnabled(has and not generating)

    def _set_generating(self, on: bool) -> None:
        for w in (
            self.kb_combo,
            self.name_edit,
            self.count_spin,
            self.teacher_combo,
            self.teacher_traces,
            *self.kind_boxes.values(),
            self.dataset_list,
        ):
            w.setEnabled(not on)
        self._update_buttons()
        self.run_state_changed.emit(on)

    def _spec(self) -> Any:
        from core.dataset.generate import GenerateSpec

        return GenerateSpec(
            kb=self.kb_combo.currentText(),
            count=self.count_spin.value(),
            kinds={k: 1.0 if box.isChecked() else 0.0 for k, box in self.kind_boxes.items()},
            teacher_traces=self.teacher_traces.isChecked(),
        )

    @Slot()
    def generate(self) -> None:
        from core.errors import CotragError

        if self._refuse_while_model_busy():
            return
        name = self.name_edit.text().strip()
        kb = self.kb_combo.currentText()
        if not kb:
            self.show_error("Choose a knowledge base first (build one in the Knowledge base tab).")
            return
        if not name:
            self.show_error("Give the dataset a name.")
            return
        try:
            spec = self._spec()
        except CotragError as exc:
            self.show_error(str(exc))
            return
        teacher_ref = str(self.teacher_combo.currentData())
        url, model = self.endpoint_edit.text().strip(), self.endpoint_model.text().strip()
        key = self.endpoint_key.text()
        if teacher_ref == "endpoint" and not url:
            self.show_error("Type the endpoint's base URL (for example http://localhost:8080/v1).")
            return
        self.hide_error()
        self.current_name = name
        self._examples = []
        self._fill_table()
        self.progress.setRange(0, spec.count)
        self.progress.setValue(0)
        self.progress_label.setText("Loading the knowledge base and the question writer…")
        self._started = time.monotonic()

        def work(push: Push, cancel: threading.Event) -> dict[str, Any]:
            from core.dataset import export as exporting
            from core.dataset import service
            from core.dataset.teacher import HttpTeacher, store_api_key

            if teacher_ref == "endpoint":
                if key:
                    try:
                        store_api_key(url, key)
                    except CotragError as exc:
                        log.warning("%s", exc)
                teacher: Any = HttpTeacher(url, model or "default", api_key=key)
            else:
                teacher = service.make_teacher(self.ws, teacher_ref)
            gen, dataset, _ = service.generator(self.ws, name, spec, teacher, cancel=cancel)
            push(("existing", dataset.examples()))
            for event in gen.run():
                push(event)
            return exporting.report(dataset)

        self._gen_job = self._job(
            work,
            "ds-generate",
            on_items=self._on_gen_events,
            on_result=self._on_gen_done,
            on_finished=self._on_gen_finished,
        )
        self._set_generating(True)

    def import_file(self, path: Path) -> None:
        if self._refuse_while_model_busy():
            return
        name = self.name_edit.text().strip() or path.stem
        kb = self.kb_combo.currentText()
        if not kb:
            self.show_error("Choose the knowledge base the questions are about first.")
            return
        self.hide_error()
        self.current_name = name
        self.name_edit.setText(name)
        self.progress.setRange(0, 0)
        self.progress_label.setText(f"Importing {path.name}…")
        self._started = time.monotonic()

        def work(push: Push, cancel: threading.Event) -> dict[str, Any]:
            from core.dataset import export as exporting
            from core.dataset import service
            from core.dataset.generate import GenerateSpec
            from core.dataset.importing import load_pairs

            pairs = load_pairs(path)
            spec = GenerateSpec(kb=kb, count=len(pairs))
            gen, dataset, _ = service.generator(self.ws, name, spec, None, cancel=cancel)
            push(("existing", dataset.examples()))
            for event in gen.run_pairs(pairs):
                push(event)
            return exporting.report(dataset)

        self._gen_job = self._job(
            work,
            "ds-import",
            on_items=self._on_gen_events,
            on_result=self._on_gen_done,
            on_finished=self._on_gen_finished,
        )
        self._set_generating(True)

    @Slot(list)
    def _on_gen_events(self, events: list[object]) -> None:
        from core.dataset.generate import Accepted, Progress

        for event in events:
            if isinstance(event, tuple) and event[0] == "existing":
                self._examples = list(event[1])
                self._refill_filters()
                self._fill_table()
            elif isinstance(event, Accepted):
                self._examples.append(event.example)
                if event.example in self.visible_examples():
                    self._append_row(event.example)
                self.empty_hint.hide()
                self.examples_title.setText(f"Examples · {len(self._examples)}")
            elif isinstance(event, Progress):
                self.progress.setRange(0, max(1, event.target))
                self.progress.setValue(min(event.accepted, event.target))
                self.progress_label.setText(
                    f"{event.accepted} of {event.target} accepted · {event.rejected} rejected · "
                    f"{event.per_minute:.0f} per minute · "
                    + (time_left(event.eta_s) if event.accepted < event.target else "done")
                )

    def _on_gen_done(self, report: dict[str, Any]) -> None:
        job = self._gen_job
        stopped = job is not None and job.cancel_event.is_set()
        self.show_report(report)
        elapsed = time.monotonic() - self._started
        prefix = "Stopped: every accepted example is saved. " if stopped else ""
        self.progress_label.setText(
            f"{prefix}{report['examples']} examples, {report['rejected']} rejected "
            f"({elapsed:.0f} s)."
        )
        self.status_message.emit(f"Dataset {self.current_name}: {report['examples']} examples.")

    @Slot()
    def _on_gen_finished(self) -> None:
        self._gen_job = None
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        if self.progress_label.text().startswith(("Loading", "Importing")):
            self.progress_label.setText("")  # it failed before it began: the banner says why
        self._set_generating(False)
        self.refresh(select=self.current_name)

    @Slot()
    def cancel(self) -> None:
        if self._gen_job is not None:
            self._gen_job.cancel()
            self.progress_label.setText("Stopping after the current example…")

    # -- edits --------------------------------------------------------------------
    def _dataset(self) -> Any:
        from core.dataset.service import datasets

        return datasets(self.ws).open(self.current_name)

    @Slot()
    def save_edit(self) -> None:
        from core.dataset.editing import EditRejected, edited, replace_example

        ids = self.selected_ids()
        example = self._example(ids[0]) if len(ids) == 1 else None
        if example is None:
            return
        try:
            dataset = self._dataset()
            new = edited(
                example,
                question=self.edit_question.text(),
                answer=self.edit_answer.text(),
                cited=self.edit_cited.toPlainText(),
                results=self.edited_results(),
                meta=dataset.meta,
            )
            replace_example(dataset, new)
        except (EditRejected, OSError) as exc:
            self.show_error(f"Not saved: {exc}")
            return
        self.hide_error()
        self.status_message.emit("Example saved (Undo brings the old one back).")
        self.open_dataset(self.current_name)

    @Slot()
    def delete_selected(self) -> None:
        from core.dataset.editing import delete_examples

        ids = set(self.selected_ids())
        if not ids:
            return
        try:
            removed = delete_examples(self._dataset(), ids)
        except OSError as exc:
            self.show_error(f"Nothing deleted: {exc}")
            return
        self.status_message.emit(f"Deleted {removed} example(s); Undo brings them back.")
        self.open_dataset(self.current_name)

    @Slot()
    def undo(self) -> None:
        if not self.current_name:
            return
        if self._dataset().undo():
            self.status_message.emit("Undone: the examples are as they were before.")
            self.open_dataset(self.current_name)
        else:
            self.status_message.emit("Nothing to undo.")

    @Slot()
    def ask_delete_dataset(self) -> None:
        if self.current_name and confirm_destructive(
            self, "Delete dataset", f"Delete the dataset “{self.current_name}” and its examples?"
        ):
            self.delete_dataset(self.current_name)

    def delete_dataset(self, name: str) -> None:
        from core.dataset.service import datasets

        try:
            datasets(self.ws).delete(name)
        except Exception as exc:
            self.show_error(str(exc))
            return
        self.current_name = ""
        self._examples = []
        self._fill_table()
        self.trace.clear()
        self.refresh()

    # -- files --------------------------------------------------------------------
    @Slot()
    def choose_import(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Import question/answer pairs", "", "QA files (*.json *.jsonl *.csv)"
        )
        if file:
            self.import_file(Path(file))

    @Slot()
    def choose_export(self) -> None:
        if not self.current_name:
            return
        file, chosen = QFileDialog.getSaveFileName(
            self,
            "Export dataset",
            f"{self.current_name}.jsonl",
            ";;".join(label for _, label in FORMATS),
        )
        if file:
            fmt = next((f for f, label in FORMATS if label == chosen), "chat")
            self.export_to(Path(file), fmt)

    def export_to(self, target: Path, fmt: str = "chat") -> None:
        from core.dataset import export as exporting

        try:
            dataset = self._dataset()
            rows = exporting.export(dataset, fmt, target)
            card = target.with_suffix(".md")
            card.write_text(exporting.card(dataset, exporting.report(dataset)), "utf-8")
        except (OSError, ValueError) as exc:
            self.show_error(f"Export failed: {exc}")
            return
        self.status_message.emit(f"Exported {rows} rows to {target} (card: {card.name}).")

    # -- errors and shutdown ------------------------------------------------------
    @Slot(str)
    def show_error(self, message: str) -> None:
        self.error_banner.show_message(message)
        self.error.emit(message)

    def hide_error(self) -> None:
        self.error_banner.hide()

    def shutdown(self, timeout: float = 15.0) -> None:
        self.jobs.shutdown(timeout)
