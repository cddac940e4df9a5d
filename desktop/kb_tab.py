"""Knowledge-base tab: pick a knowledge base, drop documents on it, watch them index, search it.

The tab is a view: it lays out its panels (``kb_indexing``, ``kb_documents``,
``kb_search``), runs ``core.knowledge.service`` calls off the GUI thread and renders
what comes back.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDropEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.knowledge import service
from core.knowledge.indexer import FileDone, IndexEvent, IndexSummary, Progress
from core.knowledge.manifest import DocInfo
from core.knowledge.store import KBInfo
from core.knowledge.types import Hit
from core.workspace import Workspace
from desktop.confirm import confirm_destructive
from desktop.fit import ElidedLabel, fit_combo
from desktop.kb_documents import DocumentsPanel
from desktop.kb_indexing import DropZone, IndexProgress, local_paths, summary_sentence
from desktop.kb_search import SearchPanel
from desktop.scaffold import TabView, section_title, splitter
from desktop.tasks import Job, JobGroup, Push

log = logging.getLogger(__name__)

DEFAULT_KB_NAME = "My documents"


class KnowledgeTab(TabView):
    knowledge_bases_changed = Signal(list, str)
    """All knowledge-base names and the current one."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.setAcceptDrops(True)
        self.jobs = JobGroup(self, self.show_error)
        self._index_job: Job | None = None
        self._index_kb = ""
        self._names: list[str] = []
        self._infos: dict[str, KBInfo] = {}
        self._pending_select = ""
        self._serving = ""
        self._build()
        self._set_indexing(False)

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(16, 14, 16, 12)
        root.setSpacing(10)

        top = QHBoxLayout()
        title = section_title("Knowledge base", self)
        self.kb_combo = QComboBox(self)
        fit_combo(self.kb_combo, 16)
        self.kb_combo.setPlaceholderText("No knowledge base yet")
        self.kb_combo.currentTextChanged.connect(self._on_kb_changed)
        self.new_button = QPushButton("New…", self)
        self.rename_button = QPushButton("Rename…", self)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.setObjectName("danger")
        self.new_button.clicked.connect(self.ask_create)
        self.rename_button.clicked.connect(self.ask_rename)
        self.delete_button.clicked.connect(self.ask_delete)
        self.kb_info = ElidedLabel("", self, min_chars=24)
        self.kb_info.setObjectName("hint")
        self.kb_info.setToolTip(
            "The embedder whose vectors serve searches (Training tab: re-embed)"
        )
        for w in (title, self.kb_combo, self.new_button, self.rename_button, self.delete_button):
            top.addWidget(w)
        top.addSpacing(12)
        top.addWidget(self.kb_info, 1)
        root.addLayout(top)

        self.drop_zone = DropZone(self)
        self.drop_zone.add_files.clicked.connect(self.choose_files)
        self.drop_zone.add_folder.clicked.connect(self.choose_folder)
        root.addWidget(self.drop_zone)

        self.progress_row = IndexProgress(self)
        self.progress_row.cancel_button.clicked.connect(self.cancel_indexing)
        root.addWidget(self.progress_row)
        root.addWidget(self.banner)

        split = splitter(self)
        self.documents_panel = DocumentsPanel(split)
        self.documents_panel.remove_button.clicked.connect(self.remove_selected_document)
        self.search_panel = SearchPanel(split)
        self.search_panel.search_box.returnPressed.connect(self.search)
        self.search_panel.search_button.clicked.connect(self.search)
        split.addWidget(self.documents_panel)
        split.addWidget(self.search_panel)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        root.addWidget(split, 1)
        # What the panels show, by the names a caller (and a test) reads them.
        self.documents = self.documents_panel.documents
        self.remove_button = self.documents_panel.remove_button
        self.files = self.documents_panel.files
        self.search_box = self.search_panel.search_box
        self.search_button = self.search_panel.search_button
        self.hits = self.search_panel.hits

    # -- jobs ---------------------------------------------------------------------
    def _job(self, work: Any, name: str, *, latest: str = "", **callbacks: Any) -> Job:
        return self.jobs.start(work, name, latest=latest, **callbacks)

    def busy(self) -> bool:
        return self.jobs.busy()

    @property
    def indexing(self) -> bool:
        """Whether an indexing run is going on (its Cancel is shown)."""
        return self._index_job is not None

    def shutdown(self, timeout: float = 15.0) -> None:
        """Cancel everything and wait for the workers (called when the window closes)."""
        self.jobs.shutdown(timeout)

    # -- knowledge bases ----------------------------------------------------------
    @property
    def current_kb(self) -> str:
        return self.kb_combo.currentText()

    def refresh(self, select: str = "") -> None:
        """Reload the list of knowledge bases (opening the store happens in a worker)."""
        self._pending_select = select or self.current_kb
        self._job(
            lambda push, cancel: service.list_kbs(self.ws), "kb-list", on_result=self._got_list
        )

    @Slot(object)
    def _got_list(self, infos: list[KBInfo]) -> None:
        self._names = [i.name for i in infos]
        self._infos = {i.name: i for i in infos}
        want = self._pending_select if self._pending_select in self._names else ""
        self.kb_combo.blockSignals(True)
        self.kb_combo.clear()
        self.kb_combo.addItems(self._names)
        if want:
            self.kb_combo.setCurrentText(want)
        elif self._names:
            self.kb_combo.setCurrentIndex(0)
        self.kb_combo.blockSignals(False)
        self._on_kb_changed(self.current_kb)
        self.knowledge_bases_changed.emit(list(self._names), self.current_kb)

    @Slot(str)
    def _on_kb_changed(self, name: str) -> None:
        has = bool(name)
        for w in (self.rename_button, self.delete_button, self.search_button):
            w.setEnabled(has and self._index_job is None)
        info = self._infos.get(name)
        self.kb_info.setText(f"{info.documents} documents · {info.chunks} chunks" if info else "")
        self.hits.clear()
        if not has:
            self.documents_panel.show_placeholder(
                "No knowledge base yet: drop documents above to create one."
            )
            return
        self.load_documents()
        self.knowledge_bases_changed.emit(list(self._names), name)

    def load_documents(self) -> None:
        name = self.current_kb
        if not name:
            return
        self._job(
            lambda push, cancel: service.documents(self.ws, name),
            "kb-docs",
            latest="docs",
            on_result=self._got_documents,
        )
        self._serving = ""
        self._job(
            lambda push, cancel: serving_text(self.ws, name),
            "kb-serving",
            latest="serving",
            on_result=self._got_serving,
            on_error=lambda message: log.info("No serving version for %s: %s", name, message),
        )

    def _got_serving(self, text: str) -> None:
        self._serving = text
        base = self.kb_info.text().split(" · searched with ")[0]
        self.kb_info.setText(base + text if base else "")

    @Slot(object)
    def _got_documents(self, docs: list[DocInfo]) -> None:
        self.documents_panel.show_documents(docs)
        chunks = sum(d.chunks for d in docs)
        self.kb_info.setText(f"{len(docs)} documents · {chunks} chunks{self._serving}")

    def create_kb(self, name: str) -> None:
        self._job(
            lambda push, cancel: service.create(self.ws, name),
            "kb-create",
            on_result=lambda created: self.refresh(select=created),
        )

    @Slot()
    def ask_create(self) -> None:
        name, ok = QInputDialog.getText(self, "New knowledge base", "Name:")
        if ok and name.strip():
            self.create_kb(name.strip())

    @Slot()
    def ask_rename(self) -> None:
        old = self.current_kb
        if not old:
            return
        new, ok = QInputDialog.getText(self, "Rename knowledge base", "New name:", text=old)
        if ok and new.strip() and new.strip() != old:
            self.rename_kb(old, new.strip())

    def rename_kb(self, old: str, new: str) -> None:
        def work(push: Push, cancel: threading.Event) -> str:
            service.rename(self.ws, old, new)
            return new

        self._job(work, "kb-rename", on_result=lambda n: self.refresh(select=n))

    @Slot()
    def ask_delete(self) -> None:
        name = self.current_kb
        if not name:
            return
        if confirm_destructive(
            self,
            "Delete knowledge base",
            f"Delete the knowledge base “{name}” and its index?\n"
            "Your original files are not touched.",
        ):
            self.delete_kb(name)

    def delete_kb(self, name: str) -> None:
        self._job(
            lambda push, cancel: service.delete(self.ws, name),
            "kb-delete",
            on_result=lambda _: self.refresh(),
        )

    @Slot()
    def remove_selected_document(self) -> None:
        sources = self.documents_panel.selected_sources()
        name = self.current_kb
        if not sources or not name:
            return
        self._job(
            lambda push, cancel: service.remove_documents(self.ws, name, sources),
            "kb-remove",
            on_result=lambda _: self.refresh(select=name),
        )

    # -- indexing -----------------------------------------------------------------
    @Slot()
    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add files to the knowledge base")
        if files:
            self.index_paths([Path(f) for f in files])

    @Slot()
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder to the knowledge base")
        if folder:
            self.index_paths([Path(folder)])

    def index_paths(self, paths: list[Path]) -> None:
        if self._index_job is not None:
            self.show_error("Indexing is already running; wait for it or press Cancel.")
            return
        name = self.current_kb or DEFAULT_KB_NAME
        self.hide_error()
        self.files.setRowCount(0)
        self._set_indexing(True)
        self.progress_row.start()

        def work(push: Push, cancel: threading.Event) -> IndexSummary | None:
            kb, _created = service.open_kb(self.ws, name)
            summary = None
            for event in service.index(self.ws, kb, paths, cancel=cancel):
                push(event)
                if isinstance(event, IndexSummary):
                    summary = event
            return summary

        self._index_kb = name
        self._index_job = self._job(
            work,
            "index",
            on_items=self._on_index_events,
            on_result=self._on_index_done,
            on_finished=self._on_index_finished,
        )

    @Slot()
    def cancel_indexing(self) -> None:
        if self._index_job is not None:
            self._index_job.cancel()
            self.progress_row.cancelling()

    def _set_indexing(self, on: bool) -> None:
        self.progress_row.setVisible(on)
        self.progress_row.cancel_button.setEnabled(on)
        for w in (
            self.kb_combo,
            self.new_button,
            self.rename_button,
            self.delete_button,
            self.drop_zone.add_files,
            self.drop_zone.add_folder,
        ):
            w.setEnabled(not on)
        self.documents_panel.set_busy(on)

    @Slot(list)
    def _on_index_events(self, events: list[IndexEvent]) -> None:
        last_progress = None
        for event in events:
            if isinstance(event, FileDone):
                self.files.add(event)
            elif isinstance(event, Progress):
                last_progress = event
        if last_progress is not None:
            self.progress_row.show_progress(last_progress)

    @Slot(object)
    def _on_index_done(self, summary: IndexSummary | None) -> None:
        if summary is not None:
            self.status_message.emit(summary_sentence(summary))

    @Slot()
    def _on_index_finished(self) -> None:
        self._index_job = None
        self._set_indexing(False)
        self.refresh(select=self._index_kb)

    # -- search -------------------------------------------------------------------
    @Slot()
    def search(self) -> None:
        query, name = self.search_panel.query, self.current_kb
        if not query or not name:
            return
        method = self.search_panel.method
        k = max(5, self.ws.config.retrieval.k)
        self.hits.clear()
        self._job(
            lambda push, cancel: service.search(self.ws, name, query, k=k, method=method),
            "kb-search",
            latest="search",
            on_result=self._got_hits,
        )

    @Slot(object)
    def _got_hits(self, hits: list[Hit]) -> None:
        self.search_panel.show_hits(hits)

    # -- drag and drop ------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and local_paths(event.mimeData().urls()):
            event.acceptProposedAction()
            self.drop_zone.set_hover(True)

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self.drop_zone.set_hover(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self.drop_zone.set_hover(False)
        paths = local_paths(event.mimeData().urls())
        if paths:
            event.acceptProposedAction()
            self.index_paths(paths)


def serving_text(ws: Workspace, name: str) -> str:
    """`` · searched with <embedder> (vN)``: which version of ``name`` serves (opens the store)."""
    version = service.serving(ws, name)
    return f" · searched with {service.embedder_label(version.embedder)} (v{version.number})"
