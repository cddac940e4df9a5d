"""The Models tab: installed models (set the default, add, delete), the hub (search, a
repository's files with what fits), and the downloads with progress, Pause / Resume and
Cancel. A pull that was running when the app closed (or crashed) is listed paused on the
next start, with what is already on disk."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import CotragError
from core.models.hub import HubClient, HubModel, RepoFiles, SortKey
from core.models.pull import PullPlan, bytes_on_disk, pending_pulls, plan_pull
from core.models.registry import ModelEntry, ModelRegistry
from core.workspace import Workspace
from desktop.added_models import ADDED_MODELS_KEY, added_models
from desktop.confirm import confirm_destructive
from desktop.download_row import DownloadRow, format_bytes
from desktop.error_banner import ErrorBanner
from desktop.tasks import JobGroup

LIBRARIES = (("Any library", ""), ("GGUF", "gguf"), ("Transformers", "transformers"),
             ("MLX", "mlx"))  # fmt: skip
SORTS = (("Most downloaded", "downloads"), ("Most liked", "likes"), ("Recently updated", "recent"))
INSTALLED_COLUMNS = ("Name", "Kind", "Format", "Size", "Quantization", "Licence", "Template",
                     "From")  # fmt: skip


def migrate_added_models(settings: QSettings, registry: ModelRegistry) -> list[str]:
    """Move the model files added by hand (once kept in the window settings) into the
    registry, where the CLI and every tab see them. Returns the problems, one per file."""
    problems = []
    for raw in added_models(settings):
        try:
            registry.add_local(Path(raw))
        except CotragError as exc:
            problems.append(str(exc))
    settings.remove(ADDED_MODELS_KEY)
    return problems


class ModelsTab(QWidget):
    status_message = Signal(str)
    error = Signal(str)
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
        self.registry = ModelRegistry(workspace.layout)
        if client_factory is None:
            from core.models.client import hub_client

            client_factory = hub_client
        self.client_factory = client_factory
        self.jobs = JobGroup(self, self._show_error)
        self.rows: list[DownloadRow] = []
        self.repo: RepoFiles | None = None

        outer = QVBoxLayout(self)
        self.banner = ErrorBanner(self)
        outer.addWidget(self.banner)
        split = QSplitter(Qt.Orientation.Vertical, self)
        outer.addWidget(split, 1)

        # -- installed ---------------------------------------------------------------
        installed = QGroupBox("Installed models", split)
        icol = QVBoxLayout(installed)
        self.table = QTableWidget(0, len(INSTALLED_COLUMNS), installed)
        self.table.setHorizontalHeaderLabels(INSTALLED_COLUMNS)
        self._table_defaults(self.table)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(7, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        icol.addWidget(self.table)
        buttons = QHBoxLayout()
        self.add_file_button = QPushButton("Add file…", installed)
        self.add_file_button.setToolTip("Register a .gguf file where it is (nothing is copied)")
        self.add_file_button.clicked.connect(self.choose_file)
        self.add_folder_button = QPushButton("Add folder…", installed)
        self.add_folder_button.setToolTip("Register a Hugging Face or MLX model folder")
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.default_button = QPushButton("Set as default", installed)
        self.default_button.setToolTip("The model the chat and the CLI use when none is chosen")
        self.default_button.clicked.connect(self.set_default)
        self.delete_button = QPushButton("Delete…", installed)
        self.delete_button.clicked.connect(self.delete_selected)
        for b in (self.add_file_button, self.add_folder_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.default_button)
        buttons.addWidget(self.delete_button)
        icol.addLayout(buttons)

        # -- hub ---------------------------------------------------------------------
        hub = QGroupBox("Hugging Face hub", split)
        hcol = QVBoxLayout(hub)
        bar = QHBoxLayout()
        self.query = QLineEdit(hub)
        self.query.setPlaceholderText("Search models, e.g. SmolLM2 GGUF")
        self.query.returnPressed.connect(self.search)
        bar.addWidget(self.query, 1)
        self.library_combo = QComboBox(hub)
        for label, value in LIBRARIES:
            self.library_combo.addItem(label, value)
        bar.addWidget(self.library_combo)
        self.sort_combo = QComboBox(hub)
        for label, value in SORTS:
            self.sort_combo.addItem(label, value)
        bar.addWidget(self.sort_combo)
        self.search_button = QPushButton("Search", hub)
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        bar.addWidget(self.search_button)
        self.token_button = QPushButton("Access token…", hub)
        self.token_button.setToolTip(
            "For gated and private repositories; kept in the OS keyring, never in a file"
        )
        self.token_button.clicked.connect(self.edit_token)
        bar.addWidget(self.token_button)
        hcol.addLayout(bar)
        lists = QSplitter(Qt.Orientation.Horizontal, hub)
        self.results = QTableWidget(0, 4, lists)
        self.results.setHorizontalHeaderLabels(("Repository", "Library", "Downloads", "Likes"))
        self._table_defaults(self.results)
        self._stretch_first(self.results)
        self.results.itemSelectionChanged.connect(self._on_repo_selected)
        self.files = QTableWidget(0, 4, lists)
        self.files.setHorizontalHeaderLabels(("File", "Size", "Quantization", "Fits?"))
        self._table_defaults(self.files)
        self._stretch_first(self.files)
        self.files.itemSelectionChanged.connect(self._update_buttons)
        lists.addWidget(self.results)
        lists.addWidget(self.files)
        lists.setSizes([560, 640])
        hcol.addWidget(lists, 1)
        pull_row = QHBoxLayout()
        self.repo_label = QLabel("Search the hub, then pick a repository to see its files.", hub)
        self.repo_label.setObjectName("hint")
        self.repo_label.setWordWrap(True)
        pull_row.addWidget(self.repo_label, 1)
        self.pull_button = QPushButton("Pull", hub)
        self.pull_button.setToolTip(
            "Download the chosen GGUF file (or the whole model folder) into the hub cache"
        )
        self.pull_button.clicked.connect(self.pull_selected)
        pull_row.addWidget(self.pull_button)
        hcol.addLayout(pull_row)

        # -- downloads -----------------------------------------------------------------
        downloads = QGroupBox("Downloads", split)
        self.downloads_col = QVBoxLayout(downloads)
        self.no_downloads = QLabel("No downloads.", downloads)
        self.no_downloads.setObjectName("hint")
        self.downloads_col.addWidget(self.no_downloads)
        self.downloads_col.addStretch(1)

        split.addWidget(installed)
        split.addWidget(hub)
        split.addWidget(downloads)
        split.setSizes([260, 380, 160])
        problems = migrate_added_models(settings, self.registry)
        if problems:
            self.banner.show_message(" ".join(problems))
        self.refresh()
        self._restore_pending()

    @staticmethod
    def _stretch_first(table: QTableWidget) -> None:
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)

    @staticmethod
    def _table_defaults(table: QTableWidget) -> None:
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().setVisible(False)
        table.setWordWrap(False)

    # -- installed -------------------------------------------------------------------
    def refresh(self) -> None:
        keep = self.selected_name()
        entries = self.registry.list()
        default = self.ws.config.model or "default"
        self.table.setRowCount(len(entries))
        for row, e in enumerate(entries):
            size = format_bytes(e.size_bytes) if e.present else "files missing"
            template = "yes" if e.chat_template else "no"
            name = f"★ {e.name}" if e.name == default else e.name
            cells = (name, e.kind, e.format, size, e.quantization or "–", e.licence or "?",
                     template, e.lineage)  # fmt: skip
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, e.name)
                if col == 7:
                    item.setToolTip(e.lineage)
                self.table.setItem(row, col, item)
            if e.name == keep:
                self.table.selectRow(row)
        self._update_buttons()

    def selected_name(self) -> str:
        items = self.table.selectedItems()
        return str(items[0].data(Qt.ItemDataRole.UserRole)) if items else ""

    def _selected_entry(self) -> ModelEntry | None:
        name = self.selected_name()
        return self.registry.find(name) if name else None

    def _update_buttons(self) -> None:
        entry = self._selected_entry()
        self.delete_button.setEnabled(entry is not None and entry.kind != "bundled")
        self.default_button.setEnabled(
            entry is not None
            and entry.present
            and entry.name != (self.ws.config.model or "default")
        )
        self.pull_button.setEnabled(self.repo is not None and self._pull_target()[1] is not None)

    @Slot()
    def choose_file(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Add a GGUF model", "", "GGUF models (*.gguf);;All files (*)"
        )
        if file:
            self.add_local(Path(file))

    @Slot()
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a model folder")
        if folder:
            self.add_local(Path(folder))

    def add_local(self, path: Path) -> ModelEntry | None:
        try:
            entry = self.registry.add_local(path)
        except CotragError as exc:
            self._show_error(str(exc))
            return None
        self.banner.hide()
        self.refresh()
        self.models_changed.emit()
        self.status_message.emit(f"Added {entry.name} ({entry.format}).")
        return entry

    @Slot()
    def set_default(self) -> None:
        entry = self._selected_entry()
        if entry is None:
            return
        self.ws.config.model = "" if entry.kind == "bundled" else entry.name
        self.ws.save_config()
        self.refresh()
        self.models_changed.emit()
        self.status_message.emit(f"{entry.name} is the default model now.")

    @Slot()
    def delete_selected(self) -> None:
        entry = self._selected_entry()
        if entry is None or entry.kind == "bundled":
            return
        what = {
            "added": "Remove it from the list? The file itself stays where it is.",
            "pulled": f"Delete its {format_bytes(entry.size_bytes)} from the hub cache?",
            "tuned": f"Delete it and its {format_bytes(entry.size_bytes)} of files?",
        }[entry.kind]
        if not confirm_destructive(self, "Delete model", f"{entry.name}: {what}"):
            return
        try:
            if entry.present:
                self.ws.release(entry.name)
            message = self.registry.delete(entry.name)
        except (CotragError, OSError) as exc:
            self._show_error(f"Could not delete {entry.name}: {exc}")
            return
        if self.ws.config.model.split(":", 1)[0] == entry.name:
            self.ws.config.model = ""
            self.ws.save_config()
        self.refresh()
        self.models_changed.emit()
        self.status_message.emit(message)

    # -- hub ---------------------------------------------------------------------------
    @Slot()
    def search(self) -> None:
        text = self.query.text().strip()
        library = str(self.library_combo.currentData() or "") or None
        sort = cast(SortKey, str(self.sort_combo.currentData()))
        client = self.client_factory()
        self.search_button.setEnabled(False)
        self.repo_label.setText("Searching…")

        def work(_push: Callable[[object], None], _cancel: threading.Event) -> list[HubModel]:
            return client.search(text, library=library, sort=sort, limit=50)

        self.jobs.start(
            work,
            "hub search",
            latest="search",
            on_result=self._show_results,
            on_finished=lambda: self.search_button.setEnabled(True),
        )

    def _show_results(self, models: object) -> None:
        assert isinstance(models, list)
        self.banner.hide()
        self.results.setRowCount(len(models))
        for row, m in enumerate(models):
            gated = "  (gated)" if m.gated else ""
            cells = (m.repo_id + gated, m.library or "–", f"{m.downloads:,}", f"{m.likes:,}")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, m.repo_id)
                if col >= 2:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.results.setItem(row, col, item)
        self.repo_label.setText(
            f"{len(models)} repositories. Pick one to see its files."
            if models
            else "No repositories match."
        )

    @Slot()
    def _on_repo_selected(self) -> None:
        items = self.results.selectedItems()
        if not items:
            return
        repo_id = str(items[0].data(Qt.ItemDataRole.UserRole))
        self.show_repo(repo_id)

    def show_repo(self, repo_id: str) -> None:
        client = self.client_factory()
        dest = self.ws.layout.models
        self.repo = None
        self.files.setRowCount(0)
        self.repo_label.setText(f"Reading the files of {repo_id}…")
        self._update_buttons()

        def work(
            _push: Callable[[object], None], _cancel: threading.Event
        ) -> tuple[RepoFiles, dict[str, list[str]]]:
            repo = client.files(repo_id)
            warnings = {
                f.path: client.fit_warnings(f, dest=dest)
                for f in repo.files
                if f.format in ("gguf", "safetensors") and f.size > 0
            }
            return repo, warnings

        self.jobs.start(work, "hub files", latest="files", on_result=self._show_files)

    def _show_files(self, value: object) -> None:
        assert isinstance(value, tuple)
        repo, warnings = value
        self.repo = repo
        shown = repo.files
        self.files.setRowCount(len(shown))
        for row, f in enumerate(shown):
            problems = warnings.get(f.path, [])
            fits = "no" if problems else ("yes" if f.path in warnings else "")
            cells = (f.path, format_bytes(f.size), f.quantization or "", fits)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, f.path)
                if problems:
                    item.setToolTip(" ".join(problems))
                self.files.setItem(row, col, item)
        licence = repo.licence or "not stated"
        gguf = bool(repo.ggufs())
        hint = (
            "Pick a GGUF file to pull (Q4_K_M is a good start)."
            if gguf
            else "Pull takes the whole model folder (weights, config, tokenizer)."
        )
        if repo.gated:
            hint = (
                "Gated: accept its licence on the hub page, then set an access token "
                f"(Access token…). {hint}"
            )
        self.repo_label.setText(f"<b>{repo.repo_id}</b> · licence {licence} · {hint}")
        self._update_buttons()

    def _pull_target(self) -> tuple[str, str | None]:
        """(repo, file) the Pull button takes: the selected GGUF, or the folder."""
        if self.repo is None:
            return "", None
        items = self.files.selectedItems()
        chosen = str(items[0].data(Qt.ItemDataRole.UserRole)) if items else ""
        if chosen.lower().endswith(".gguf"):
            return self.repo.repo_id, chosen
        if self.repo.ggufs():
            return self.repo.repo_id, None  # a GGUF repository: a file must be picked
        return self.repo.repo_id, ""

    @Slot()
    def pull_selected(self) -> None:
        repo_id, filename = self._pull_target()
        if not repo_id or filename is None:
            self._show_error("Pick a GGUF file in the list first.")
            return
        self.pull(repo_id, filename or None)

    def pull(self, repo_id: str, filename: str | None) -> None:
        for row in self.rows:
            same = row.plan.repo_id == repo_id and filename in (None, row.plan.files[0])
            if same and row.state != "done":
                row.start()
                return
        client = self.client_factory()
        self.pull_button.setEnabled(False)

        def work(_push: Callable[[object], None], _cancel: threading.Event) -> PullPlan:
            return plan_pull(client, repo_id, filename)

        self.jobs.start(
            work,
            "plan pull",
            on_result=self._start_pull,
            on_finished=self._update_buttons,
        )

    def _start_pull(self, plan: object) -> None:
        assert isinstance(plan, PullPlan)
        row = self._add_row(plan, 0)
        row.start()
        self.status_message.emit(f"Pulling {plan.repo_id} ({format_bytes(plan.total_bytes)}).")

    # -- downloads -------------------------------------------------------------------------
    def _add_row(self, plan: PullPlan, on_disk: int) -> DownloadRow:
        row = DownloadRow(self.ws, self.jobs, self.client_factory, plan, on_disk=on_disk,
                          parent=self)  # fmt: skip
        row.finished.connect(self._on_pulled)
        row.removed.connect(lambda r=row: self._remove_row(r))
        row.failed.connect(self._show_error)
        self.rows.append(row)
        self.downloads_col.insertWidget(self.downloads_col.count() - 1, row)
        self.no_downloads.hide()
        return row

    def _remove_row(self, row: DownloadRow) -> None:
        if row in self.rows:
            self.rows.remove(row)
        row.hide()
        row.deleteLater()
        self.no_downloads.setVisible(not self.rows)

    def _restore_pending(self) -> None:
        plans = pending_pulls(self.ws.layout)
        if not plans:
            return
        client = self.client_factory()
        for plan in plans:
            self._add_row(plan, bytes_on_disk(client, plan, self.ws.layout))
        self.status_message.emit(
            f"{len(plans)} download{'s' * (len(plans) != 1)} paused: Resume continues them."
        )

    def _on_pulled(self, entry: object) -> None:
        assert isinstance(entry, ModelEntry)
        self.refresh()
        self.models_changed.emit()
        self.status_message.emit(f"Pulled {entry.name}: choose it in the chat's model list.")

    # -- token -------------------------------------------------------------------------------
    @Slot()
    def edit_token(self) -> None:
        from core.models.token import clear_token, set_token

        token, ok = QInputDialog.getText(
            self,
            "Hub access token",
            "A Hugging Face access token for gated and private models (kept in the OS "
            "keyring). Leave empty to remove the saved one.",
            QLineEdit.EchoMode.Password,
        )
        if not ok:
            return
        try:
            if token.strip():
                set_token(token.strip())
                self.status_message.emit("Access token saved in the OS keyring.")
            else:
                clear_token()
                self.status_message.emit("Access token removed.")
        except CotragError as exc:
            self._show_error(str(exc))

    # -- misc -------------------------------------------------------------------------------
    def _show_error(self, message: str) -> None:
        self.banner.show_message(message)
        self.error.emit(message)

    @property
    def downloading(self) -> bool:
        return any(r.state == "running" for r in self.rows)

    def shutdown(self, timeout: float = 15.0) -> None:
        """Pause every download (the partial files stay; the next start lists them)."""
        self.jobs.shutdown(timeout)
