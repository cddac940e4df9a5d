"""Dataset tab: turn a knowledge base into verified training traces, inspect, fix, export.

The panels are in ``dataset_form`` (the datasets and the generate form), ``dataset_examples``
(the table), ``dataset_editor`` (one example) and ``dataset_report``; this tab runs the
dataset service off the GUI thread and hands what comes back to them."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QListWidgetItem, QTabWidget, QWidget

from core.dataset import export as exporting
from core.dataset import service
from core.dataset.editing import EditRejected, delete_examples
from core.dataset.progress import Accepted, Progress
from core.dataset.sampling import SampleProgress
from core.dataset.storage import Dataset
from core.errors import CotragError
from core.workspace import Workspace
from desktop.confirm import confirm_destructive
from desktop.dataset_editor import ExampleEditor
from desktop.dataset_examples import ExamplesPanel
from desktop.dataset_form import GeneratePanel
from desktop.dataset_report import QualityReport
from desktop.dataset_runs import done_line, generate_work, import_work, sample_work, with_sampling
from desktop.dataset_sampling import SamplingPanel, progress_text
from desktop.fit import vertical_scroll
from desktop.scaffold import TabView, splitter
from desktop.tasks import Job, JobGroup, Push, Work

FORMATS = [
    ("chat", "Chat messages with train mask (JSONL)"),
    ("chatml", "ChatML text with train mask (JSONL)"),
    ("instruction", "Instruction / input / output (JSONL)"),
    ("qa", "Question / context / answer (JSONL)"),
]


class DatasetTab(TabView):
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
        self._started = 0.0
        self._asked = 0
        self.current_name = ""
        self._can_undo = False
        """The open dataset has an edit or a delete to take back."""
        self._build()
        self._set_generating(False)

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        self.splitter = splitter(self)
        root.addWidget(self.splitter)
        self.form = GeneratePanel(self.ws, self.splitter)
        self.sampling = SamplingPanel(self.ws, self.form)
        self.form.add_below(self.sampling)
        self.form.add_below(self.banner)
        self.examples = ExamplesPanel(self.splitter)
        self.examples.empty_hint.linkActivated.connect(self.open_tab)
        self.side = QTabWidget(self.splitter)
        self.editor = ExampleEditor(self.side)
        self.side.addTab(self.editor, "Example")
        self.report = QualityReport(self.side)
        self.side.addTab(self.report, "Quality report")
        # Each pane can be widened by its handle; the form scrolls in a short window.
        self.splitter.addWidget(vertical_scroll(self.form))
        self.splitter.addWidget(self.examples)
        self.splitter.addWidget(self.side)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 6)
        self.splitter.setStretchFactor(2, 4)
        self.splitter.setSizes([300, 540, 460])

        form = self.form
        form.dataset_list.itemClicked.connect(self._on_dataset_clicked)
        form.import_button.clicked.connect(self.choose_import)
        form.export_button.clicked.connect(self.choose_export)
        form.delete_button.clicked.connect(self.ask_delete_dataset)
        form.generate_button.clicked.connect(self.generate)
        form.cancel_button.clicked.connect(self.cancel)
        self.sampling.sample_button.clicked.connect(self.sample)
        self.examples.table.itemSelectionChanged.connect(self._on_selection)
        self.editor.unreadable.connect(self.show_error)
        self.editor.save_button.clicked.connect(self.save_edit)
        self.editor.remove_button.clicked.connect(self.delete_selected)
        self.editor.undo_button.clicked.connect(self.undo)

    @property
    def generating(self) -> bool:
        """A generation or an import runs."""
        return self._gen_job is not None

    def busy(self) -> bool:
        return self.jobs.busy()

    # -- knowledge bases, question writers and datasets ---------------------------
    def refresh_teachers(self) -> None:
        """Re-read the models that can write questions (one was pulled or added)."""
        self.form.refresh_teachers()
        self.sampling.fill_models()

    @Slot(list, str)
    def set_knowledge_bases(self, names: list[str], current: str) -> None:
        self.form.set_knowledge_bases(names, current)
        self.examples.set_has_knowledge_base(bool(names))

    def refresh(self, select: str = "") -> None:
        def work(push: Push, cancel: threading.Event) -> list[service.DatasetSummary]:
            return service.summaries(self.ws)

        want = select or self.current_name
        self.jobs.start(work, "ds-list", on_result=lambda rows: self._got_list(rows, want))

    def _got_list(self, rows: list[service.DatasetSummary], want: str) -> None:
        self.form.set_datasets({row.name: row.examples for row in rows})
        listing = self.form.dataset_list
        listing.clear()
        for row in rows:
            item = QListWidgetItem(f"{row.name}\n{row.examples} examples · from {row.kb}")
            item.setData(Qt.ItemDataRole.UserRole, row.name)
            listing.addItem(item)
            if row.name == want:
                listing.setCurrentItem(item)
        if want and any(r.name == want for r in rows):
            self.open_dataset(want)
        self._update_buttons()

    @Slot(QListWidgetItem)
    def _on_dataset_clicked(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.ItemDataRole.UserRole)
        if name:
            self.open_dataset(str(name))

    def open_dataset(self, name: str) -> None:
        # Opening a dataset to look at it leaves the form's name alone: Generate never adds
        # to a dataset because it was viewed (the name field says when it would).
        self.current_name = name

        def work(push: Push, cancel: threading.Event) -> tuple[list[dict[str, Any]], Any, bool]:
            dataset = service.datasets(self.ws).open(name)
            return dataset.examples(), exporting.report(dataset), dataset.can_undo

        self.jobs.start(work, "ds-open", on_result=self._got_dataset)

    def _got_dataset(self, result: tuple[list[dict[str, Any]], dict[str, Any], bool]) -> None:
        examples, report, self._can_undo = result
        self.examples.set_examples(examples)
        self.report.show_report(report)
        self._update_buttons()

    @Slot()
    def _on_selection(self) -> None:
        example = self.examples.selected_example()
        if self.editor.show_example(example) and example is not None:
            self.side.setCurrentIndex(0)
        self._update_buttons()

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
        has = bool(self.current_name)
        self.form.enable(generating=self.generating, model_busy=self._model_busy, has=has)
        self.sampling.sample_button.setEnabled(has and not self.generating and not self._model_busy)
        selected, undo = len(self.examples.selected_ids()), self._can_undo
        self.editor.enable(selected, generating=self.generating, has=has, undo=undo)

    def _set_generating(self, on: bool) -> None:
        self.form.set_running(on)
        self.sampling.set_running(on)
        self._update_buttons()
        self.run_state_changed.emit(on)

    @Slot()
    def generate(self) -> None:
        if self._refuse_while_model_busy():
            return
        try:
            request = self.form.request()
        except CotragError as exc:
            self.show_error(str(exc))
            return
        if self.sampling.on_generate.isChecked():
            request = with_sampling(request, self.sampling.request())
        self.hide_error()
        self.current_name = request.name
        self.examples.clear()
        self.form.begin(request.spec.count, "Loading the knowledge base and the question writer…")
        self._start_run(generate_work(self.ws, request), "ds-generate", asked=request.spec.count)

    @Slot()
    def sample(self) -> None:
        """The model to be tuned samples every question of the open dataset not decided
        before; the examples are replaced as it goes."""
        if self._refuse_while_model_busy() or not self.current_name:
            return
        wanted = self.sampling.request()
        name = self.current_name
        self.hide_error()
        self.form.begin(0, f"Loading the model to sample {name}…")
        self._start_run(sample_work(self.ws, name, wanted), "ds-sample")

    def import_file(self, path: Path) -> None:
        if self._refuse_while_model_busy():
            return
        name = self.form.typed_name() or path.stem
        kb = self.form.kb_combo.currentText()
        if not kb:
            self.show_error("Choose the knowledge base the questions are about first.")
            return
        self.hide_error()
        self.current_name = name
        self.form.name_edit.setText(name)
        self.form.begin(0, f"Importing {path.name}…")
        self._start_run(import_work(self.ws, name, kb, path), "ds-import")

    def _start_run(self, work: Work, name: str, asked: int = 0) -> None:
        """Run ``work``; ``asked``: the dataset's size a generate run asked for."""
        self._started, self._asked = time.monotonic(), asked
        self._gen_job = self.jobs.start(
            work,
            name,
            on_items=self._on_gen_events,
            on_result=self._on_gen_done,
            on_finished=self._on_gen_finished,
        )
        self._set_generating(True)

    @Slot(list)
    def _on_gen_events(self, events: list[object]) -> None:
        for event in events:
            if isinstance(event, tuple) and event[0] == "existing":
                self.examples.set_examples(event[1])
            elif isinstance(event, Accepted):
                self.examples.add_example(event.example)
            elif isinstance(event, Progress):
                self.form.show_progress(event)
            elif isinstance(event, SampleProgress):
                self.form.progress.setRange(0, max(1, event.total))
                self.form.progress.setValue(event.done)
                self.form.progress_label.setText(progress_text(event))

    def _on_gen_done(self, report: dict[str, Any]) -> None:
        job = self._gen_job
        stopped = job is not None and job.cancel_event.is_set()
        self.report.show_report(report)
        seconds = time.monotonic() - self._started
        line = done_line(report, stopped=stopped, seconds=seconds, asked=self._asked)
        self.form.progress_label.setText(line)
        self.status_message.emit(f"Dataset {self.current_name}: {report['examples']} examples.")

    @Slot()
    def _on_gen_finished(self) -> None:
        self._gen_job = None
        self.form.end()
        self._set_generating(False)
        self.refresh(select=self.current_name)

    @Slot()
    def cancel(self) -> None:
        if self._gen_job is not None:
            self._gen_job.cancel()
            self.form.progress_label.setText("Stopping after the current example…")

    # -- edits --------------------------------------------------------------------
    def _dataset(self) -> Dataset:
        return service.datasets(self.ws).open(self.current_name)

    @Slot()
    def save_edit(self) -> None:
        example = self.examples.selected_example()
        if example is None:
            return
        editor = self.editor
        try:
            service.save_edit(
                self.ws,
                self.current_name,
                example,
                question=editor.edit_question.text(),
                answer=editor.edit_answer.text(),
                cited=editor.edit_cited.toPlainText(),
                results=editor.edited_results(),
            )
        except (EditRejected, OSError) as exc:
            self.show_error(f"Not saved: {exc}")
            return
        self.hide_error()
        self.status_message.emit("Example saved (Undo brings the old one back).")
        self.open_dataset(self.current_name)

    @Slot()
    def delete_selected(self) -> None:
        ids = set(self.examples.selected_ids())
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
        try:
            service.datasets(self.ws).delete(name)
        except Exception as exc:
            self.show_error(str(exc))
            return
        self.current_name = ""
        self.examples.clear()
        self.editor.trace.clear()
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
        try:
            rows, card = service.export_to(self._dataset(), fmt, target)
        except (OSError, ValueError) as exc:
            self.show_error(f"Export failed: {exc}")
            return
        name = card.name if card is not None else ""
        self.status_message.emit(f"Exported {rows} rows to {target} (card: {name}).")

    def shutdown(self, timeout: float = 15.0) -> None:
        self.jobs.shutdown(timeout)
