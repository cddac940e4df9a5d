"""The Models tab's view of the Hugging Face hub: search, a repository's files with what
fits here, the access token, and the Pull button (which asks the tab to pull)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import cast

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
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
from core.models import service
from core.models.hub import HubClient, HubModel, RepoFiles, SortKey
from core.models.token import clear_token, set_token
from core.workspace import Workspace
from desktop.download_row import format_bytes
from desktop.tables import read_only, stretch_column
from desktop.tasks import Job, JobGroup

LIBRARIES = (("Any library", ""), ("GGUF", "gguf"), ("Transformers", "transformers"),
             ("MLX", "mlx"))  # fmt: skip
SORTS = (("Most downloaded", "downloads"), ("Most liked", "likes"), ("Recently updated", "recent"))


class HubPanel(QGroupBox):
    """Search results on the left, the picked repository's files on the right."""

    pull_requested = Signal(str, object)
    """(repository, file): a GGUF file, or None for the whole model folder."""
    status_message = Signal(str)
    error = Signal(str)
    error_cleared = Signal()

    def __init__(
        self,
        workspace: Workspace,
        jobs: JobGroup,
        client_factory: Callable[[], HubClient],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Hugging Face hub", parent)
        self.ws = workspace
        self.jobs = jobs
        self.client_factory = client_factory
        self.repo: RepoFiles | None = None
        hcol = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.query = QLineEdit(self)
        self.query.setPlaceholderText("Search models, e.g. SmolLM2 GGUF")
        self.query.returnPressed.connect(self.search)
        self._searching: Job | None = None
        """The search running now (None when none): its button says Cancel."""
        bar.addWidget(self.query, 1)
        self.library_combo = QComboBox(self)
        for label, value in LIBRARIES:
            self.library_combo.addItem(label, value)
        bar.addWidget(self.library_combo)
        self.sort_combo = QComboBox(self)
        for label, value in SORTS:
            self.sort_combo.addItem(label, value)
        bar.addWidget(self.sort_combo)
        self.search_button = QPushButton("Search", self)
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search_or_cancel)
        bar.addWidget(self.search_button)
        self.token_button = QPushButton("Access token…", self)
        self.token_button.setToolTip(
            "For gated and private repositories; kept in the OS keyring, never in a file"
        )
        self.token_button.clicked.connect(self.edit_token)
        bar.addWidget(self.token_button)
        hcol.addLayout(bar)
        lists = QSplitter(Qt.Orientation.Horizontal, self)
        self.results = read_only(QTableWidget(0, 4, lists))
        self.results.setHorizontalHeaderLabels(("Repository", "Library", "Downloads", "Likes"))
        stretch_column(self.results, 0)
        self.results.itemSelectionChanged.connect(self._on_repo_selected)
        self.files = read_only(QTableWidget(0, 4, lists))
        self.files.setHorizontalHeaderLabels(("File", "Size", "Quantization", "Fits?"))
        stretch_column(self.files, 0)
        self.files.itemSelectionChanged.connect(self.update_buttons)
        lists.addWidget(self.results)
        lists.addWidget(self.files)
        lists.setSizes([560, 640])
        hcol.addWidget(lists, 1)
        pull_row = QHBoxLayout()
        self.repo_label = QLabel("Search the hub, then pick a repository to see its files.", self)
        self.repo_label.setObjectName("hint")
        self.repo_label.setWordWrap(True)
        pull_row.addWidget(self.repo_label, 1)
        self.pull_button = QPushButton("Pull", self)
        self.pull_button.setToolTip(
            "Download the chosen GGUF file (or the whole model folder) into the hub cache"
        )
        self.pull_button.clicked.connect(self.pull_selected)
        pull_row.addWidget(self.pull_button)
        hcol.addLayout(pull_row)

    @Slot()
    def update_buttons(self) -> None:
        self.pull_button.setEnabled(self.repo is not None and self.pull_target()[1] is not None)

    # -- search ------------------------------------------------------------------------
    @property
    def searching(self) -> bool:
        return self._searching is not None

    @Slot()
    def search_or_cancel(self) -> None:
        """The button: Search, or Cancel while a search waits for the hub."""
        if self._searching is not None:
            self.cancel_search()
        else:
            self.search()

    @Slot()
    def cancel_search(self) -> None:
        """Stop waiting for the hub: whatever it answers later is not shown."""
        if self._searching is None:
            return
        self._searching.cancel()
        self._searching = None
        self.search_button.setText("Search")
        self.repo_label.setText("Search cancelled.")

    @Slot()
    def search(self) -> None:
        """Search the hub (a search still waiting is dropped for this one)."""
        text = self.query.text().strip()
        library = str(self.library_combo.currentData() or "") or None
        sort = cast(SortKey, str(self.sort_combo.currentData()))
        client = self.client_factory()
        self.error_cleared.emit()  # the last search's failure is not this one's
        self.search_button.setText("Cancel")
        self.repo_label.setText("Searching the hub… (Cancel stops waiting)")
        mine: list[Job] = []

        def work(_push: Callable[[object], None], _cancel: threading.Event) -> list[HubModel]:
            return service.search(client, text, library=library, sort=sort, limit=50)

        def current() -> bool:
            return bool(mine) and self._searching is mine[0]

        def failed(message: str) -> None:
            if current():
                self.repo_label.setText("The search failed (the message above says why).")
                self.error.emit(message)

        def finished() -> None:
            if current():
                self._searching = None
                self.search_button.setText("Search")

        job = self.jobs.start(
            work,
            "hub search",
            latest="search",
            on_result=lambda models: self._show_results(models) if current() else None,
            on_error=failed,
            on_finished=finished,
        )
        mine.append(job)
        self._searching = job

    def _show_results(self, models: list[HubModel]) -> None:
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

    # -- a repository ------------------------------------------------------------------
    @Slot()
    def _on_repo_selected(self) -> None:
        items = self.results.selectedItems()
        if items:
            self.show_repo(str(items[0].data(Qt.ItemDataRole.UserRole)))

    def show_repo(self, repo_id: str) -> None:
        client = self.client_factory()
        ws = self.ws
        self.repo = None
        self.files.setRowCount(0)
        self.repo_label.setText(f"Reading the files of {repo_id}…")
        self.update_buttons()

        def work(_push: Callable[[object], None], _cancel: threading.Event) -> service.RepoListing:
            return service.repo_files(ws, client, repo_id)

        self.jobs.start(work, "hub files", latest="files", on_result=self._show_files)

    def _show_files(self, listing: service.RepoListing) -> None:
        repo, warnings = listing.repo, listing.warnings
        self.repo = repo
        self.files.setRowCount(len(repo.files))
        for row, f in enumerate(repo.files):
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
        hint = (
            "Pick a GGUF file to pull (Q4_K_M is a good start)."
            if repo.ggufs()
            else "Pull takes the whole model folder (weights, config, tokenizer)."
        )
        if repo.gated:
            hint = (
                "Gated: accept its licence on the hub page, then set an access token "
                f"(Access token…). {hint}"
            )
        self.repo_label.setText(f"<b>{repo.repo_id}</b> · licence {licence} · {hint}")
        self.update_buttons()

    def pull_target(self) -> tuple[str, str | None]:
        """(repo, file) the Pull button takes: the selected GGUF, ``""`` for the folder,
        None while a GGUF repository has no file picked."""
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
        repo_id, filename = self.pull_target()
        if not repo_id or filename is None:
            self.error.emit("Pick a GGUF file in the list first.")
            return
        self.pull_requested.emit(repo_id, filename or None)

    # -- token ---------------------------------------------------------------------------
    @Slot()
    def edit_token(self) -> None:
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
            self.error.emit(str(exc))
