"""The Chat tab's toolbar: which knowledge base, which model, which mode a question runs with;
a local GGUF file can be added to the models from here."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QWidget

from core.agent.loop import Mode
from core.errors import CotragError
from core.models.installed import ModelRegistry
from core.workspace import Workspace

MODES: list[tuple[Mode, str]] = [
    ("loop", "Reason & search (loop)"),
    ("rag", "Search once, then answer (rag)"),
    ("closed", "No documents (closed book)"),
]
BUNDLED_LABEL = "SmolLM2-135M (bundled)"


class ChatToolbar(QWidget):
    """Knowledge base, model (with Add model… and Get models…) and mode pickers, in a row."""

    model_added = Signal(Path)
    """A GGUF file was added to the models (and chosen)."""
    failed = Signal(str)
    """A sentence saying why a model could not be added."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        bar = QHBoxLayout(self)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.setSpacing(8)  # the spacing of the tab's column it sits in
        self.kb_combo = QComboBox(self)
        self.kb_combo.setMinimumWidth(160)
        self.kb_combo.setPlaceholderText("no knowledge base")
        self.kb_combo.setToolTip("The knowledge base the model searches")
        self.model_combo = QComboBox(self)
        self.model_combo.setMinimumWidth(200)
        # A name may carry its guard's verdict ("— worse than base"): as wide as it needs.
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model_combo.setToolTip(
            "The generator model: GGUF (llama.cpp), Hugging Face folder (transformers), MLX"
        )
        self.add_model_button = QPushButton("Add model…", self)
        self.add_model_button.setToolTip("Add a local .gguf file (or drop one on this tab)")
        self.add_model_button.clicked.connect(self.choose_model)
        self.get_models_button = QPushButton("Get models…", self)
        self.get_models_button.setToolTip("Search the Hugging Face hub and pull a model")
        self.mode_combo = QComboBox(self)
        for key, label in MODES:
            self.mode_combo.addItem(label, key)
        for text, widget in (("Knowledge base", self.kb_combo), ("Model", self.model_combo)):
            bar.addWidget(self._label(text))
            bar.addWidget(widget)
        bar.addWidget(self.add_model_button)
        bar.addWidget(self.get_models_button)
        bar.addWidget(self._label("Mode"))
        bar.addWidget(self.mode_combo)
        bar.addStretch(1)

    def _label(self, text: str) -> QLabel:
        label = QLabel(text, self)
        label.setObjectName("hint")
        return label

    # -- what a question runs with -----------------------------------------------------
    @property
    def kb(self) -> str:
        return self.kb_combo.currentText()

    @property
    def model(self) -> str | None:
        """The chosen model's name, file or folder; None is the bundled model."""
        return self.model_combo.currentData() or None

    @property
    def mode(self) -> Mode:
        return self.mode_combo.currentData()

    def set_enabled_for_run(self, running: bool) -> None:
        for widget in (self.kb_combo, self.model_combo, self.mode_combo, self.add_model_button):
            widget.setEnabled(not running)

    # -- filling ----------------------------------------------------------------------
    def set_knowledge_bases(self, names: list[str], current: str) -> None:
        """The knowledge bases to pick from; keeps the choice when it still exists."""
        keep = self.kb_combo.currentText()
        self.kb_combo.clear()
        self.kb_combo.addItems(names)
        chosen = keep if keep in names else current
        if chosen:
            self.kb_combo.setCurrentText(chosen)

    def refresh_models(self, select: str | None = None) -> None:
        """The registry's runnable models: bundled, pulled, added, tuned (and the configured
        model when it is a path the registry does not know); ``select`` (else the
        configured model) is chosen."""
        registry = ModelRegistry(self.ws.layout)
        configured = self.ws.config.model
        combo = self.model_combo
        combo.clear()
        combo.addItem(BUNDLED_LABEL, "")
        for entry in [*registry.library(), *registry.tuned()]:
            if not entry.present or (entry.kind == "tuned" and not entry.variants):
                continue
            label = {"pulled": "hub", "added": entry.format, "tuned": "tuned"}[entry.kind]
            # A tuned model with a guard verdict reads "name — worse than base".
            text = entry.picker_label if entry.verdict_note else f"{entry.name} ({label})"
            combo.addItem(text, entry.name)
            tip = entry.describe()
            if entry.guard.get("sentence"):
                tip += f"; {entry.guard['sentence']}"
            if entry.kind == "tuned":
                tip += f"; runs {entry.default_variant}"
            combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        if configured and combo.findData(configured) < 0:
            combo.addItem(Path(configured).name, configured)
            combo.setItemData(combo.count() - 1, configured, Qt.ItemDataRole.ToolTipRole)
        want = select if select is not None else configured
        index = combo.findData(want) if want else 0
        combo.setCurrentIndex(max(0, index))

    # -- adding a model -----------------------------------------------------------------
    @Slot()
    def choose_model(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Add a GGUF model", "", "GGUF models (*.gguf);;All files (*)"
        )
        if file:
            self.add_model(Path(file))

    def add_model(self, path: Path) -> None:
        """Add a local GGUF file to the models and choose it (``failed`` says why not)."""
        if path.suffix.lower() != ".gguf" or not path.is_file():
            self.failed.emit(f"{path.name} is not a .gguf model file; choose a GGUF file.")
            return
        try:
            entry = ModelRegistry(self.ws.layout).add_local(path)
        except CotragError as exc:
            self.failed.emit(str(exc))
            return
        self.refresh_models(select=entry.name)
        self.model_added.emit(path)
