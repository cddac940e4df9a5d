"""Put a tuned embedder to work: re-embed a knowledge base with it, switch, switch back.

Re-embedding runs in a background job (:func:`core.knowledge.reembed.reembed`): the
knowledge base keeps serving its old version, so search anywhere in the app goes on,
until the new version is complete and checked and the core switches atomically.
Cancel leaves the new version half-built (the button then resumes it); the old
versions stay until removed, so "Switch to" on the previous one is the undo.
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.knowledge import service
from core.knowledge.reembed import ReembedProgress, ReembedResult
from core.knowledge.service import KbVersions, VersionRow
from core.knowledge.versions import Version
from core.workspace import Workspace
from desktop.confirm import confirm_destructive
from desktop.error_banner import ErrorBanner
from desktop.scaffold import hint, section_title
from desktop.tasks import Job, JobGroup, Push
from desktop.version_table import VersionTable

STAGE_WORDS = {
    "embedding": "Embedding the chunks",
    "waiting": "Waiting for an indexing run to finish",
    "catching up": "Catching up with documents added meanwhile",
    "checking": "Checking the new version",
}


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
        col.addWidget(section_title("Search with the tuned embedder", self))
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
        self.status_label = hint("", self)
        col.addWidget(self.status_label)
        grid = QGridLayout()
        self.table = VersionTable(self)
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
            return {
                "kbs": [info.name for info in service.list_kbs(self.ws)],
                "embedders": [(e.name, e.label) for e in service.embedders(self.ws)],
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
        if self.versions is not None and self.versions.kb != self.kb_name:
            self.versions = None  # another knowledge base's: its rows come with load_versions
        self._update_buttons()  # the button names the embedder now shown, at once
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
            return service.versions(self.ws, name)

        self.jobs.start(work, "kb-versions", latest="versions", on_result=self._got_versions)

    def _got_versions(self, versions: KbVersions) -> None:
        if versions.kb != self.kb_name:
            return
        self.versions = versions
        self.table.show_versions(versions, self._select_next or self.selected_version())
        self._select_next = 0
        self._update_buttons()

    def selected_version(self) -> int:
        return self.table.selected_version()

    def select_version(self, number: int) -> None:
        self.table.select_version(number)

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

        def work(push: Push, cancel: threading.Event) -> ReembedResult:
            return service.reembed(self.ws, kb_name, embedder, on_progress=push, cancel=cancel)

        def done(result: ReembedResult) -> None:
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

        def work(push: Push, cancel: threading.Event) -> Version:
            return service.switch(self.ws, kb_name, number, on_progress=push, cancel=cancel)

        def done(version: Version) -> None:
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

        def work(push: Push, cancel: threading.Event) -> Version:
            return service.remove_version(self.ws, kb_name, number)

        def done(version: Version) -> None:
            self.status_label.setText(f"Removed version {number} of {kb_name}.")

        self._start(work, "kb-remove-version", done)

    # -- errors, shutdown -------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        self.banner.show_message(message)

    def hide_error(self) -> None:
        self.banner.hide()

    def shutdown(self) -> None:
        self.jobs.shutdown()
