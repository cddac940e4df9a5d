"""Training tab: pick a dataset and a base model, start a LoRA run in a child process, watch
the loss fall, Cancel / Resume, and the history of runs.

The tab lays out its panels — the job form (:mod:`desktop.job_form`, with the Colab rows
of :mod:`desktop.colab_panel`), the monitor (:mod:`desktop.run_monitor`), the re-embed
panel and the run history (:mod:`desktop.run_history`) — and renders what the runs say.
A run is prepared once by :mod:`core.training.service` (off the GUI thread), then
launched: on this computer as a :class:`desktop.worker_process.WorkerProcess`, on Colab
or as alternating rounds as a background job. Closing the window cancels a running job
(it checkpoints first).
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QHBoxLayout, QWidget

from core.colab.service import ColabRun
from core.errors import CotragError
from core.models.installed import ModelRegistry
from core.training.events import Done, ProcessOutcome
from core.training.rounds import run_rounds
from core.training.runs import RunExists, RunStore
from core.training.service import PreparedRun, local_command, prepare_resume, prepare_run
from core.training.spec import TrainSpec
from core.workspace import Workspace
from desktop import embedder_runs as er
from desktop.job_form import JobForm
from desktop.reembed_panel import ReembedPanel
from desktop.run_history import RunHistory
from desktop.run_monitor import RunMonitor
from desktop.scaffold import TabView, column, splitter, tab_link
from desktop.tasks import Job, JobGroup, Push
from desktop.training_lists import TrainingLists, read_lists, run_kb
from desktop.worker_process import WorkerProcess

NO_DATASET_YET = (
    "No run yet: make a dataset in the " + tab_link("dataset", "Dataset tab") + " first."
)
NO_RUN_YET = "No run yet: pick a dataset and press Start training."


class TrainingTab(TabView):
    models_changed = Signal()
    run_state_changed = Signal(bool)
    compare_requested = Signal(str)
    """"Compare with base" on a finished run's tuned model (its name)."""

    def __init__(
        self, workspace: Workspace, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.settings = settings
        self.jobs = JobGroup(self, self.show_error)
        self.process: WorkerProcess | None = None
        """A run on this computer: the worker's process."""
        self.remote: Job | None = None
        """A run on Colab, or an alternating schedule: a background job."""
        self._rounds = False
        """``remote`` drives an alternating schedule here (not a Colab run)."""
        self._build()
        self.form.set_kind("generator")
        self.form.show_where()
        self._set_running(False)

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        split = splitter(self)
        self.splitter = split
        root.addWidget(split)
        self.form = JobForm(self.ws, self.settings, self.jobs, split)
        right, rcol = column(split, (6, 12, 12, 12))
        rcol.addWidget(self.banner)
        self.monitor = RunMonitor(right)
        self.monitor.place(rcol)
        self.monitor.status_label.linkActivated.connect(self.open_tab)
        self.reembed_panel = ReembedPanel(self.ws, right)
        self.reembed_panel.status_message.connect(self.status_message)
        self.reembed_panel.hide()
        rcol.addWidget(self.reembed_panel)
        self.history = RunHistory(self.ws.layout, right)
        self.history.place(rcol)
        self.monitor.stepped.connect(self.history.show_step)
        split.addWidget(self.form)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([430, 770])

        form = self.form
        form.kind_changed.connect(lambda _kind: self._show_panel())
        form.lists_stale.connect(self.refresh)
        form.gpu_said.connect(self.monitor.log)
        form.status_message.connect(self.status_message)
        form.start_button.clicked.connect(self.start)
        form.cancel_button.clicked.connect(self.cancel)
        form.colab.status_message.connect(self.status_message)
        form.colab.headline.connect(self.monitor.say)
        form.colab.error.connect(self.show_error)
        form.colab.models_changed.connect(self.models_changed)
        self.monitor.started.connect(self.refresh)  # the history lists the run as running
        self.monitor.compare_requested.connect(self.compare_requested)
        self.history.selected.connect(self._on_history_selected)
        self.history.resume_button.clicked.connect(self.resume_selected)
        self.history.deleted.connect(self._deleted)
        self.history.error.connect(self.show_error)

    # -- the job kind ----------------------------------------------------------------
    def set_kind(self, kind: str) -> None:
        self.form.set_kind(kind)

    def spec(self) -> TrainSpec:
        return self.form.spec()

    @property
    def run_name(self) -> str:
        """The run started last (a schedule's current run)."""
        return self.monitor.run_name

    def _show_panel(self, run: dict[str, Any] | None = None) -> None:
        """The re-embed panel shows with the embedder form and with a done embedder run."""
        if run is not None and run.get("kind") == "embedder" and run.get("model"):
            self.reembed_panel.set_embedder(str(run["model"]), str(run.get("kb", "")))
        visible = (
            self.form.kind == "embedder"
            or (run or {}).get("kind") == "embedder"
            or self.reembed_panel.busy  # a re-embed in progress stays in sight
        )
        if visible and not self.reembed_panel.isVisible():
            self.reembed_panel.refresh()
        self.reembed_panel.setVisible(visible)

    # -- lists --------------------------------------------------------------------
    def refresh(self) -> None:
        layout, colab = self.ws.layout, self.form.where == "colab"

        def work(push: Push, cancel: threading.Event) -> TrainingLists:
            return read_lists(layout, colab=colab)

        self.jobs.start(work, "training-lists", latest="lists", on_result=self._got_lists)

    def _got_lists(self, lists: TrainingLists) -> None:
        self.form.set_lists(lists.datasets, lists.models, lists.embedders, lists.labels)
        if self.reembed_panel.isVisible() and not self.reembed_panel.busy:
            self.reembed_panel.refresh()
        self.history.fill(lists.runs)
        if not lists.runs and not self.running and not self.monitor.run_name:
            self.monitor.say(NO_RUN_YET if lists.datasets else NO_DATASET_YET)
        self._update_buttons()
        self.form.set_gpu(lists.gpu)
        if lists.colab is not None:
            self.form.colab.show_status(lists.colab)

    def selected_run(self) -> str:
        return self.history.selected_run()

    def _on_history_selected(self, name: str) -> None:
        self._update_buttons()
        if not name or self.running:
            return
        self.show_run(name)

    def show_run(self, name: str) -> None:
        """Draw a past run's curve and log from its events file."""
        try:
            run = RunStore(self.ws.layout).get(name)
        except CotragError as exc:
            self.show_error(str(exc))
            return
        self.monitor.replay(run.worker_events())
        summary = er.run_summary(run)
        self.monitor.say(f"{name}: {summary['state']}")
        model = str(summary.get("model", "")) if summary.get("state") == "done" else ""
        entry = ModelRegistry(self.ws.layout).find(model) if model else None
        if entry is not None and entry.kind == "tuned" and entry.guard.get("sentence"):
            # What model.json holds now (`cotrag models guard` may have measured again).
            guard = entry.guard
            self.monitor.show_guard(model, str(guard.get("verdict", "")), str(guard["sentence"]))
        if summary.get("kind") == "embedder" and summary.get("state") == "done":
            summary["kb"] = run_kb(self.ws.layout, name)
        self._show_panel(summary)

    # -- running ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None or self.remote is not None

    def _set_running(self, on: bool) -> None:
        self.form.set_running(on)
        self.run_state_changed.emit(on)
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.history.update_buttons(self.run_name if self.running else None)

    def start(self) -> None:
        """Prepare the job once (fields, dataset, base, lengths) off the GUI thread, then
        launch it where the form says."""
        if self.running:
            return
        self.hide_error()
        if self.form.kind == "alternating":
            self._start_rounds()
            return
        spec, wanted = self.form.spec(), self.form.name
        self.form.start_button.setEnabled(False)
        self.monitor.say("Checking the job…")
        ws = self.ws
        # An embedder trains on this computer.
        colab = self.form.where == "colab" and spec.kind != "embedder"

        def work(push: Push, cancel: threading.Event) -> PreparedRun | RunExists:
            try:
                return prepare_run(ws, spec, wanted or None, here=not colab)
            except RunExists as exc:
                if not exc.run:
                    raise
                return exc  # the window offers the run that has the name

        def failed(message: str) -> None:
            self.form.start_button.setEnabled(True)
            self.monitor.say("The job cannot start.")
            self.show_error(message)

        def launch(prepared: PreparedRun | RunExists) -> None:
            if isinstance(prepared, RunExists):
                failed(self.history.offer(prepared.run))
                return
            if colab:
                self._launch_remote(prepared)
            else:
                self._launch(prepared, er.prepared_note(prepared))

        self.jobs.start(work, "training-check", on_result=launch, on_error=failed)

    def resume_selected(self) -> None:
        name = self.selected_run()
        if not name or self.running:
            return
        self.hide_error()
        ws = self.ws

        def work(push: Push, cancel: threading.Event) -> PreparedRun:
            return prepare_resume(ws, name)

        self.jobs.start(
            work,
            "training-resume",
            on_result=lambda p: self._launch(p, "resuming from the last checkpoint"),
        )

    def _launch(self, prepared: PreparedRun, note: str) -> None:
        if self.running:
            return
        name = prepared.name
        self.monitor.begin(name, f"Run {name}: {note}.", clear=not prepared.resume)
        if not prepared.resume:
            self.monitor.reset_recall()
        process = WorkerProcess(prepared.run, local_command(self.ws.layout, prepared), self)
        process.worker_event.connect(lambda event: self.monitor.show_live([event]))
        process.finished.connect(self._on_finished)
        process.start_failed.connect(self._on_start_failed)
        self.process = process
        self._set_running(True)
        self.monitor.say(f"{name}: starting…")
        self.monitor.working()
        process.start()

    def _on_finished(self, outcome: ProcessOutcome) -> None:
        log_file = self.process.run.log_file if self.process is not None else None
        self.monitor.ended(outcome.state)
        final = outcome.final
        if isinstance(final, Done) and final.kind == "embedder":
            model = final.model or self.run_name
            self.status_message.emit(
                f"Done: the tuned embedder is {model}; re-embed a knowledge base with it to "
                "search with it."
            )
            kb = run_kb(self.ws.layout, self.run_name)
            self._show_panel({"kind": "embedder", "model": model, "kb": kb})
        elif outcome.state == "done":
            self.status_message.emit(outcome.sentence(log_file))
            self.models_changed.emit()
        elif outcome.state == "cancelled":
            self.status_message.emit(outcome.sentence(log_file))
        else:
            self.show_error(outcome.sentence(log_file))
        self._process_ended()
        self.refresh()

    def _on_start_failed(self, message: str) -> None:
        self.show_error(message)
        self._process_ended()

    def _process_ended(self) -> None:
        if self.process is not None:
            self.process.deleteLater()
        self.process = None
        self._set_running(False)

    # -- runs in a background job: on Colab, alternating rounds ------------------------------
    def _launch_remote(self, prepared: PreparedRun) -> None:
        """The run goes to a Colab runtime; its events come back like a local worker's."""
        gpu = self.form.colab.gpu
        note = f"{er.prepared_note(prepared)}. Going to a Colab {gpu} runtime…"
        self.monitor.begin(prepared.name, f"Run {prepared.name}: {note}")
        self.remote = self.jobs.start(
            self.form.colab.run_work(prepared),
            "colab-run",
            on_items=self.monitor.show_live,
            on_result=self._remote_done,
            on_error=self._remote_failed,
            on_finished=self._remote_finished,
        )
        self._set_running(True)
        self.monitor.say(f"{prepared.name}: allocating a Colab {gpu} runtime…")
        self.monitor.working()

    def _start_rounds(self) -> None:
        """The alternating schedule, driven from a background job (each training step is a
        worker process of its own); the same name again continues a stopped schedule."""
        plan = self.form.rounds_plan()
        if not plan.dataset:
            self.show_error("Choose a dataset first: the rounds start from it.")
            return
        self.monitor.begin(
            plan.name,
            f"Schedule {plan.name}: {plan.rounds} rounds on {plan.dataset} (each: tune the "
            "embedder, re-embed, re-trace the questions, tune the generator).",
        )
        ws = self.ws

        def work(push: Push, cancel: threading.Event) -> list[dict[str, Any]]:
            return run_rounds(ws, plan, on_event=push, cancel=cancel)

        def done(summaries: list[dict[str, Any]]) -> None:
            finished = len(summaries) == plan.rounds
            self.monitor.finished(finished)
            self.monitor.say(
                f"{plan.name}: {len(summaries)} of {plan.rounds} rounds after {self.monitor.elapsed}"
                + ("" if finished else " (stopped: Start with the same name continues)")
            )
            if summaries:
                self.models_changed.emit()
                self.reembed_panel.refresh()

        self.remote = self.jobs.start(
            work,
            "training-rounds",
            on_items=self.monitor.show_live,
            on_result=done,
            on_error=self._remote_failed,
            on_finished=self._remote_finished,
        )
        self._rounds = True
        self._set_running(True)
        self.monitor.say(f"{plan.name}: starting round 1…")
        self.monitor.working()

    def _remote_done(self, result: ColabRun) -> None:
        self.monitor.ended(result.state)
        if result.state == "done":
            self.status_message.emit(result.sentence())
            self.models_changed.emit()
        elif result.state == "cancelled":
            self.status_message.emit(result.sentence())
        else:
            self.show_error(result.sentence())

    def _remote_failed(self, message: str) -> None:
        self.monitor.say(f"{self.run_name}: failed")
        self.monitor.finished(False)
        self.show_error(message)

    def _remote_finished(self) -> None:
        self.remote = None
        self._rounds = False
        self._set_running(False)
        self.refresh()

    # -- other actions -----------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the worker for a checkpoint and a clean stop; kill it if it does not come.
        A Colab run is stopped and its runtime released."""
        if self.remote is not None:
            self.remote.cancel()
            self.monitor.say(
                f"{self.run_name}: stopping (a checkpoint first)…"
                if self._rounds
                else f"{self.run_name}: stopping the Colab runtime…"
            )
        elif self.process is not None:
            self.process.cancel()
            self.monitor.say(f"{self.run_name}: cancelling (writing a checkpoint)…")
        else:
            return
        self.form.cancel_button.setEnabled(False)

    def _deleted(self, name: str) -> None:
        self.status_message.emit(f"Deleted run {name}.")
        self.refresh()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel a running job (it checkpoints) and wait for it, then stop the list jobs."""
        if self.remote is not None:
            self.cancel()  # the jobs' shutdown below waits for the runtime to be released
        if self.process is not None:
            process = self.process
            self.cancel()
            if not process.wait(int(timeout * 1000)):
                process.kill()
                process.wait(5000)
        self.reembed_panel.shutdown()
        self.jobs.shutdown()
