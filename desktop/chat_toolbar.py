"""The Chat tab's toolbar: which knowledge base, which model, which mode a question runs with;
a local GGUF file can be added to the models from here."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from core.agent.loop import Mode
from core.errors import CotragError
from core.models.installed import ModelRegistry
from core.workspace import Workspace
from desktop.fit import fit_combo

MODES: list[tuple[Mode, str]] = [
    ("loop", "Reason & search (loop)"),
    ("rag", "Search once, then answer (rag)"),
    ("closed", "No documents (closed book)"),
]
BUNDLED_LABEL = "SmolLM2-135M (bundled)"
KIND_ROLE = Qt.ItemDataRole.UserRole + 1
"""The model combo's items also hold the entry's kind (tuned, pulled, added, bundled)."""
ANSWERERS: list[tuple[str, str]] = [
    ("auto", "auto"),
    ("", "this model"),
    ("base", "its base"),
]


class ChatToolbar(QWidget):
    """Knowledge base and mode pickers on one row; under them the model (with, for a tuned
    model, which model writes the answer), Add model… and Get models…: two rows fit a
    window 1024 pixels wide beside the conversations."""

    model_added = Signal(Path)
    choice_changed = Signal()
    """The knowledge base or the mode changed (Ask may become possible or not)."""
    """A GGUF file was added to the models (and chosen)."""
    failed = Signal(str)
    """A sentence saying why a model could not be added."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(8)  # the spacing of the tab's column it sits in
        self.kb_combo = QComboBox(self)
        self.kb_combo.setPlaceholderText("no knowledge base")
        self.kb_combo.setToolTip("The knowledge base the model searches")
        fit_combo(self.kb_combo, 12)
        self.model_combo = QComboBox(self)
        self.model_combo.setToolTip(
            "The generator model: GGUF (llama.cpp), Hugging Face folder (transformers), MLX"
        )
        # A name may carry its guard's verdict ("— worse than base"): shortened where the
        # row is narrow, whole in the tooltip.
        fit_combo(self.model_combo, 16)
        self.add_model_button = QPushButton("Add model…", self)
        self.add_model_button.setToolTip("Add a local .gguf file (or drop one on this tab)")
        self.add_model_button.clicked.connect(self.choose_model)
        self.get_models_button = QPushButton("Get models…", self)
        self.get_models_button.setToolTip("Search the Hugging Face hub and pull a model")
        self.answer_combo = QComboBox(self)
        for key, label in ANSWERERS:
            self.answer_combo.addItem(label, key)
        # The setting chooses first (``loop.answer_model``); the choice here is per run.
        self.answer_combo.setCurrentIndex(
            max(0, self.answer_combo.findData(workspace.config.loop.answer_model.strip()))
        )
        self.answer_combo.setToolTip(
            "The model that writes the answer from the passages: the tuned model itself, "
            "the model it was trained from (it searches, its base reads), or auto: whichever "
            "of the two its guard measured better on held-out questions"
        )
        self.answer_label = self._label("Answer with")
        self.mode_combo = QComboBox(self)
        for key, label in MODES:
            self.mode_combo.addItem(label, key)
        rows = (
            ("Knowledge base", self.kb_combo, [self._label("Mode"), self.mode_combo]),
            (
                "Model",
                self.model_combo,
                [
                    self.answer_label,
                    self.answer_combo,
                    self.add_model_button,
                    self.get_models_button,
                ],
            ),
        )
        for row, (text, combo, rest) in enumerate(rows):
            grid.addWidget(self._label(text), row, 0)
            grid.addWidget(combo, row, 1)
            line = QHBoxLayout()
            line.setSpacing(8)
            for widget in rest:
                line.addWidget(widget)
            line.addStretch(1)
            grid.addLayout(line, row, 2)
        grid.setColumnStretch(2, 1)
        self.model_combo.currentIndexChanged.connect(self._show_answerer)
        self._show_answerer()
        self.kb_combo.currentIndexChanged.connect(lambda _i: self.choice_changed.emit())
        self.mode_combo.currentIndexChanged.connect(lambda _i: self.choice_changed.emit())

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

    def missing(self) -> str:
        """Why a question cannot be asked with these choices ("" when it can)."""
        if self.mode != "closed" and not self.kb:
            return (
                "No knowledge base yet: build one in the Knowledge base tab, or set the mode "
                "to closed book"
            )
        return ""

    @property
    def tuned(self) -> bool:
        """Whether the chosen model was tuned here (it has a base to answer with)."""
        return self.model_combo.currentData(KIND_ROLE) == "tuned"

    @property
    def answer_model(self) -> str | None:
        """The answer stage's model for a tuned model: "auto" (what its guard found), ""
        (itself) or "base"; None (the setting, ``loop.answer_model``) for any other model."""
        return str(self.answer_combo.currentData() or "") if self.tuned else None

    @Slot()
    def _show_answerer(self) -> None:
        tuned = self.tuned
        self.answer_label.setVisible(tuned)
        self.answer_combo.setVisible(tuned)

    def set_enabled_for_run(self, running: bool) -> None:
        widgets = (
            self.kb_combo,
            self.model_combo,
            self.answer_combo,
            self.mode_combo,
            self.add_model_button,
        )
        for widget in widgets:
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
        combo.setItemData(0, "bundled", KIND_ROLE)
        for entry in [*registry.library(), *registry.tuned()]:
            if not entry.present or (entry.kind == "tuned" and not entry.variants):
                continue
            label = {"pulled": "hub", "added": entry.format, "tuned": "tuned"}[entry.kind]
            # A tuned model with a guard verdict reads "name — worse than base".
            text = entry.picker_label if entry.verdict_note else f"{entry.name} ({label})"
            combo.addItem(text, entry.name)
            combo.setItemData(combo.count() - 1, entry.kind, KIND_ROLE)
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
        self._show_answerer()

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
