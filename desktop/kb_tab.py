"""Knowledge-base tab: pick a knowledge base, drop documents on it, watch them index, search it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.durations import time_left
from core.knowledge.types import Hit
from core.workspace import Workspace
from desktop.confirm import confirm_destructive
from desktop.error_banner import ErrorBanner
from desktop.passage_dialog import PassageDialog
from desktop.tasks import Job, JobGroup, Push

log = logging.getLogger(__name__)

DEFAULT_KB_NAME = "My documents"
STATUS_COLOURS = {
    "indexed": "#047857",
    "unchanged": "#64748b",
    "failed": "#b91c1c",
    "removed": "#9a3412",
}


def local_paths(urls: list[QUrl]) -> list[Path]:
    return [Path(u.toLocalFile()) for u in urls if u.isLocalFile() and u.toLocalFile()]


class DropZone(QFrame):
    """The visible target; the whole tab accepts drops, this shows where and how."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dropZone")
        self.setProperty("hover", False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        self.text = QLabel(
            "<b>Drop files or folders anywhere here</b> to index them.<br>"
            "<span style='color:#64748b'>PDF, Word, Markdown, HTML, reStructuredText and plain "
            "text. Unchanged files are skipped.</span>",
            self,
        )
        self.text.setObjectName("dropText")
        layout.addWidget(self.text, 1)
        self.add_files = QPushButton("Add files…", self)
        self.add_folder = QPushButton("Add folder…", self)
        layout.addWidget(self.add_files)
        layout.addWidget(self.add_folder)

    def set_hover(self, on: bool) -> None:
        self.setProperty("hover", on)
        self.style().unpolish(self)
        self.style().polish(self)


class KnowledgeTab(QWidget):
    knowledge_bases_changed = Signal(list, str)
    """All knowledge-base names and the current one."""
    status_message = Signal(str)
    error = Signal(str)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.setAcceptDrops(True)
        self.jobs = JobGroup(self, self.show_error)
        self._index_job: Job | None = None
        self._names: list[str] = []
        self._pending_select = ""
        self._build()
        self._set_indexing(False)

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(16, 14, 16, 12)
        root.setSpacing(10)

        top = QHBoxLayout()
        title = QLabel("Knowledge base", self)
        title.setObjectName("sectionTitle")
        self.kb_combo = QComboBox(self)
        self.kb_combo.setMinimumWidth(240)
        self.kb_combo.setPlaceholderText("No knowledge base yet")
        self.kb_combo.currentTextChanged.connect(self._on_kb_changed)
        self.new_button = QPushButton("New…", self)
        self.rename_button = QPushButton("Rename…", self)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.setObjectName("danger")
        self.new_button.clicked.connect(self.ask_create)
        self.rename_button.clicked.connect(self.ask_rename)
        self.delete_button.clicked.connect(self.ask_delete)
        self.kb_info = QLabel("", self)
        self.kb_info.setObjectName("hint")
        self.kb_info.setToolTip(
            "The embedder whose vectors serve searches (Training tab: re-embed)"
        )
        self._serving = ""
        for w in (title, self.kb_combo, self.new_button, self.rename_button, self.delete_button):
            top.addWidget(w)
        top.addSpacing(12)
        top.addWidget(self.kb_info)
        top.addStretch(1)
        root.addLayout(top)

        self.drop_zone = DropZone(self)
        self.drop_zone.add_files.clicked.connect(self.choose_files)
        self.drop_zone.add_folder.clicked.connect(self.choose_folder)
        root.addWidget(self.drop_zone)

        self.progress_row = QWidget(self)
        prow = QHBoxLayout(self.progress_row)
        prow.setContentsMargins(0, 0, 0, 0)
        self.progress = QProgressBar(self.progress_row)
        self.progress.setTextVisible(False)
        self.progress_label = QLabel("", self.progress_row)
        self.progress_label.setObjectName("hint")
        self.cancel_button = QPushButton("Cancel", self.progress_row)
        self.cancel_button.clicked.connect(self.cancel_indexing)
        prow.addWidget(self.progress, 2)
        prow.addWidget(self.progress_label, 3)
        prow.addWidget(self.cancel_button)
        root.addWidget(self.progress_row)

        self.error_banner = ErrorBanner(self)
        root.addWidget(self.error_banner)

        split = QSplitter(Qt.Orientation.Horizontal, self)
        left = QWidget(split)
        lcol = QVBoxLayout(left)
        lcol.setContentsMargins(0, 0, 0, 0)
        docs_head = QHBoxLayout()
        docs_title = QLabel("Documents", left)
        docs_title.setObjectName("sectionTitle")
        self.remove_button = QPushButton("Remove document", left)
        self.remove_button.clicked.connect(self.remove_selected_document)
        docs_head.addWidget(docs_title)
        docs_head.addStretch(1)
        docs_head.addWidget(self.remove_button)
        lcol.addLayout(docs_head)
        self.documents = QListWidget(left)
        self.documents.setAlternatingRowColors(True)
        self.documents.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        lcol.addWidget(self.documents, 3)
        run_title = QLabel("Last indexing run", left)
        run_title.setObjectName("sectionTitle")
        lcol.addWidget(run_title)
        self.files = QTableWidget(0, 4, left)
        self.files.setHorizontalHeaderLabels(["File", "Status", "Chunks", "Reason"])
        self.files.verticalHeader().hide()
        self.files.setAlternatingRowColors(True)
        self.files.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.files.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.files.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.files.setColumnWidth(0, 220)
        self.files.setColumnWidth(1, 80)
        self.files.setColumnWidth(2, 60)
        lcol.addWidget(self.files, 2)

        right = QWidget(split)
        rcol = QVBoxLayout(right)
        rcol.setContentsMargins(0, 0, 0, 0)
        search_title = QLabel("Try a search", right)
        search_title.setObjectName("sectionTitle")
        rcol.addWidget(search_title)
        srow = QHBoxLayout()
        self.search_box = QLineEdit(right)
        self.search_box.setPlaceholderText("Type what you are looking for…")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.returnPressed.connect(self.search)
        self.method_combo = QComboBox(right)
        self.method_combo.addItems(["hybrid", "dense", "bm25"])
        self.method_combo.setToolTip("dense: meaning · bm25: keywords · hybrid: both, fused")
        self.search_button = QPushButton("Search", right)
        self.search_button.clicked.connect(self.search)
        srow.addWidget(self.search_box, 1)
        srow.addWidget(self.method_combo)
        srow.addWidget(self.search_button)
        rcol.addLayout(srow)
        self.hits = QListWidget(right)
        self.hits.setWordWrap(True)
        self.hits.setAlternatingRowColors(True)
        self.hits.itemActivated.connect(self._open_hit)
        self.hits.itemClicked.connect(self._open_hit)
        rcol.addWidget(self.hits, 1)
        hint = QLabel("Click a result to read the whole passage.", right)
        hint.setObjectName("hint")
        rcol.addWidget(hint)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        root.addWidget(split, 1)

    # -- jobs ---------------------------------------------------------------------
    def _job(self, work: Any, name: str, *, latest: str = "", **callbacks: Any) -> Job:
        return self.jobs.start(work, name, latest=latest, **callbacks)

    def busy(self) -> bool:
        return self.jobs.busy()

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
        self._job(lambda push, cancel: self.ws.store.list(), "kb-list", on_result=self._got_list)

    @Slot(object)
    def _got_list(self, infos: list[Any]) -> None:
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
        info = getattr(self, "_infos", {}).get(name)
        self.kb_info.setText(f"{info.documents} documents · {info.chunks} chunks" if info else "")
        self.hits.clear()
        if not has:
            self.documents.clear()
            item = QListWidgetItem("No knowledge base yet: drop documents above to create one.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.documents.addItem(item)
            return
        self.load_documents()
        self.knowledge_bases_changed.emit(list(self._names), name)

    def load_documents(self) -> None:
        name = self.current_kb
        if not name:
            return
        self._job(
            lambda push, cancel: self.ws.store.get(name).documents(),
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
    def _got_documents(self, docs: list[Any]) -> None:
        self.documents.clear()
        if not docs:
            item = QListWidgetItem("No documents yet: drop files or folders above.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.documents.addItem(item)
        for doc in docs:
            name = Path(doc.source).name
            item = QListWidgetItem(f"{name}   ·  {doc.chunks} chunks")
            item.setToolTip(f"{doc.source}\nindexed {doc.indexed_at}")
            item.setData(Qt.ItemDataRole.UserRole, doc.source)
            self.documents.addItem(item)
        chunks = sum(d.chunks for d in docs)
        self.kb_info.setText(f"{len(docs)} documents · {chunks} chunks{self._serving}")
        self.remove_button.setEnabled(bool(docs) and self._index_job is None)

    def create_kb(self, name: str) -> None:
        self._job(
            lambda push, cancel: self.ws.store.create(name).name,
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
            self.ws.store.rename(old, new)
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
            lambda push, cancel: self.ws.store.delete(name),
            "kb-delete",
            on_result=lambda _: self.refresh(),
        )

    @Slot()
    def remove_selected_document(self) -> None:
        sources = [
            i.data(Qt.ItemDataRole.UserRole)
            for i in self.documents.selectedItems()
            if i.data(Qt.ItemDataRole.UserRole)
        ]
        name = self.current_kb
        if not sources or not name:
            return

        def work(push: Push, cancel: threading.Event) -> None:
            kb = self.ws.store.get(name)
            for source in sources:
                kb.remove_document(source)

        self._job(work, "kb-remove", on_result=lambda _: self.refresh(select=name))

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
        self.progress.setRange(0, 0)
        self.progress_label.setText("Reading files…")
        chunking = self.ws.config.chunking

        def work(push: Push, cancel: threading.Event) -> Any:
            from core.errors import KnowledgeBaseNotFound
            from core.knowledge.indexer import Indexer, IndexSummary

            try:
                kb = self.ws.store.get(name)
            except KnowledgeBaseNotFound:
                kb = self.ws.store.create(name)
            summary = None
            for event in Indexer(kb, None, chunking).run(paths, cancel=cancel):
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
            self.progress_label.setText("Cancelling after the current batch…")
            self.cancel_button.setEnabled(False)

    def _set_indexing(self, on: bool) -> None:
        self.progress_row.setVisible(on)
        self.cancel_button.setEnabled(on)
        for w in (
            self.kb_combo,
            self.new_button,
            self.rename_button,
            self.delete_button,
            self.remove_button,
            self.drop_zone.add_files,
            self.drop_zone.add_folder,
        ):
            w.setEnabled(not on)

    @Slot(list)
    def _on_index_events(self, events: list[object]) -> None:
        from core.knowledge.indexer import FileDone, Progress

        last_progress = None
        for event in events:
            if isinstance(event, FileDone):
                self._add_file_row(event)
            elif isinstance(event, Progress):
                last_progress = event
        if last_progress is not None:
            p = last_progress
            self.progress.setRange(0, max(1, p.files_total))
            self.progress.setValue(p.files_done)
            rate = f"{p.chunks_per_s:.0f} chunks/s · " if p.chunks_per_s else ""
            self.progress_label.setText(
                f"{p.files_done} of {p.files_total} files · {p.chunks_done} chunks · "
                f"{rate}{time_left(p.eta_s)}"
            )
            self.progress_label.setToolTip(p.current)

    def _add_file_row(self, event: Any) -> None:
        row = self.files.rowCount()
        self.files.insertRow(row)
        name = QTableWidgetItem(Path(event.path).name)
        name.setToolTip(event.path)
        status = QTableWidgetItem(event.status)
        status.setForeground(_colour(STATUS_COLOURS.get(event.status, "#1f2937")))
        chunks = QTableWidgetItem(str(event.chunks) if event.chunks else "")
        chunks.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        reason = QTableWidgetItem(event.reason)
        reason.setToolTip(event.reason)
        for col, item in enumerate((name, status, chunks, reason)):
            self.files.setItem(row, col, item)
        self.files.scrollToBottom()

    @Slot(object)
    def _on_index_done(self, summary: Any) -> None:
        if summary is None:
            return
        parts = [f"{summary.indexed} indexed", f"{summary.unchanged} unchanged"]
        if summary.removed:
            parts.append(f"{summary.removed} removed")
        if summary.failed:
            parts.append(f"{summary.failed} failed (see the table)")
        verb = "Cancelled" if summary.cancelled else "Done"
        self.status_message.emit(
            f"{verb}: "
            + ", ".join(parts)
            + f" · {summary.chunks} chunks in {summary.seconds:.1f} s"
        )

    @Slot()
    def _on_index_finished(self) -> None:
        self._index_job = None
        self._set_indexing(False)
        self.refresh(select=getattr(self, "_index_kb", ""))

    # -- search -------------------------------------------------------------------
    @Slot()
    def search(self) -> None:
        query = self.search_box.text().strip()
        name = self.current_kb
        if not query or not name:
            return
        method = self.method_combo.currentText()
        k = max(5, self.ws.config.retrieval.k)
        self.hits.clear()
        self._job(
            lambda push, cancel: self.ws.store.get(name).search(query, k=k, method=method),
            "kb-search",
            latest="search",
            on_result=self._got_hits,
        )

    @Slot(object)
    def _got_hits(self, hits: list[Hit]) -> None:
        self.hits.clear()
        if not hits:
            item = QListWidgetItem("Nothing found.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.hits.addItem(item)
        for hit in hits:
            snippet = " ".join(hit.text.split())
            if len(snippet) > 160:
                snippet = snippet[:160].rsplit(" ", 1)[0] + " …"
            where = hit.label + (f"  ›  {hit.heading}" if hit.heading else "")
            item = QListWidgetItem(f"{where}     {hit.method} {hit.score:.3f}\n{snippet}")
            item.setData(Qt.ItemDataRole.UserRole, hit)
            item.setToolTip(hit.source)
            self.hits.addItem(item)

    @Slot(QListWidgetItem)
    def _open_hit(self, item: QListWidgetItem) -> None:
        hit = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(hit, Hit):
            dialog = PassageDialog(hit, self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.open()

    # -- errors -------------------------------------------------------------------
    @Slot(str)
    def show_error(self, message: str) -> None:
        self.error_banner.show_message(message)
        self.error.emit(message)

    def hide_error(self) -> None:
        self.error_banner.hide()

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
    from core.knowledge.embedders import BUNDLED_LABEL, bundled_name

    version = ws.store.get(name).active_version
    label = BUNDLED_LABEL if version.embedder == bundled_name() else version.embedder
    return f" · searched with {label} (v{version.number})"


def _colour(name: str) -> Any:
    from PySide6.QtGui import QColor

    return QColor(name)
