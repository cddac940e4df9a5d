"""Settings dialog over the core's TOML config (plus the data folder, kept in QSettings).

The form is built from the config dataclasses, so a new setting shows up here
without a second list to keep in sync; validation is the dataclasses' own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.config import AppConfig
from core.errors import ConfigError
from core.workspace import Workspace

DATA_DIR_KEY = "data_dir"
SECTIONS = [
    ("loop", "Search loop"),
    ("generation", "Generation"),
    ("retrieval", "Retrieval"),
    ("chunking", "Chunking"),
]
CHOICES: dict[tuple[str, str], list[str]] = {
    ("loop", "grammar"): ["auto", "on", "off"],
    ("loop", "first_query"): ["auto", "question", "model"],
    ("retrieval", "method"): ["hybrid", "dense", "bm25"],
}
LABELS = {
    "max_rounds": "Most search rounds",
    "min_rounds": "Fewest search rounds",
    "max_block_tokens": "Most tokens per block",
    "max_total_tokens": "Most tokens per search turn",
    "grammar": "Force tags with a grammar",
    "first_query": "First search written by",
    "temperature": "Temperature",
    "top_p": "Top-p",
    "repeat_penalty": "Repeat penalty",
    "seed": "Seed",
    "n_ctx": "Context window (tokens)",
    "presence_penalty": "Presence penalty",
    "frequency_penalty": "Frequency penalty",
    "no_repeat_ngram": "No repeated n-grams of size",
    "n_threads": "CPU threads (0 = auto)",
    "answer_max_tokens": "Most answer tokens",
    "k": "Passages per search",
    "method": "Search method",
    "size": "Chunk size (characters)",
    "overlap": "Overlap (characters)",
    "min_chars": "Drop chunks shorter than",
}


class SettingsDialog(QDialog):
    def __init__(
        self, workspace: Workspace, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.settings = settings
        self.setWindowTitle("Settings")
        self.resize(520, 460)
        self._editors: dict[tuple[str, str], QWidget] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 12)

        folder_row = QHBoxLayout()
        self.data_dir = QLineEdit(str(workspace.layout.root), self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        folder_row.addWidget(QLabel("Data folder", self))
        folder_row.addWidget(self.data_dir, 1)
        folder_row.addWidget(browse)
        layout.addLayout(folder_row)
        note = QLabel(
            "Knowledge bases, conversations, models and logs live in the data folder. "
            "A new folder is used from the next start.",
            self,
        )
        note.setObjectName("hint")
        note.setWordWrap(True)
        layout.addWidget(note)

        tabs = QTabWidget(self)
        for section, title in SECTIONS:
            tabs.addTab(self._section_form(section), title)
        layout.addWidget(tabs, 1)
        self.error_label = QLabel("", self)
        self.error_label.setObjectName("errorBanner")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        layout.addWidget(self.error_label)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults,
            self,
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        restore = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        restore.clicked.connect(self.restore_defaults)
        layout.addWidget(buttons)

    def _section_form(self, section: str) -> QWidget:
        page = QWidget(self)
        form = QFormLayout(page)
        form.setContentsMargins(12, 12, 12, 12)
        form.setVerticalSpacing(8)
        current = getattr(self.ws.config, section)
        for f in dataclasses.fields(current):
            editor = self._editor(section, f.name, getattr(current, f.name))
            self._editors[(section, f.name)] = editor
            form.addRow(LABELS.get(f.name, f.name.replace("_", " ")), editor)
        if section == "generation":
            hint = QLabel("Changes to the context window and threads apply after a restart.", page)
            hint.setObjectName("hint")
            hint.setWordWrap(True)
            form.addRow(hint)
        return page

    def _editor(self, section: str, name: str, value: Any) -> QWidget:
        choices = CHOICES.get((section, name))
        if choices:
            combo = QComboBox(self)
            combo.addItems(choices)
            combo.setCurrentText(str(value))
            return combo
        if isinstance(value, float):
            spin = QDoubleSpinBox(self)
            spin.setDecimals(2)
            spin.setRange(-1000.0, 1000.0)
            spin.setSingleStep(0.05)
            spin.setValue(value)
            return spin
        if isinstance(value, int):
            ispin = QSpinBox(self)
            ispin.setRange(-1, 1_000_000)
            ispin.setValue(value)
            return ispin
        return QLineEdit(str(value), self)

    def _set_editor(self, editor: QWidget, value: Any) -> None:
        if isinstance(editor, QComboBox):
            editor.setCurrentText(str(value))
        elif isinstance(editor, QDoubleSpinBox | QSpinBox):
            editor.setValue(value)
        elif isinstance(editor, QLineEdit):
            editor.setText(str(value))

    @staticmethod
    def _read(editor: QWidget) -> Any:
        if isinstance(editor, QComboBox):
            return editor.currentText()
        if isinstance(editor, QDoubleSpinBox | QSpinBox):
            return editor.value()
        if isinstance(editor, QLineEdit):
            return editor.text()
        raise TypeError(type(editor))

    def editor(self, section: str, name: str) -> QWidget:
        return self._editors[(section, name)]

    @Slot()
    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Data folder", self.data_dir.text())
        if folder:
            self.data_dir.setText(folder)

    @Slot()
    def restore_defaults(self) -> None:
        defaults = AppConfig()
        for (section, name), editor in self._editors.items():
            self._set_editor(editor, getattr(getattr(defaults, section), name))

    def build_config(self) -> AppConfig:
        """The edited config; raises ConfigError naming the bad field."""
        data = self.ws.config.to_dict()
        for (section, name), editor in self._editors.items():
            data[section][name] = self._read(editor)
        return AppConfig.from_dict(data)

    @Slot()
    def save(self) -> None:
        try:
            config = self.build_config()
        except ConfigError as exc:
            self.error_label.setText(str(exc))
            self.error_label.show()
            return
        for section, _ in SECTIONS:
            setattr(self.ws.config, section, getattr(config, section))
        try:
            self.ws.save_config()
        except OSError as exc:
            self.error_label.setText(f"The settings could not be written ({exc}).")
            self.error_label.show()
            return
        folder = self.data_dir.text().strip()
        if folder and Path(folder).expanduser() != self.ws.layout.root:
            self.settings.setValue(DATA_DIR_KEY, folder)
        self.accept()
