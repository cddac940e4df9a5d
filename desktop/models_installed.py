"""The Models tab's list of installed models: set the default, add a file or folder, delete."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import CotragError
from core.models import service
from core.models.installed import ModelEntry
from core.workspace import Workspace
from desktop.confirm import confirm_destructive
from desktop.download_row import format_bytes
from desktop.tables import read_only, stretch_column

INSTALLED_COLUMNS = ("Name", "Kind", "Format", "Size", "Quantization", "Licence", "Template",
                     "From")  # fmt: skip


class InstalledModels(QGroupBox):
    """Every model the app can run, the default marked."""

    models_changed = Signal()
    status_message = Signal(str)
    error = Signal(str)
    error_cleared = Signal()

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__("Installed models", parent)
        self.ws = workspace
        icol = QVBoxLayout(self)
        self.table = read_only(QTableWidget(0, len(INSTALLED_COLUMNS), self))
        self.table.setHorizontalHeaderLabels(INSTALLED_COLUMNS)
        stretch_column(self.table, 7)
        self.table.itemSelectionChanged.connect(self.update_buttons)
        icol.addWidget(self.table)
        buttons = QHBoxLayout()
        self.add_file_button = QPushButton("Add file…", self)
        self.add_file_button.setToolTip("Register a .gguf file where it is (nothing is copied)")
        self.add_file_button.clicked.connect(self.choose_file)
        self.add_folder_button = QPushButton("Add folder…", self)
        self.add_folder_button.setToolTip("Register a Hugging Face or MLX model folder")
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.default_button = QPushButton("Set as default", self)
        self.default_button.setToolTip("The model the chat and the CLI use when none is chosen")
        self.default_button.clicked.connect(self.set_default)
        self.delete_button = QPushButton("Delete…", self)
        self.delete_button.clicked.connect(self.delete_selected)
        for b in (self.add_file_button, self.add_folder_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.default_button)
        buttons.addWidget(self.delete_button)
        icol.addLayout(buttons)

    def refresh(self) -> None:
        keep = self.selected_name()
        entries = service.installed(self.ws)
        default = service.default_name(self.ws)
        self.table.setRowCount(len(entries))
        for row, e in enumerate(entries):
            size = format_bytes(e.size_bytes) if e.present else "files missing"
            template = "yes" if e.chat_template else "no"
            label = e.display_name + (f" — {e.verdict_note}" if e.verdict_note else "")
            name = f"{label} · default" if e.name == default else label
            cells = (name, e.kind, e.format, size, e.quantization or "–", e.licence or "?",
                     template, e.lineage)  # fmt: skip
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, e.name)
                if col == 7:
                    item.setToolTip(e.lineage)
                if col == 0:
                    tips = [f"Its name in commands: {e.name}"]
                    if e.name == default:
                        tips.append("The default: the model the chat and the tools use")
                    if e.guard.get("sentence"):
                        tips.append(str(e.guard["sentence"]))
                    item.setToolTip("\n".join(tips))
                self.table.setItem(row, col, item)
            if e.name == keep:
                self.table.selectRow(row)
        self.update_buttons()

    def selected_name(self) -> str:
        items = self.table.selectedItems()
        return str(items[0].data(Qt.ItemDataRole.UserRole)) if items else ""

    def selected_entry(self) -> ModelEntry | None:
        name = self.selected_name()
        return service.registry(self.ws).find(name) if name else None

    @Slot()
    def update_buttons(self) -> None:
        entry = self.selected_entry()
        self.delete_button.setEnabled(entry is not None and entry.kind != "bundled")
        self.default_button.setEnabled(
            entry is not None and entry.present and entry.name != service.default_name(self.ws)
        )

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
            entry = service.add_local(self.ws, path)
        except CotragError as exc:
            self.error.emit(str(exc))
            return None
        self.error_cleared.emit()
        self._changed(f"Added {entry.name} ({entry.format}).")
        return entry

    @Slot()
    def set_default(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            return
        try:
            service.set_default(self.ws, entry.name)
        except CotragError as exc:
            self.error.emit(str(exc))
            return
        note = f" (note: {entry.guard.get('sentence')})" if entry.verdict == "worse" else ""
        self._changed(f"{entry.name} is the default model now.{note}")

    @Slot()
    def delete_selected(self) -> None:
        entry = self.selected_entry()
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
            deleted = service.delete(self.ws, entry.name)
        except (CotragError, OSError) as exc:
            self.error.emit(f"Could not delete {entry.name}: {exc}")
            return
        self._changed(deleted.message)

    def _changed(self, message: str) -> None:
        self.refresh()
        self.models_changed.emit()
        self.status_message.emit(message)
