"""The Training tab's Colab rows: which GPU, the hub repo results come back through, whether
the colab CLI is there; Export for Colab (a notebook to upload by hand) and Fetch (pull
what such a notebook pushed).

Its widgets are rows of the job form (so their labels line up with the form's); the
run itself, once started, streams into the monitor like a local one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QPushButton,
    QWidget,
)

from core.colab.cli import GPUS, ColabStatus
from core.colab.service import ColabRun, export_notebook, fetch_pushed_run, run_on_colab
from core.errors import CotragError
from core.models.token import get_token
from core.training.service import PreparedRun
from core.training.spec import TrainSpec
from core.workspace import Workspace
from desktop.scaffold import hint
from desktop.tasks import JobGroup, Push, Work

FormJob = Callable[[], tuple[TrainSpec, str]]
"""The spec the form describes and the run name typed (or '')."""


class ColabPanel(QObject):
    status_message = Signal(str)
    headline = Signal(str)
    """What the monitor's status line says about a fetch."""
    error = Signal(str)
    models_changed = Signal()

    def __init__(
        self, workspace: Workspace, jobs: JobGroup, form_job: FormJob, parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.jobs = jobs
        self._form_job = form_job
        self._host = parent
        self.gpu_combo = QComboBox(parent)
        for name in GPUS:
            self.gpu_combo.addItem(name, name)
        self.export_colab_button = QPushButton("Export for Colab…", parent)
        self.export_colab_button.setToolTip(
            "Save the notebook and the dataset, to upload to Colab by hand"
        )
        self.export_colab_button.clicked.connect(self.export_for_colab)
        self._gpu_row = QHBoxLayout()
        self._gpu_row.addWidget(self.gpu_combo, 1)
        self._gpu_row.addWidget(self.export_colab_button)
        self.push_repo_edit = QLineEdit(parent)
        self.push_repo_edit.setPlaceholderText("optional: a private hub repo, e.g. you/cotrag-runs")
        self.push_repo_edit.setToolTip(
            "The run pushes its results there (needs an access token, set in the Models tab) "
            "and the app pulls them back; empty: they come back through the colab CLI"
        )
        self.fetch_button = QPushButton("Fetch…", parent)
        self.fetch_button.setToolTip(
            "Pull the results a notebook run by hand pushed to the hub repo, and register them"
        )
        self.fetch_button.clicked.connect(self.ask_fetch)
        self._push_row = QHBoxLayout()
        self._push_row.addWidget(self.push_repo_edit, 1)
        self._push_row.addWidget(self.fetch_button)
        self.colab_label = hint("", parent)
        self._form: QFormLayout | None = None

    def add_rows(self, form: QFormLayout) -> None:
        form.addRow("GPU", self._gpu_row)
        form.addRow("Hub repo", self._push_row)
        form.addRow("", self.colab_label)
        self._form = form

    def set_shown(self, shown: bool) -> None:
        if self._form is not None:
            self._form.setRowVisible(self._gpu_row, shown)
            self._form.setRowVisible(self._push_row, shown)
            self._form.setRowVisible(self.colab_label, shown)

    @property
    def gpu(self) -> str:
        return str(self.gpu_combo.currentData())

    @property
    def push_repo(self) -> str | None:
        return self.push_repo_edit.text().strip() or None

    def looking(self) -> None:
        self.colab_label.setText("Looking for the colab CLI…")

    def show_status(self, status: ColabStatus) -> None:
        self.colab_label.setText(status.sentence)

    def run_work(self, prepared: PreparedRun) -> Work:
        """The background work that trains a prepared run on a Colab runtime with the GPU
        chosen here: it pushes the run's events and the colab CLI's output lines
        (``("log", stream, line)``) and returns the :class:`ColabRun`."""
        layout, gpu, push_repo = self.ws.layout, self.gpu, self.push_repo

        def work(push: Push, cancel: threading.Event) -> ColabRun:
            try:
                token = get_token()
            except CotragError:
                token = None
            return run_on_colab(
                layout,
                prepared,
                gpu,
                on_event=push,
                on_log=lambda stream, line: push(("log", stream, line)),
                should_stop=cancel.is_set,
                hub_token=token,
                push_repo=push_repo,
            )

        return work

    # -- export and fetch -----------------------------------------------------------------
    def export_for_colab(self) -> None:
        """The notebook and the dataset in a folder, for a user who uploads them by hand."""
        folder = QFileDialog.getExistingDirectory(self._host, "Export the job for Colab")
        if folder:
            self.export_to(Path(folder))

    def export_to(self, folder: Path) -> None:
        spec, name = self._form_job()
        push_repo, ws = self.push_repo, self.ws

        def work(push: Push, cancel: threading.Event) -> Path:
            return export_notebook(ws, spec, folder, name or None, push_repo=push_repo).notebook

        self.jobs.start(
            work,
            "colab-export",
            on_result=lambda nb: self.status_message.emit(
                f"Wrote {nb} and the dataset next to it (README.txt says how to upload them)."
            ),
        )

    def ask_fetch(self) -> None:
        repo = self.push_repo_edit.text().strip()
        if not repo:
            self.error.emit("Type the hub repo the notebook pushed to (Hub repo), then Fetch.")
            return
        run, ok = QInputDialog.getText(
            self._host, "Fetch results", f"The run name the notebook pushed to {repo}:",
            text=self._form_job()[1],
        )  # fmt: skip
        if ok and run.strip():
            self.fetch(repo, run.strip())

    def fetch(self, repo: str, run: str) -> None:
        """Wait for a hand-run notebook's results on the hub, pull, check, register them."""
        layout = self.ws.layout
        self.fetch_button.setEnabled(False)
        self.headline.emit(f"Waiting for the results of {run} on {repo}…")

        def work(push: Push, cancel: threading.Event) -> str:
            return fetch_pushed_run(layout, repo, run, should_stop=cancel.is_set).name

        def done(name: str) -> None:
            self.headline.emit(f"{name}: fetched from {repo}")
            self.status_message.emit(f"Registered {name}: choose it in the chat's model list.")
            self.models_changed.emit()

        self.jobs.start(
            work,
            "colab-fetch",
            latest="fetch",
            on_result=done,
            on_finished=lambda: self.fetch_button.setEnabled(True),
        )
