"""One pull in the Models tab's download list: a progress bar, Pause / Resume and Cancel.

The pull runs in a background job; Pause cancels the job and keeps what is on disk
(the pull stays listed in ``models/pulls`` and resumes there, also after a restart);
Cancel deletes the partial files after a confirmation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.durations import clock
from core.models import service
from core.models.hub import HubClient
from core.models.installed import ModelEntry
from core.models.pull import PullPlan, PullProgress
from core.workspace import Workspace
from desktop.confirm import confirm_destructive
from desktop.tasks import Job, JobGroup

MB = 1e6


def format_bytes(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    if n >= MB:
        return f"{n / MB:.1f} MB"
    return f"{n / 1e3:.0f} KB" if n >= 1e3 else f"{int(n)} B"


class DownloadRow(QFrame):
    """A pull: running, paused, failed or done."""

    finished = Signal(object)
    """The registered ModelEntry, once every file is in."""
    removed = Signal()
    """The row is done with (cancelled and discarded, or finished and dismissed)."""
    failed = Signal(str)

    def __init__(
        self,
        ws: Workspace,
        jobs: JobGroup,
        client_factory: Callable[[], HubClient],
        plan: PullPlan,
        *,
        on_disk: int = 0,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("downloadRow")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.ws = ws
        self.jobs = jobs
        self.client_factory = client_factory
        self.plan = plan
        self.job: Job | None = None
        self.state = "paused"
        self._pausing = False

        col = QVBoxLayout(self)
        col.setContentsMargins(8, 6, 8, 6)
        top = QHBoxLayout()
        what = plan.files[0] if plan.kind == "gguf" else f"{len(plan.files)} files"
        self.title = QLabel(f"<b>{plan.repo_id}</b> · {what}", self)
        top.addWidget(self.title, 1)
        self.pause_button = QPushButton("Pause", self)
        self.pause_button.clicked.connect(self.toggle)
        top.addWidget(self.pause_button)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop and delete what was downloaded")
        self.cancel_button.clicked.connect(self.ask_cancel)
        top.addWidget(self.cancel_button)
        col.addLayout(top)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        col.addWidget(self.bar)
        self.detail = QLabel("", self)
        self.detail.setObjectName("hint")
        col.addWidget(self.detail)
        self._show_progress(on_disk, plan.total_bytes)
        self._set_state("paused")

    # -- state ----------------------------------------------------------------------
    def _set_state(self, state: str, message: str = "") -> None:
        self.state = state
        running = state == "running"
        self.pause_button.setText("Pause" if running else "Resume")
        self.pause_button.setVisible(state in ("running", "paused", "failed"))
        self.pause_button.setEnabled(not self._pausing)
        self.cancel_button.setText("Dismiss" if state == "done" else "Cancel")
        if state == "paused":
            self.detail.setText(
                f"Paused: {self._done_text} — Resume continues where it stopped"
                + (f". {message}" if message else "")
            )
        elif state == "failed":
            self.detail.setText(f"Failed: {message} (Resume tries again from where it stopped)")
        elif state == "done":
            self.bar.setValue(1000)
            self.detail.setText(message)

    def _show_progress(self, done: int, total: int, rate: float = 0.0, eta: float | None = None,
                       file: str = "") -> None:  # fmt: skip
        self.bar.setValue(int(1000 * done / total) if total else 0)
        self._done_text = f"{format_bytes(done)} of {format_bytes(total)}"
        if self.state == "running":
            speed = f" · {rate / MB:.1f} MB/s · {clock(eta)} left" if rate > 0 else ""
            extra = f" · {file}" if file and self.plan.kind == "folder" else ""
            self.detail.setText(f"{self._done_text}{speed}{extra}")

    # -- actions -------------------------------------------------------------------
    @Slot()
    def toggle(self) -> None:
        if self.state == "running":
            self.pause()
        else:
            self.start()

    def start(self) -> None:
        if self.job is not None:
            return
        self._set_state("running")
        self.detail.setText(f"{self._done_text} · connecting…")
        client = self.client_factory()
        ws, plan = self.ws, self.plan

        def work(push: Callable[[object], None], cancel: threading.Event) -> ModelEntry:
            return service.run(ws, client, plan, progress=push, cancel=cancel)

        self.job = self.jobs.start(
            work,
            f"pull {plan.repo_id}",
            on_items=self._on_items,
            on_result=self._on_done,
            on_error=self._on_error,
            on_finished=self._on_finished,
        )

    def pause(self) -> None:
        if self.job is not None:
            self._pausing = True
            self.pause_button.setEnabled(False)
            self.detail.setText(f"{self._done_text} · pausing…")
            self.job.cancel()

    @Slot()
    def ask_cancel(self) -> None:
        if self.state == "done":
            self.removed.emit()
            return
        if not confirm_destructive(
            self,
            "Cancel the download",
            f"Stop pulling {self.plan.repo_id} and delete the {self._done_text} downloaded?",
            "Delete download",
        ):
            return
        self.cancel_and_discard()

    def cancel_and_discard(self) -> None:
        """Stop the pull and delete its partial files (off the GUI thread: the job may
        take a moment to stop, and a file the journal does not know asks the hub)."""
        job = self.job
        if job is not None:
            job.cancel()
        client_factory, ws, plan = self.client_factory, self.ws, self.plan
        self.pause_button.setEnabled(False)
        self.cancel_button.setEnabled(False)
        self.detail.setText("Cancelling: deleting the partial download…")

        def work(_push: Callable[[object], None], _cancel: threading.Event) -> None:
            if job is not None:
                job.wait(60)
            service.discard(ws, client_factory(), plan)

        self.jobs.start(
            work,
            f"discard {plan.repo_id}",
            on_error=lambda message: self.failed.emit(
                f"Some of the partial download could not be deleted: {message}"
            ),
            on_finished=self.removed.emit,
        )

    # -- job callbacks -----------------------------------------------------------------
    def _on_items(self, items: list[object]) -> None:
        last = items[-1]
        if isinstance(last, PullProgress):
            self._show_progress(last.done, last.total, last.bytes_per_s, last.eta_s, last.file)

    def _on_done(self, entry: object) -> None:
        assert isinstance(entry, ModelEntry)
        self._set_state("done", f"Done: {entry.name} is ready in the chat's model list.")
        self.finished.emit(entry)

    def _on_error(self, message: str) -> None:
        if self._pausing:
            self._set_state("paused")
        else:
            self._set_state("failed", message)
            self.failed.emit(message)

    def _on_finished(self) -> None:
        self.job = None
        self._pausing = False
        self.pause_button.setEnabled(True)
        if self.state == "running":  # cancelled without an error reaching us
            self._set_state("paused")
