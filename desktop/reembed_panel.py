"""Put a tuned embedder to work: re-embed a knowledge base with it, switch, switch back.

Re-embedding runs in a background job (:func:`core.knowledge.reembed.reembed`): the
knowledge base keeps serving its old version, so search anywhere in the app goes on,
until the new version is complete and checked and the core switches atomically.
Cancel leaves the new version half-built (the button then resumes it); the old
versions stay until removed, so "Switch to" on the previous one is the undo.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.workspace import Workspace
from desktop.confirm import confirm_destructive
from desktop.error_banner import ErrorBanner
from desktop.tasks import Job, JobGroup, Push

log = logging.getLogger(__name__)

VERSION_COLUMNS = ["", "Version", "Embedder", "State", "Chunks"]
STAGE_WORDS = {
    "embedding": "Embedding the chunks",
    "waiting": "Waiting for an indexing run to finish",
    "catching up": "Catching up with documents added meanwhile",
    "checking": "Checking the new version",
}


@dataclass(frozen=True)
class VersionRow:
    number: int
    embedder: str
    label: str
    """The embedder as a person reads it (the bundled one by its model name)."""
    state: str
    chunks: int
    done: int
    serving: bool


@dataclass(frozen=True)
class KbVersions:
    kb: str
    rows: list[VersionRow]
    total: int
    """Chunks the knowledge base holds (what a re-embed has to embed)."""

    @property
    def serving(self) -> VersionRow | None:
        return next((r for r in self.rows if r.serving), None)

    def building(self, embedder: str) -> VersionRow | None:
        return next(
            (r for r in self.rows if r.state == "building" and r.embedder == embedder), None
        )


def read_versions(ws: Workspace, kb_name: str) -> KbVersions:
    """A knowledge base's versions, for the table (run off the GUI thread: it opens the store)."""
    from core.knowledge.embedders import BUNDLED_LABEL, bundled_name

    kb = ws.store.get(kb_name)
    current = kb.versions_file.read()
    bundled = bundled_name()
    rows = [
        VersionRow(
            v.number,
            v.embedder,
            BUNDLED_LABEL if v.embedder == bundled else v.embedder,
            v.state,
            kb.count() if v.number == current.active else v.chunks,
            # A build's progress is what its collection holds so far.
            kb.version_collection(v, create=True).count() if v.state == "building" else v.done,
            v.number == current.active,
        )
        for v in current.versions
    ]
    total = sum(d.chunks for d in kb.manifest().documents.values())
    return KbVersions(kb_name, rows, total)


class ReembedPanel(QFrame):
    """Re-embed a knowledge base with an embedder; its versions, Switch to, Remove."""

    status_message = Signal(str)
    switched = Signal(str)
    """A knowledge base (its name) now searches with another version."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.setObjectName("reembedPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.jobs = JobGroup(self, self.show_error)
        self.task: Job | None = None
        """The re-embed, switch or remove that runs (one at a time)."""
        self.versions: KbVersions | None = None
        self._wanted_embedder = ""
        self._select_next = 0
        """A version to select once the table is re-read (the undo's target)."""
        self._full = False
        self._build()
        self._update_buttons()

    # -- layout ---------------------------------------------------------------------
    def _build(self) -> None:
        col = QVBoxLayout(self)
        col.setContentsMargins(10, 8, 10, 8)
        col.setSpacing(6)
        title = QLabel("Search with the tuned embedder", self)
        title.setObjectName("sectionTitle")
        col.addWidget(title)
        self.banner = ErrorBanner(self)
        col.addWidget(self.banner)
        pick = QHBoxLayout()
        self.embedder_combo = QComboBox(self)
        self.embedder_combo.setToolTip("The embedder the knowledge base is re-embedded with")
        self.embedder_combo.currentIndexChanged.connect(lambda _i: self._update_buttons())
        self.kb_combo = QComboBox(self)
        self.kb_combo.setPlaceholderText("no knowledge base yet")
        self.kb_combo.currentIndexChanged.connect(self._kb_chosen)
        pick.addWidget(QLabel("Embedder", self))
        pick.addWidget(self.embedder_combo, 1)
        pick.addWidget(QLabel("Knowledge base", self))
        pick.addWidget(self.kb_combo, 1)
        col.addLayout(pick)
        run_row = QHBoxLayout()
        self.reembed_button = QPushButton("Re-embed", self)
        self.reembed_button.setObjectName("primary")
        self.reembed_button.clicked.connect(self.reembed)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop; the new version stays half-built and Resume continues")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        run_row.addWidget(self.reembed_button)
        run_row.addWidget(self.progress, 1)
        run_row.addWidget(self.cancel_button)
        col.addLayout(run_row)
        self.status_label = QLabel("", self)
        self.status_label.setObjectName("hint")
        self.status_label.setWordWrap(True)
        col.addWidget(self.status_label)
        grid = QGridLayout()
        self.table = QTableWidget(0, len(VERSION_COLUMNS), self)
        self.table.setHorizontalHeaderLabels(VERSION_COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        for c in (0, 1, 3, 4):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMaximumHeight(130)
        self.table.setToolTip("★ marks the version that serves searches")
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.switch_button = QPushButton("Switch to", self)
        self.switch_button.setToolTip(
            "Make the selected version serve searches (switching back is the undo)"
        )
        self.switch_button.clicked.connect(self.switch_selected)
        self.remove_button = QPushButton("Remove…", self)
        self.remove_button.setObjectName("danger")
        self.remove_button.setToolTip("Delete the selected version's vectors to free space")
        self.remove_button.clicked.connect(self.remove_selected)
        grid.addWidget(self.table, 0, 0, 3, 1)
        grid.addWidget(self.switch_button, 0, 1)
        grid.addWidget(self.remove_button, 1, 1)
        grid.setRowStretch(2, 1)
        col.addLayout(grid)

    # -- lists ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the knowledge bases and the embedders (in the background)."""

        def work(push: Push, cancel: threading.Event) -> dict[str, Any]:
            from core.knowledge.embedders import list_embedders

            return {
                "kbs": [info.name for info in self.ws.store.list()],
                "embedders": [(e.name, e.label) for e in list_embedders(self.ws.layout)],
            }

        self.jobs.start(work, "reembed-lists", latest="lists", on_result=self._got_lists)

    def _got_lists(self, data: dict[str, Any]) -> None:
        want = self._wanted_embedder or self.embedder_combo.currentData()
        self.embedder_combo.blockSignals(True)
        self.embedder_combo.clear()
        for name, label in data["embedders"]:
            self.embedder_combo.addItem(label, name)
        index = self.embedder_combo.findData(want) if want else -1
        # With nothing asked for, the newest tuned embedder (the last listed) is the likely one.
        self.embedder_combo.setCurrentIndex(
            index if index >= 0 else self.embedder_combo.count() - 1
        )
        self.embedder_combo.blockSignals(False)
        kb = self.kb_combo.currentData()
        self.kb_combo.blockSignals(True)
        self.kb_combo.clear()
        for name in data["kbs"]:
            self.kb_combo.addItem(name, name)
        self.kb_combo.setCurrentIndex(max(0, self.kb_combo.findData(kb)) if data["kbs"] else -1)
        self.kb_combo.blockSignals(False)
        self.load_versions()

    def _kb_chosen(self, _index: int) -> None:
        self.status_label.setText("")
        self.hide_error()
        self.load_versions()

    def set_embedder(self, name: str, kb: str = "") -> None:
        """Preselect ``name`` (a just-tuned embedder) and, if given, the knowledge base."""
        self._wanted_embedder = name
        index = self.embedder_combo.findData(name)
        if index >= 0:
            self.embedder_combo.setCurrentIndex(index)
        if kb and self.kb_combo.findData(kb) >= 0:
            self.kb_combo.setCurrentIndex(self.kb_combo.findData(kb))
        self.refresh()  # a new embedder is not in the list yet

    @property
    def embedder(self) -> str:
        return str(self.embedder_combo.currentData() or "")

    @property
    def embedder_label(self) -> str:
        return self.embedder_combo.currentText()

    @property
    def kb_name(self) -> str:
        return str(self.kb_combo.currentData() or "")

    def load_versions(self) -> None:
        name = self.kb_name
        if not name:
            self.versions = None
            self.table.setRowCount(0)
            self._update_buttons()
            return

        def work(push: Push, cancel: threading.Event) -> KbVersions:
            return read_versions(self.ws, name)

        self.jobs.start(work, "kb-versions", latest="versions", on_result=self._got_versions)

    def _got_versions(self, versions: KbVersions) -> None:
        if versions.kb != self.kb_name:
            return
        self.versions = versions
        selected = self.selected_version()
        self.table.setRowCount(0)
        for row in versions.rows:
            r = self.table.rowCount()
            self.table.insertRow(r)
            chunks = row.chunks if row.state == "ready" else row.done
            cells = [
                "★" if row.serving else "",
                f"v{row.number}",
                row.label,
                "serving" if row.serving else row.state,
                f"{chunks}" + (f"/{versions.total}" if row.state == "building" else ""),
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0:
                    item.setData(Qt.ItemDataRole.UserRole, row.number)
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if row.serving:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(r, c, item)
            if row.number == (self._select_next or selected):
                self.table.selectRow(r)
        self._select_next = 0
        self._update_buttons()

    def selected_version(self) -> int:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return 0
        item = self.table.item(rows[0].row(), 0)
        value = item.data(Qt.ItemDataRole.UserRole) if item else None
        return int(value) if isinstance(value, int) else 0

    def select_version(self, number: int) -> None:
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == number:
                self.table.selectRow(r)
                return

    def _row(self, number: int) -> VersionRow | None:
        if self.versions is None:
            return None
        return next((r for r in self.versions.rows if r.number == number), None)

    # -- state ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.task is not None

    def _update_buttons(self) -> None:
        versions, embedder = self.versions, self.embedder
        serving = versions.serving if versions else None
        building = versions.building(embedder) if versions and embedder else None
        label = self.embedder_label or "the embedder"
        if building is not None:
            self.reembed_button.setText(f"Resume re-embedding with {label}")
        else:
            self.reembed_button.setText(f"Re-embed with {label}")
        already = serving is not None and serving.embedder == embedder
        self.reembed_button.setEnabled(
            not self.busy and versions is not None and bool(embedder) and not already
        )
        self.reembed_button.setToolTip(
            f"{versions.kb} already searches with {label}."
            if already and versions is not None
            else "Embed every chunk again into a new version; search keeps using the old one "
            "until the new one is complete and checked, then switches"
        )
        if already and versions is not None and not self.busy and not self.status_label.text():
            self.status_label.setText(f"{versions.kb} already searches with {label}.")
        self.cancel_button.setEnabled(self.busy)
        number = self.selected_version()
        row = self._row(number)
        self.switch_button.setEnabled(
            not self.busy and row is not None and row.state == "ready" and not row.serving
        )
        self.remove_button.setEnabled(not self.busy and row is not None and row.state != "removed")
        self.kb_combo.setEnabled(not self.busy)
        self.embedder_combo.setEnabled(not self.busy)

    def _progress(self, items: list[object]) -> None:
        from core.knowledge.reembed import ReembedProgress

        last = [i for i in items if isinstance(i, ReembedProgress)]
        if not last:
            return
        p = last[-1]
        words = STAGE_WORDS.get(p.stage, p.stage)
        if p.total:
            self.progress.setFormat("%v/%m chunks")
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
            self.status_label.setText(f"{words}: {p.done}/{p.total} chunks…")
        else:
            self.progress.setRange(0, 0)
            self.status_label.setText(f"{words}…")

    def _start(self, work: Any, name: str, on_result: Any) -> None:
        self.hide_error()

        def finished() -> None:
            self.task = None
            if self.progress.maximum() == 0:  # the busy indicator: nothing was counted
                self.progress.setFormat("")
                self.progress.setRange(0, 1)
            # A cancelled build keeps showing how far it got; a switch shows full.
            if self._full:
                self.progress.setValue(self.progress.maximum())
            self.load_versions()
            self._update_buttons()

        self._full = False
        self.task = self.jobs.start(
            work,
            name,
            on_items=self._progress,
            on_result=on_result,
            on_error=self._failed,
            on_finished=finished,
        )
        self._update_buttons()

    def _failed(self, message: str) -> None:
        self.status_label.setText("")
        self.show_error(message)

    # -- actions ---------------------------------------------------------------------------
    def reembed(self) -> None:
        kb_name, embedder, label = self.kb_name, self.embedder, self.embedder_label
        if not kb_name or not embedder or self.busy:
            return
        old = self.versions.serving if self.versions else None

        def work(push: Push, cancel: threading.Event) -> object:
            from core.knowledge.reembed import reembed

            kb = self.ws.store.get(kb_name)
            return reembed(kb, embedder, on_progress=push, cancel=cancel)

        def done(result: Any) -> None:
            v = result.version
            if result.cancelled:
                self.status_label.setText(
                    f"Cancelled: version {v.number} is half-built; "
                    + (f"v{old.number} ({old.label}) " if old else "the old version ")
                    + f"still serves {kb_name}. Resume continues where it stopped."
                )
                return
            self._full = True
            undo = f" Switch to v{old.number} to undo." if old else ""
            sentence = (
                f"{kb_name} now searches with {label} (version {v.number}, {v.chunks} chunks, "
                f"{result.seconds:.0f} s).{undo}"
            )
            self.status_label.setText(sentence)
            self.status_message.emit(sentence)
            self.switched.emit(kb_name)
            if old is not None:
                self._select_next = old.number

        self.status_label.setText(f"Re-embedding {kb_name} with {label}…")
        self.progress.setRange(0, 0)
        self._start(work, "reembed", done)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status_label.setText("Cancelling after the current batch…")
            self.cancel_button.setEnabled(False)

    def switch_selected(self) -> None:
        number, kb_name = self.selected_version(), self.kb_name
        row = self._row(number)
        if row is None or self.busy:
            return
        old = self.versions.serving if self.versions else None

        def work(push: Push, cancel: threading.Event) -> object:
            from core.knowledge.reembed import switch_to

            return switch_to(self.ws.store.get(kb_name), number, on_progress=push, cancel=cancel)

        def done(version: Any) -> None:
            self._full = True
            undo = f" Switch to v{old.number} to undo." if old and old.number != number else ""
            sentence = f"{kb_name} searches with {row.label} again (version {number}).{undo}"
            self.status_label.setText(sentence)
            self.status_message.emit(sentence)
            self.switched.emit(kb_name)
            if old is not None and old.number != number:
                self._select_next = old.number

        self.status_label.setText(f"Switching {kb_name} to version {number}…")
        self.progress.setRange(0, 0)
        self._start(work, "kb-switch", done)

    def remove_selected(self) -> None:
        number, kb_name = self.selected_version(), self.kb_name
        row = self._row(number)
        if row is None or self.busy:
            return
        # The serving version is refused by the core, with its own sentence: no question first.
        if not row.serving and not confirm_destructive(
            self,
            "Remove version",
            f"Remove version {number} of {kb_name!r} ({row.label})? Its vectors are deleted; "
            "switching back to it is then no longer possible.",
            "Remove",
        ):
            return

        def work(push: Push, cancel: threading.Event) -> object:
            from core.knowledge.reembed import remove_version

            return remove_version(self.ws.store.get(kb_name), number)

        def done(version: Any) -> None:
            self.status_label.setText(f"Removed version {number} of {kb_name}.")

        self._start(work, "kb-remove-version", done)

    # -- errors, shutdown -------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        self.banner.show_message(message)

    def hide_error(self) -> None:
        self.banner.hide()

    def shutdown(self) -> None:
        self.jobs.shutdown()
