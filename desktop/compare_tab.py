"""Compare tab: two models on the same question, side by side, and on a whole question set,
paired per question (both right, only A, only B, neither; McNemar's exact p).

A and B run one after the other (one model in memory and on the CPU at a time); each
streams into its own trace view. The runs are the compare service's; this tab picks the
models and shows what comes back.
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.compare import service
from core.compare.pairs import Side
from core.dataset.storage import DatasetStore
from core.models.installed import ModelEntry, ModelRegistry
from core.workspace import Workspace
from desktop.compare_side import SideBySide
from desktop.compare_table import EvaluationTable
from desktop.fit import fit_combo
from desktop.scaffold import TabView, tab_link
from desktop.tasks import Job, JobGroup, Push

MODES = (("loop", "Loop"), ("rag", "RAG"), ("closed", "Closed book"))


def _tuned_label(entry: ModelEntry) -> str:
    """``name — worse than base`` (the guard's verdict), else ``name (tuned)``."""
    return entry.picker_label if entry.verdict_note else f"{entry.name} (tuned)"


def guard_text(entry: ModelEntry) -> str:
    """The stored guard of a tuned model, for the label above the views ('' when none)."""
    guard = entry.guard
    table = guard.get("table") or {}
    if not guard.get("sentence"):
        return ""
    lines = [f"<b>Guard of {entry.name}</b>: {guard['sentence']}"]
    if table:
        who = {"model": "the tuned model's own first search", "question": "the app's first search"}
        source = str(guard.get("question_source", ""))
        asked = (
            "questions of a QA file"
            if source == "file"
            else f"held-out questions of dataset {guard.get('dataset', '?')}"
        )
        lines.append(
            f"Base ({guard.get('base', '?')}) vs {entry.name} on {table.get('questions', 0)} "
            f"{asked}, loop mode, greedy, with "
            f"{who.get(str(guard.get('first_query')), '?')}"
            f"{', its base writing the answers' if guard.get('answer_model') == 'base' else ''}"
            f": both right {table.get('both', 0)}"
            f" · only tuned {table.get('only_b', 0)} · only base {table.get('only_a', 0)} · "
            f"neither {table.get('neither', 0)} · McNemar p = "
            f"{float(table.get('mcnemar_p', 1.0)):.2g}."
        )
    return "<br>".join(lines)


class CompareTab(TabView):
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
        self._asking = False
        """The job running is the side-by-side question (not the question set)."""
        self.result: dict[str, Any] = {}
        self._build()
        self._set_running(False)

    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 12)
        bar = QHBoxLayout()
        self.kb_combo = QComboBox(self)
        self.kb_combo.setPlaceholderText("no knowledge base")
        self.a_combo = QComboBox(self)
        self.b_combo = QComboBox(self)
        self.mode_combo = QComboBox(self)
        for mode, label in MODES:
            self.mode_combo.addItem(label, mode)
        for label, widget in (
            ("Knowledge base", self.kb_combo),
            ("Model A", self.a_combo),
            ("Model B", self.b_combo),
            ("Mode", self.mode_combo),
        ):
            bar.addWidget(QLabel(label, self))
            bar.addWidget(widget, 1)
        for combo, chars in ((self.kb_combo, 8), (self.a_combo, 12), (self.b_combo, 12)):
            fit_combo(combo, chars)
        root.addLayout(bar)
        root.addWidget(self.banner)
        self.guard_label = QLabel("", self)
        self.guard_label.setObjectName("guardLine")
        self.guard_label.setWordWrap(True)
        self.guard_label.setToolTip(
            "What the guard measured when the tuned model was made (`cotrag models guard "
            "NAME` measures again): the base and the tuned model on the dataset's held-out "
            "questions"
        )
        self.guard_label.hide()
        root.addWidget(self.guard_label)
        self.b_combo.currentIndexChanged.connect(lambda _i: self._show_guard())

        self.views = QTabWidget(self)
        root.addWidget(self.views, 1)
        self.side = SideBySide(self.views)
        self.side.trace_a.link_activated.connect(self.open_tab)
        self.views.addTab(self.side, "Side by side")
        self.table = EvaluationTable(self.views)
        self.views.addTab(self.table, "Evaluation table")
        self.side.question.returnPressed.connect(self.ask_both)
        self.side.ask_button.clicked.connect(self.ask_both)
        self.side.stop_button.clicked.connect(self.cancel)
        QShortcut(QKeySequence("Esc"), self.side, self.cancel)
        self.table.file_button.clicked.connect(self.choose_qa_file)
        self.table.run_button.clicked.connect(self.run_comparison)
        self.table.cancel_button.clicked.connect(self.cancel)

        # What a user (and a test) reaches through the tab.
        self.question = self.side.question
        self.trace_a, self.trace_b = self.side.trace_a, self.side.trace_b
        self.per_question = self.table.per_question
        self.paired_label = self.table.paired_label

    # -- lists --------------------------------------------------------------------
    def set_knowledge_bases(self, names: list[str], current: str) -> None:
        self.side.trace_a.set_empty_text(
            "Model A's trace appears here."
            if names
            else "No knowledge base yet: build one in the "
            + tab_link("kb", "Knowledge base tab")
            + ", then ask both models the same question here."
        )
        want = self.kb_combo.currentText() or current
        self.kb_combo.clear()
        self.kb_combo.addItems(names)
        index = self.kb_combo.findText(want)
        self.kb_combo.setCurrentIndex(index if index >= 0 else (0 if names else -1))

    def refresh(self) -> None:
        registry = ModelRegistry(self.ws.layout)
        tuned = [(e.name, _tuned_label(e)) for e in registry.tuned() if e.variants]
        tuned += [(e.name, f"{e.name} ({e.format})") for e in registry.library() if e.present]
        for combo, fallback in ((self.a_combo, 0), (self.b_combo, 1)):
            want = combo.currentData()
            combo.clear()
            combo.addItem("SmolLM2-135M (bundled)", "default")
            for name, label in tuned:
                combo.addItem(label, name)
            index = combo.findData(want) if want else -1
            if index < 0:
                index = min(fallback, combo.count() - 1) if tuned else 0
            combo.setCurrentIndex(index)
        self.table.set_sources(DatasetStore(self.ws.layout.datasets).names(), self._qa_file)

    def _show_guard(self) -> None:
        """Model B's stored guard table, when B is a tuned model that has one."""
        name = self.b_combo.currentData()
        entry = ModelRegistry(self.ws.layout).find(name) if name else None
        text = guard_text(entry) if entry is not None and entry.kind == "tuned" else ""
        self.guard_label.setText(text)
        self.guard_label.setVisible(bool(text))

    def open_guard(self, name: str) -> None:
        """Open on a tuned model's guard: B is the tuned model, A its base when the
        pickers list it (the bundled model otherwise); the stored table shows at once."""
        self.refresh()
        entry = ModelRegistry(self.ws.layout).find(name)
        base = str((entry.info.get("base", {}) or {}).get("reference", "")) if entry else ""
        a = self.a_combo.findData(base or "default")
        self.a_combo.setCurrentIndex(a if a >= 0 else 0)
        b = self.b_combo.findData(name)
        if b >= 0:
            self.b_combo.setCurrentIndex(b)
        self._show_guard()

    def choose_qa_file(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "A QA file", "", "JSON lines (*.jsonl *.json);;All files (*)"
        )
        if file:
            self.set_qa_file(file)

    def set_qa_file(self, path: str) -> None:
        self._qa_file = path
        self.refresh()
        self.table.source_combo.setCurrentIndex(self.table.source_combo.findData(path))

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
        self.side.ask_button.setEnabled(idle)
        self.side.stop_button.setEnabled(on and self._asking)
        self.table.run_button.setEnabled(idle)
        self.table.cancel_button.setEnabled(on)
        for w in (self.kb_combo, self.a_combo, self.b_combo, self.mode_combo):
            w.setEnabled(not on)

    def _request(self) -> service.CompareRequest | None:
        mode = str(self.mode_combo.currentData())
        kb = self.kb_combo.currentText()
        if mode != "closed" and not kb:
            self.show_error("Choose a knowledge base first (or the closed-book mode).")
            return None
        a = Side(str(self.a_combo.currentData() or "default"), mode)
        b = Side(str(self.b_combo.currentData() or "default"), mode)
        return service.CompareRequest(a, b, kb=kb)

    # -- side by side ---------------------------------------------------------------
    def ask_both(self) -> None:
        text = self.question.text().strip()
        request = self._request()
        if not text or request is None or self.running:
            return
        self.hide_error()
        self.side.start(text, self.a_combo.currentText(), self.b_combo.currentText())
        ws = self.ws

        def work(push: Push, cancel: threading.Event) -> None:
            for item in service.ask_both(ws, request, text, cancel=cancel):
                push(item)

        self._job = self.jobs.start(
            work, "compare-ask", on_items=self.side.show_events, on_finished=self._on_finished
        )
        self._asking = True
        self._set_running(True)

    # -- the question set ------------------------------------------------------------
    def run_comparison(self) -> None:
        request = self._request()
        source = self.table.source()
        if request is None or self.running:
            return
        if not source:
            self.show_error("Choose the questions: a dataset's validation split or a QA file.")
            return
        self.hide_error()
        self.table.start(self.a_combo.currentText(), self.b_combo.currentText())
        ws = self.ws

        def work(push: Push, cancel: threading.Event) -> dict[str, Any]:
            items = service.load_items(ws, source)
            push(("total", len(items)))
            result = service.compare_models(
                ws,
                request,
                items,
                on_item=lambda side, i, r: push(("item", side, i)),
                cancel=cancel,
            )
            return result.to_dict()

        self._job = self.jobs.start(
            work,
            "compare-table",
            on_items=self.table.show_progress,
            on_result=self.show_result,
            on_finished=self._on_finished,
        )
        self._set_running(True)

    def show_result(self, result: dict[str, Any]) -> None:
        self.result = result
        self.table.show_result(result)

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def _on_finished(self) -> None:
        if self._asking:
            self.side.finish(stopped=self._job is not None and self._job.cancel_event.is_set())
        self._job = None
        self._asking = False
        self._set_running(False)

    def shutdown(self, timeout: float = 15.0) -> None:
        self.jobs.shutdown(timeout)
