"""The Models tab's list of downloads: one row per pull, running, paused, failed or done.
A pull that was running when the app closed (or crashed) is listed paused on the next
start, with what is already on disk."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from core.models import service
from core.models.hub import HubClient
from core.models.pull import PullPlan
from core.workspace import Workspace
from desktop.download_row import DownloadRow
from desktop.tasks import JobGroup


class DownloadsPanel(QGroupBox):
    pulled = Signal(object)
    """The registered ModelEntry of a pull that finished."""
    status_message = Signal(str)
    error = Signal(str)

    def __init__(
        self,
        workspace: Workspace,
        jobs: JobGroup,
        client_factory: Callable[[], HubClient],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Downloads", parent)
        self.ws = workspace
        self.jobs = jobs
        self.client_factory = client_factory
        self.rows: list[DownloadRow] = []
        self.downloads_col = QVBoxLayout(self)
        self.no_downloads = QLabel("No downloads.", self)
        self.no_downloads.setObjectName("hint")
        self.downloads_col.addWidget(self.no_downloads)
        self.downloads_col.addStretch(1)

    def row_for(self, repo_id: str, filename: str | None) -> DownloadRow | None:
        """The unfinished row pulling ``repo_id`` (``filename`` of it, when one is named)."""
        for row in self.rows:
            same = row.plan.repo_id == repo_id and filename in (None, row.plan.files[0])
            if same and row.state != "done":
                return row
        return None

    def add_row(self, plan: PullPlan, on_disk: int = 0) -> DownloadRow:
        row = DownloadRow(self.ws, self.jobs, self.client_factory, plan, on_disk=on_disk,
                          parent=self)  # fmt: skip
        row.finished.connect(self.pulled.emit)
        row.removed.connect(lambda r=row: self.remove_row(r))
        row.failed.connect(self.error.emit)
        self.rows.append(row)
        self.downloads_col.insertWidget(self.downloads_col.count() - 1, row)
        self.no_downloads.hide()
        return row

    def remove_row(self, row: DownloadRow) -> None:
        if row in self.rows:
            self.rows.remove(row)
        row.hide()
        row.deleteLater()
        self.no_downloads.setVisible(not self.rows)

    def restore_paused(self) -> None:
        """A row for each pull that was paused or cut off, Resume ready."""
        pulls = service.paused(self.ws, self.client_factory)
        for pull in pulls:
            self.add_row(pull.plan, pull.on_disk)
        if pulls:
            n = len(pulls)
            self.status_message.emit(f"{n} download{'s' * (n != 1)} paused: Resume continues them.")

    @property
    def downloading(self) -> bool:
        return any(r.state == "running" for r in self.rows)
