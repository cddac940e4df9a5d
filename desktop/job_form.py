"""The Training tab's job form: which job (generator, embedder, alternating rounds), on which
dataset and base, where it runs, every spec field, and the Start / Cancel buttons.

It describes a job (:meth:`JobForm.spec`); starting it is the tab's.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, replace
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.training.gpu_env import GpuStatus, setup_gpu_env
from core.training.rounds import RoundsPlan
from core.training.spec import PRESET_NOTES, PRESETS, TrainSpec
from core.workspace import Workspace
from desktop import embedder_runs as er
from desktop.colab_panel import ColabPanel
from desktop.fit import VerticalScroll
from desktop.scaffold import hint, section_title
from desktop.spec_fields import SpecFields
from desktop.tasks import JobGroup, Push
from desktop.training_lists import BUNDLED

LOCAL_HINT = "Write a checkpoint and stop; Resume continues"


class JobForm(QWidget):
    kind_changed = Signal(str)
    lists_stale = Signal()
    """What the lists say may have changed: the Colab rows came into view (the colab CLI's
    status is worth reading), the GPU environment's set-up ended."""
    gpu_said = Signal(str)
    """A line of the GPU environment's set-up."""
    status_message = Signal(str)

    def __init__(
        self,
        workspace: Workspace,
        settings: QSettings,
        jobs: JobGroup,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.settings = settings
        self.jobs = jobs
        self._models: list[str] = []
        self._embedders: list[tuple[str, str]] = []
        self._labels: dict[str, str] = {}
        lcol = QVBoxLayout(self)
        lcol.setContentsMargins(12, 12, 6, 12)
        lcol.addWidget(section_title("Train", self))
        pick = QFormLayout()
        self._pick = pick
        self.kind_combo = QComboBox(self)
        for kind, label in er.JOB_KINDS:
            self.kind_combo.addItem(label, kind)
        self.kind_combo.setToolTip(
            "Generator: LoRA on the model that writes the trace. Embedder: the sentence "
            "embedder the search uses, tuned on the dataset's questions and their chunks"
        )
        self.kind_combo.currentIndexChanged.connect(
            lambda _i: self.set_kind(str(self.kind_combo.currentData()))
        )
        pick.addRow("Job", self.kind_combo)
        self.dataset_combo = QComboBox(self)
        self.dataset_combo.setPlaceholderText("no dataset yet: make one in the Dataset tab")
        self.base_combo = QComboBox(self)
        self.base_button = QPushButton("Other…", self)
        self.base_button.setToolTip("A Hugging Face model folder or a .gguf file")
        self.base_button.clicked.connect(self.choose_base)
        base_row = QHBoxLayout()
        base_row.addWidget(self.base_combo, 1)
        base_row.addWidget(self.base_button)
        self.preset_combo = QComboBox(self)
        self.preset_combo.currentIndexChanged.connect(self._preset_chosen)
        self.name_edit = QLineEdit(self)
        self.name_edit.setPlaceholderText("run name (also the tuned model's name)")
        pick.addRow("Dataset", self.dataset_combo)
        self._base_label = QLabel("Base model", self)
        pick.addRow(self._base_label, base_row)
        pick.addRow("Preset", self.preset_combo)
        # What the chosen preset is for, in one line.
        self.preset_note = hint("", self)
        pick.addRow("", self.preset_note)
        pick.addRow("Name", self.name_edit)
        self.where_combo = QComboBox(self)
        self.where_combo.addItem("This computer", "local")
        self.where_combo.addItem("Colab GPU (the colab CLI)", "colab")
        self.where_combo.setToolTip(
            "Colab: the job runs as a notebook on a Colab GPU runtime; the loss streams here "
            "and the tuned model is fetched, checked and registered"
        )
        pick.addRow("Where", self.where_combo)
        self.colab = ColabPanel(workspace, jobs, lambda: (self.spec(), self.name), self)
        self.colab.add_rows(pick)
        self.where_combo.currentIndexChanged.connect(lambda _i: self.show_where())
        lcol.addLayout(pick)

        self.fields = SpecFields(self)
        scroll = VerticalScroll(self.fields, self)
        scroll.setFrameShape(QFrame.Shape.StyledPanel)
        lcol.addWidget(scroll, 1)

        self.gpu_label = hint("", self)
        self.gpu_button = QPushButton("Set up GPU environment", self)
        self.gpu_button.clicked.connect(self.setup_gpu)
        self.gpu_button.hide()
        lcol.addWidget(self.gpu_label)
        lcol.addWidget(self.gpu_button)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training", self)
        self.start_button.setObjectName("primary")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip(LOCAL_HINT)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        lcol.addLayout(buttons)

    # -- the job kind, where it runs ----------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.kind_combo.currentData() or "generator")

    @property
    def where(self) -> str:
        return str(self.where_combo.currentData() or "local")

    @property
    def name(self) -> str:
        """The run name typed ('' for one made from the dataset's)."""
        return self.name_edit.text().strip()

    def set_kind(self, kind: str) -> None:
        """Show the form of a generator or an embedder job: its presets, bases and rows."""
        if self.kind_combo.currentData() != kind:
            self.kind_combo.setCurrentIndex(max(0, self.kind_combo.findData(kind)))
            return  # the combo's signal comes back here
        embedder = kind == "embedder"
        rounds = kind == "alternating"  # the form holds the generator's settings
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        for name, values in PRESETS.items():
            if values.get("kind", "generator") == ("generator" if rounds else kind):
                self.preset_combo.addItem(name, name)
                note = PRESET_NOTES.get(name, "")
                index = self.preset_combo.count() - 1
                self.preset_combo.setItemData(index, note, Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.blockSignals(False)
        if (embedder or rounds) and self.where != "local":
            self.where_combo.setCurrentIndex(self.where_combo.findData("local"))
        first = "cpu-quick" if not embedder else str(self.preset_combo.itemData(0))
        self.preset_combo.setCurrentIndex(max(0, self.preset_combo.findData(first)))
        self.apply_preset(str(self.preset_combo.currentData()))
        self.fields.set_kind(kind)
        # An embedder trains here, on the CPU or this computer's GPU: no Colab, no hub.
        self._pick.setRowVisible(self.where_combo, not (embedder or rounds))
        self.show_where()
        self.base_button.setVisible(not embedder)
        self._base_label.setText("Base embedder" if embedder else "Base model")
        self.name_edit.setPlaceholderText(
            "run name (also the tuned embedder's name)"
            if embedder
            else (
                "schedule name (its runs: NAME-r1-embedder, NAME-r1-generator, …)"
                if rounds
                else "run name (also the tuned model's name)"
            )
        )
        self.start_button.setText(
            "Start tuning the embedder"
            if embedder
            else ("Start the rounds" if rounds else "Start training")
        )
        self._fill_bases()
        self.kind_changed.emit(kind)

    def show_where(self) -> None:
        remote = self.where == "colab" and self.kind == "generator"
        self.colab.set_shown(remote)
        # This computer's GPU set-up (unsloth): not what a Colab run or an embedder uses.
        self.gpu_label.setVisible(not remote and self.kind != "embedder")
        if self.kind == "embedder":
            self.gpu_button.clicked.connect(self.setup_gpu)
        self.gpu_button.hide()
        self.cancel_button.setToolTip(
            "Stop the remote run and release the Colab runtime" if remote else LOCAL_HINT
        )
        if remote:
            self.colab.looking()
            self.lists_stale.emit()
            if self.preset_combo.currentData() != "gpu-standard":
                self.preset_combo.setCurrentIndex(self.preset_combo.findData("gpu-standard"))

    def row_visible(self, field: QWidget) -> bool:
        """Whether the row of this field (of the form or of its spec fields) shows."""
        if self._pick.indexOf(field) >= 0:
            return self._pick.isRowVisible(field)
        return self.fields.row_visible(field)

    def set_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)

    # -- the spec <-> the form ------------------------------------------------------------------
    def _preset_chosen(self, _index: int) -> None:
        name = self.preset_combo.currentData()
        if name:
            self.apply_preset(str(name))

    def apply_preset(self, name: str) -> None:
        self.fields.show_spec(TrainSpec().with_preset(name))
        note = PRESET_NOTES.get(name, "")
        self.preset_note.setText(note)
        self.preset_note.setVisible(bool(note))
        self.preset_combo.setToolTip(note)

    def spec(self) -> TrainSpec:
        """The spec the form describes (checked when the job is prepared, not here)."""
        preset = str(self.preset_combo.currentData() or "cpu-quick")
        return self.fields.read(
            replace(
                TrainSpec().with_preset(preset),
                dataset=str(self.dataset_combo.currentData() or ""),
                base=str(self.base_combo.currentData() or BUNDLED),
            )
        )

    def rounds_plan(self) -> RoundsPlan:
        """The alternating schedule the form describes: its generator steps take the form's
        settings."""
        spec = self.spec()
        embedder_only = {"negatives", "recall_k", "eval_passages", "kb"}
        generator = {
            k: v
            for k, v in asdict(spec).items()
            if k not in ("dataset", "base", "kind") and k not in embedder_only
        }
        return RoundsPlan(
            name=self.name or f"{spec.dataset}-rounds",
            dataset=spec.dataset,
            rounds=self.fields.rounds_spin.value(),
            base=spec.base,
            generator_preset=str(self.preset_combo.currentData() or "cpu-quick"),
            generator=generator,
        )

    # -- the lists ----------------------------------------------------------------------------
    def set_lists(
        self,
        datasets: list[str],
        models: list[str],
        embedders: list[tuple[str, str]],
        labels: dict[str, str] | None = None,
    ) -> None:
        """``labels``: how a model shows (``name — worse than base``), by name."""
        want = self.dataset_combo.currentData()
        self.dataset_combo.clear()
        for name in datasets:
            self.dataset_combo.addItem(name, name)
        index = self.dataset_combo.findData(want) if want else 0
        self.dataset_combo.setCurrentIndex(max(0, index) if datasets else -1)
        self._models, self._embedders = models, embedders
        self._labels = dict(labels or {})
        self._fill_bases()

    def set_gpu(self, gpu: GpuStatus) -> None:
        self.gpu_label.setText(gpu.sentence)
        self.gpu_button.setVisible(
            gpu.nvidia and not gpu.env_ready and self.where == "local" and self.kind != "embedder"
        )

    def _fill_bases(self) -> None:
        base = self.base_combo.currentData()
        self.base_combo.clear()
        if self.kind == "embedder":
            for name, label in self._embedders:
                self.base_combo.addItem(label, name)
            if not self._embedders:
                self.base_combo.addItem("all-MiniLM-L6-v2 (bundled)", BUNDLED)
        else:
            self.base_combo.addItem("SmolLM2-135M (bundled)", BUNDLED)
            for name in self._models:
                self.base_combo.addItem(self._labels.get(name, name), name)
            for path in self._other_bases():
                self.base_combo.addItem(Path(path).name, path)
        self.base_combo.setCurrentIndex(max(0, self.base_combo.findData(base)))

    def _other_bases(self) -> list[str]:
        value = self.settings.value("training/bases", [])
        if isinstance(value, str):
            return [value] if value else []
        return [str(v) for v in value] if isinstance(value, list | tuple) else []

    def choose_base(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A Hugging Face model folder")
        if not folder:
            return
        bases = self._other_bases()
        if folder not in bases:
            bases.append(folder)
            self.settings.setValue("training/bases", bases)
        self.base_combo.addItem(Path(folder).name, folder)
        self.base_combo.setCurrentIndex(self.base_combo.count() - 1)

    def setup_gpu(self) -> None:
        """Make this computer's GPU environment (unsloth), saying each step."""
        self.gpu_button.setEnabled(False)
        layout = self.ws.layout

        def work(push: Push, cancel: threading.Event) -> int:
            return setup_gpu_env(layout, say=push)

        def lines(items: list[object]) -> None:
            for line in items:
                self.gpu_said.emit(str(line))

        def finished() -> None:
            self.gpu_button.setEnabled(True)
            self.lists_stale.emit()

        self.jobs.start(
            work,
            "gpu-setup",
            on_items=lines,
            on_result=lambda code: self.status_message.emit(
                "GPU environment ready." if code == 0 else "GPU set-up failed: see the log."
            ),
            on_finished=finished,
        )
