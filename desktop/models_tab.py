"""The Models tab: installed models (set the default, add, delete), the hub (search, a
repository's files with what fits), and the downloads with progress, Pause / Resume and
Cancel. Each is a panel; the tab wires them to each other and to the window."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from core.models import service
from core.models.client import hub_client
from core.models.hub import HubClient
from core.models.installed import ModelEntry
from core.models.pull import PullPlan
from core.workspace import Workspace
from desktop.added_models import migrate_added_models
from desktop.download_row import DownloadRow, format_bytes
from desktop.models_downloads import DownloadsPanel
from desktop.models_hub import HubPanel
from desktop.models_installed import InstalledModels
from desktop.scaffold import TabView, splitter
from desktop.tasks import JobGroup


class ModelsTab(TabView):
    models_changed = Signal()

    def __init__(
        self,
        workspace: Workspace,
        settings: QSettings,
        parent: QWidget | None = None,
        client_factory: Callable[[], HubClient] | None = None,
    ) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.settings = settings
        self.client_factory = client_factory or hub_client
        self.jobs = JobGroup(self, self.show_error)

        outer = QVBoxLayout(self)
        outer.addWidget(self.banner)
        split = splitter(self, Qt.Orientation.Vertical)
        outer.addWidget(split, 1)
        self.installed = InstalledModels(workspace, split)
        self.hub = HubPanel(workspace, self.jobs, self.client_factory, split)
        self.downloads = DownloadsPanel(workspace, self.jobs, self.client_factory, split)
        for panel in (self.installed, self.hub, self.downloads):
            split.addWidget(panel)
            panel.status_message.connect(self.status_message)
            panel.error.connect(self.show_error)
        split.setSizes([260, 380, 160])
        self.installed.error_cleared.connect(self.hide_error)
        self.hub.error_cleared.connect(self.hide_error)
        self.installed.models_changed.connect(self.models_changed)
        self.installed.table.itemSelectionChanged.connect(self.hub.update_buttons)
        self.hub.pull_requested.connect(self.pull)
        self.downloads.pulled.connect(self._on_pulled)

        # What a user (and a test) reaches through the tab.
        self.table = self.installed.table
        self.default_button = self.installed.default_button
        self.delete_button = self.installed.delete_button
        self.query = self.hub.query
        self.search_button = self.hub.search_button
        self.results = self.hub.results
        self.files = self.hub.files
        self.repo_label = self.hub.repo_label
        self.pull_button = self.hub.pull_button

        problems = migrate_added_models(settings, workspace)
        if problems:
            self.banner.show_message(" ".join(problems))
        self.refresh()
        self.downloads.restore_paused()

    @property
    def rows(self) -> list[DownloadRow]:
        return self.downloads.rows

    def refresh(self) -> None:
        self.installed.refresh()
        self.hub.update_buttons()

    def selected_name(self) -> str:
        return self.installed.selected_name()

    def add_local(self, path: Path) -> ModelEntry | None:
        return self.installed.add_local(path)

    def pull(self, repo_id: str, filename: str | None) -> None:
        """Pull ``filename`` of ``repo_id`` (None: the preferred file, or the folder); a pull
        of the same files already listed is resumed instead."""
        row = self.downloads.row_for(repo_id, filename)
        if row is not None:
            row.start()
            return
        client, ws = self.client_factory(), self.ws
        self.pull_button.setEnabled(False)

        def work(_push: Callable[[object], None], _cancel: threading.Event) -> PullPlan:
            return service.prepare_pull(ws, client, repo_id, filename).plan

        self.jobs.start(
            work, "plan pull", on_result=self._start_pull, on_finished=self.hub.update_buttons
        )

    def _start_pull(self, plan: PullPlan) -> None:
        self.downloads.add_row(plan, 0).start()
        self.status_message.emit(f"Pulling {plan.repo_id} ({format_bytes(plan.total_bytes)}).")

    def _on_pulled(self, entry: ModelEntry) -> None:
        self.refresh()
        self.models_changed.emit()
        self.status_message.emit(f"Pulled {entry.name}: choose it in the chat's model list.")

    @property
    def downloading(self) -> bool:
        return self.downloads.downloading

    def shutdown(self, timeout: float = 15.0) -> None:
        """Pause every download (the partial files stay; the next start lists them)."""
        self.jobs.shutdown(timeout)
