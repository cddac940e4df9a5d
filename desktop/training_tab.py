"""Training tab: pick a dataset and a base model, start a LoRA run in a child process, watch
the loss fall, Cancel / Resume, and the history of runs.

The worker is ``cotrag-train-worker`` (see :mod:`core.training.worker`) run through
QProcess; its events arrive on stdout behind a sentinel and are parsed as the CLI
parses them. Closing the window cancels a running job (it checkpoints first).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QProcess, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.training.events import FINAL, parse_line
from core.training.spec import EXPORTS, PRESETS, TrainSpec
from core.workspace import Workspace
from desktop import embedder_runs as er
from desktop.confirm import confirm_destructive
from desktop.error_banner import ErrorBanner
from desktop.loss_chart import LossChart
from desktop.reembed_panel import ReembedPanel
from desktop.tasks import Job, JobGroup, Push

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ["Run", "State", "Step", "Loss", "Validation", "Model"]
CANCEL_GRACE_MS = 90_000
BUNDLED = "default"


def duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float | int) else "–"


class TrainingTab(QWidget):
    status_message = Signal(str)
    error = Signal(str)
    models_changed = Signal()
    run_state_changed = Signal(bool)

    def __init__(
        self, workspace: Workspace, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.settings = settings
        self.jobs = JobGroup(self, self.show_error)
        self.process: QProcess | None = None
        self.remote: Job | None = None
        self._rounds = False
        """``remote`` drives an alternating schedule here (not a Colab run)."""
        """A run on Colab: a background job driving the `colab` CLI."""
        self.run_name = ""
        self._buffer = ""
        self._final: dict[str, Any] = {}
        self._cancelled = False
        self._started = 0.0
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)
        self._lists: dict[str, list[Any]] = {"models": [], "embedders": []}
        self._recall: dict[str, Any] = {"before": {}, "now": {}, "questions": 0, "k": 5}
        self._build()
        self.set_kind("generator")
        self._show_where()
        self._set_running(False)

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter = split
        root.addWidget(split)

        left = QWidget(split)
        lcol = QVBoxLayout(left)
        lcol.setContentsMargins(12, 12, 6, 12)
        title = QLabel("Train", left)
        title.setObjectName("sectionTitle")
        lcol.addWidget(title)
        pick = QFormLayout()
        self.kind_combo = QComboBox(left)
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
        self.dataset_combo = QComboBox(left)
        self.dataset_combo.setPlaceholderText("no dataset yet: make one in the Dataset tab")
        self.base_combo = QComboBox(left)
        self.base_button = QPushButton("Other…", left)
        self.base_button.setToolTip("A Hugging Face model folder or a .gguf file")
        self.base_button.clicked.connect(self.choose_base)
        base_row = QHBoxLayout()
        base_row.addWidget(self.base_combo, 1)
        base_row.addWidget(self.base_button)
        self.preset_combo = QComboBox(left)
        self.preset_combo.currentIndexChanged.connect(self._preset_chosen)
        self.name_edit = QLineEdit(left)
        self.name_edit.setPlaceholderText("run name (also the tuned model's name)")
        pick.addRow("Dataset", self.dataset_combo)
        self._base_label = QLabel("Base model", left)
        pick.addRow(self._base_label, base_row)
        pick.addRow("Preset", self.preset_combo)
        pick.addRow("Name", self.name_edit)
        self.where_combo = QComboBox(left)
        self.where_combo.addItem("This computer", "local")
        self.where_combo.addItem("Colab GPU (the colab CLI)", "colab")
        self.where_combo.setToolTip(
            "Colab: the job runs as a notebook on a Colab GPU runtime; the loss streams here "
            "and the tuned model is fetched, checked and registered"
        )
        self.gpu_combo = QComboBox(left)
        from core.training.colab import GPUS

        for name in GPUS:
            self.gpu_combo.addItem(name, name)
        self.export_colab_button = QPushButton("Export for Colab…", left)
        self.export_colab_button.setToolTip(
            "Save the notebook and the dataset, to upload to Colab by hand"
        )
        self.export_colab_button.clicked.connect(self.export_for_colab)
        gpu_row = QHBoxLayout()
        self._gpu_row = gpu_row
        gpu_row.addWidget(self.gpu_combo, 1)
        gpu_row.addWidget(self.export_colab_button)
        self.push_repo_edit = QLineEdit(left)
        self.push_repo_edit.setPlaceholderText("optional: a private hub repo, e.g. you/cotrag-runs")
        self.push_repo_edit.setToolTip(
            "The run pushes its results there (needs an access token, set in the Models tab) "
            "and the app pulls them back; empty: they come back through the colab CLI"
        )
        self.fetch_button = QPushButton("Fetch…", left)
        self.fetch_button.setToolTip(
            "Pull the results a notebook run by hand pushed to the hub repo, and register them"
        )
        self.fetch_button.clicked.connect(self.ask_fetch)
        push_row = QHBoxLayout()
        self._push_row = push_row
        push_row.addWidget(self.push_repo_edit, 1)
        push_row.addWidget(self.fetch_button)
        self.colab_label = QLabel("", left)
        self.colab_label.setObjectName("hint")
        self.colab_label.setWordWrap(True)
        pick.addRow("Where", self.where_combo)
        pick.addRow("GPU", gpu_row)
        pick.addRow("Hub repo", push_row)
        pick.addRow("", self.colab_label)
        self.where_combo.currentIndexChanged.connect(lambda _i: self._show_where())
        self._pick = pick
        lcol.addLayout(pick)

        # The spec form, in a scroll area: every field of TrainSpec a user tunes.
        form_host = QWidget(left)
        form = QFormLayout(form_host)
        form.setContentsMargins(0, 0, 0, 0)
        self.lora_r = self._spin(form, "LoRA rank (r)", 1, 512)
        self.lora_alpha = self._spin(form, "LoRA alpha", 1, 1024)
        self.lora_dropout = self._double(form, "LoRA dropout", 0.0, 0.9, 2, 0.05)
        self.learning_rate = QLineEdit(form_host)
        self.learning_rate.setToolTip("e.g. 2e-4")
        form.addRow("Learning rate", self.learning_rate)
        self.epochs = self._double(form, "Epochs", 0.0, 100.0, 2, 0.5)
        self.max_steps = self._spin(form, "Max steps (0 = epochs)", 0, 1_000_000)
        self.batch_size = self._spin(form, "Batch size", 1, 512)
        self.grad_accum = self._spin(form, "Gradient accumulation", 1, 512)
        self.warmup = self._spin(form, "Warm-up steps", 0, 100_000)
        self.max_seq_len = self._spin(form, "Max sequence length", 64, 131072)
        self.eval_every = self._spin(form, "Validate every (steps)", 0, 100_000)
        self.checkpoint_every = self._spin(form, "Checkpoint every (steps)", 0, 100_000)
        self.seed = self._spin(form, "Seed", 0, 2**31 - 1)
        self.negatives = self._spin(form, "Hard negatives", 0, 32)
        self.negatives.setToolTip(
            "Per question: passages the search returned that do not answer it, next to the "
            "other questions' answers in the batch"
        )
        self.rounds_spin = self._spin(form, "Rounds", 1, 20)
        self.rounds_spin.setValue(2)
        self.rounds_spin.setToolTip(
            "Each round: tune the embedder, re-embed the knowledge base, trace the questions "
            "again through the tuned search, tune the generator on those traces"
        )
        self.eval_passages = self._spin(form, "Recall among (passages)", 20, 1_000_000)
        self.eval_passages.setToolTip(
            "The held-out questions are searched among this many passages: the held-out "
            "documents' chunks, the distractors, then a sample of the rest"
        )
        self.mask_box = QCheckBox("No loss on passages and notes", form_host)
        self.mask_box.setToolTip(
            "Train only on what the model wrote: never on the retrieved passages, the loop's "
            "notes or the tags it closed"
        )
        form.addRow("Mask", self.mask_box)
        self.four_bit = QCheckBox("4-bit base weights (GPU only)", form_host)
        form.addRow("QLoRA", self.four_bit)
        self.checkpointing = QCheckBox("Gradient checkpointing", form_host)
        self.checkpointing.setToolTip("Far less memory for long rows, about a third slower")
        form.addRow("Memory", self.checkpointing)
        self.engine_combo = QComboBox(form_host)
        for engine in ("auto", "torch", "unsloth"):
            self.engine_combo.addItem(engine, engine)
        form.addRow("Engine", self.engine_combo)
        exports = QWidget(form_host)
        egrid = QGridLayout(exports)  # two rows: five boxes do not fit the form's width
        egrid.setContentsMargins(0, 0, 0, 0)
        self.export_boxes: dict[str, QCheckBox] = {}
        for i, kind in enumerate(EXPORTS):
            box = QCheckBox(kind, exports)
            self.export_boxes[kind] = box
            egrid.addWidget(box, i // 3, i % 3)
        form.addRow("Exports", exports)
        exports.setToolTip(
            "lora: the adapter as a GGUF LoRA; merged: the merged Hugging Face folder; f16, "
            "q8_0, q4_k_m: merged GGUF files for llama.cpp"
        )
        self.tracking_combo = QComboBox(form_host)
        for kind in ("none", "tensorboard", "mlflow"):
            self.tracking_combo.addItem(kind, kind)
        form.addRow("Tracking", self.tracking_combo)
        self._form = form
        self._generator_rows: list[QWidget] = [
            self.lora_r, self.lora_alpha, self.lora_dropout, self.grad_accum, self.mask_box,
            self.four_bit, self.checkpointing, self.engine_combo, exports, self.tracking_combo,
        ]  # fmt: skip
        self._embedder_rows: list[QWidget] = [self.negatives, self.eval_passages]
        scroll = QScrollArea(left)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(form_host)
        lcol.addWidget(scroll, 1)

        self.gpu_label = QLabel("", left)
        self.gpu_label.setObjectName("hint")
        self.gpu_label.setWordWrap(True)
        self.gpu_button = QPushButton("Set up GPU environment", left)
        self.gpu_button.clicked.connect(self.setup_gpu)
        self.gpu_button.hide()
        lcol.addWidget(self.gpu_label)
        lcol.addWidget(self.gpu_button)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training", left)
        self.start_button.setObjectName("primary")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel", left)
        self.cancel_button.setToolTip("Write a checkpoint and stop; Resume continues")
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        lcol.addLayout(buttons)

        right = QWidget(split)
        rcol = QVBoxLayout(right)
        rcol.setContentsMargins(6, 12, 12, 12)
        self.banner = ErrorBanner(right)
        rcol.addWidget(self.banner)
        self.status_label = QLabel("No run yet.", right)
        self.status_label.setObjectName("sectionTitle")
        rcol.addWidget(self.status_label)
        self.recall_label = QLabel("", right)
        self.recall_label.setObjectName("recallLine")
        self.recall_label.setStyleSheet("font-weight: 600; color: #047857;")
        self.recall_label.setToolTip(
            "How often the chunk that answers a held-out question is among the first k found, "
            "with the base embedder (before) and the tuned one"
        )
        self.recall_label.hide()
        rcol.addWidget(self.recall_label)
        self.progress = QProgressBar(right)
        self.progress.setTextVisible(True)
        rcol.addWidget(self.progress)
        self.chart = LossChart(right)
        rcol.addWidget(self.chart, 3)
        self.log_view = QPlainTextEdit(right)
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.log_view.setPlaceholderText("What the training process says")
        rcol.addWidget(self.log_view, 2)
        self.reembed_panel = ReembedPanel(self.ws, right)
        self.reembed_panel.status_message.connect(self.status_message)
        self.reembed_panel.hide()
        rcol.addWidget(self.reembed_panel)
        history_title = QLabel("Runs", right)
        history_title.setObjectName("sectionTitle")
        rcol.addWidget(history_title)
        self.history = QTableWidget(0, len(HISTORY_COLUMNS), right)
        self.history.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.history.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.history.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.verticalHeader().hide()
        header = self.history.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(HISTORY_COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.history.itemSelectionChanged.connect(self._on_history_selected)
        rcol.addWidget(self.history, 2)
        hrow = QHBoxLayout()
        self.resume_button = QPushButton("Resume", right)
        self.resume_button.setToolTip("Continue a cancelled or interrupted run from its checkpoint")
        self.resume_button.clicked.connect(self.resume_selected)
        self.delete_run_button = QPushButton("Delete run", right)
        self.delete_run_button.setObjectName("danger")
        self.delete_run_button.clicked.connect(self.delete_selected_run)
        hrow.addStretch(1)
        hrow.addWidget(self.resume_button)
        hrow.addWidget(self.delete_run_button)
        rcol.addLayout(hrow)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([430, 770])

    def _spin(self, form: QFormLayout, label: str, low: int, high: int) -> QSpinBox:
        spin = QSpinBox(self)
        spin.setRange(low, high)
        form.addRow(label, spin)
        return spin

    def _double(
        self, form: QFormLayout, label: str, low: float, high: float, decimals: int, step: float
    ) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(self)
        spin.setRange(low, high)
        spin.setDecimals(decimals)
        spin.setSingleStep(step)
        form.addRow(label, spin)
        return spin

    # -- the job kind ----------------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.kind_combo.currentData() or "generator")

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
        self.preset_combo.blockSignals(False)
        self.preset_combo.setToolTip(
            "embedder: the bundled MiniLM, two passes over the questions on this computer"
            if embedder
            else "cpu-quick: minutes on the bundled model; cpu-full: the whole dataset twice; "
            "gpu-standard: unsloth on an NVIDIA GPU"
        )
        if (embedder or rounds) and self.where != "local":
            self.where_combo.setCurrentIndex(self.where_combo.findData("local"))
        first = "cpu-quick" if not embedder else str(self.preset_combo.itemData(0))
        self.preset_combo.setCurrentIndex(max(0, self.preset_combo.findData(first)))
        self.apply_preset(str(self.preset_combo.currentData()))
        for widget in self._generator_rows:
            self._form.setRowVisible(widget, not embedder)
        for widget in self._embedder_rows:
            self._form.setRowVisible(widget, embedder)
        self._form.setRowVisible(self.rounds_spin, rounds)
        # An embedder trains here, on the CPU or this computer's GPU: no Colab, no hub.
        self._pick.setRowVisible(self.where_combo, not (embedder or rounds))
        self._show_where()
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
        self._show_panel()

    def _preset_chosen(self, _index: int) -> None:
        name = self.preset_combo.currentData()
        if name:
            self.apply_preset(str(name))

    def _fill_bases(self) -> None:
        base = self.base_combo.currentData()
        self.base_combo.clear()
        if self.kind == "embedder":
            for name, label in self._lists["embedders"]:
                self.base_combo.addItem(label, name)
            if not self._lists["embedders"]:
                self.base_combo.addItem("all-MiniLM-L6-v2 (bundled)", BUNDLED)
        else:
            self.base_combo.addItem("SmolLM2-135M (bundled)", BUNDLED)
            for name in self._lists["models"]:
                self.base_combo.addItem(name, name)
            for path in self._other_bases():
                self.base_combo.addItem(Path(path).name, path)
        self.base_combo.setCurrentIndex(max(0, self.base_combo.findData(base)))

    def _show_panel(self, run: dict[str, Any] | None = None) -> None:
        """The re-embed panel shows with the embedder form and with a done embedder run."""
        if run is not None and run.get("kind") == "embedder" and run.get("model"):
            self.reembed_panel.set_embedder(str(run["model"]), str(run.get("kb", "")))
        visible = (
            self.kind == "embedder"
            or (run or {}).get("kind") == "embedder"
            or self.reembed_panel.busy  # a re-embed in progress stays in sight
        )
        if visible and not self.reembed_panel.isVisible():
            self.reembed_panel.refresh()
        self.reembed_panel.setVisible(visible)

    # -- the spec <-> the form ------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        self.show_spec(TrainSpec().with_preset(name))

    def show_spec(self, spec: TrainSpec) -> None:
        self.lora_r.setValue(spec.lora_r)
        self.lora_alpha.setValue(spec.lora_alpha)
        self.lora_dropout.setValue(spec.lora_dropout)
        self.learning_rate.setText(f"{spec.learning_rate:g}")
        self.epochs.setValue(spec.epochs)
        self.max_steps.setValue(spec.max_steps)
        self.batch_size.setValue(spec.batch_size)
        self.grad_accum.setValue(spec.grad_accum)
        self.warmup.setValue(spec.warmup_steps)
        self.max_seq_len.setValue(spec.max_seq_len)
        self.eval_every.setValue(spec.eval_every)
        self.checkpoint_every.setValue(spec.checkpoint_every)
        self.seed.setValue(spec.seed)
        self.negatives.setValue(spec.negatives)
        self.eval_passages.setValue(spec.eval_passages)
        self.mask_box.setChecked(spec.mask_retrieved)
        self.four_bit.setChecked(spec.load_in_4bit)
        self.checkpointing.setChecked(spec.gradient_checkpointing)
        self.engine_combo.setCurrentIndex(max(0, self.engine_combo.findData(spec.engine)))
        for kind, box in self.export_boxes.items():
            box.setChecked(kind in spec.exports)
        self.tracking_combo.setCurrentIndex(max(0, self.tracking_combo.findData(spec.tracking)))

    def spec(self) -> TrainSpec:
        """The spec the form describes (checked by the preflight, not here)."""
        try:
            rate = float(self.learning_rate.text().strip())
        except ValueError:
            rate = float("nan")
        preset = str(self.preset_combo.currentData() or "cpu-quick")
        spec = replace(
            TrainSpec().with_preset(preset),
            dataset=str(self.dataset_combo.currentData() or ""),
            base=str(self.base_combo.currentData() or BUNDLED),
            learning_rate=rate if rate == rate else -1.0,
            epochs=self.epochs.value(),
            max_steps=self.max_steps.value(),
            batch_size=self.batch_size.value(),
            warmup_steps=self.warmup.value(),
            max_seq_len=self.max_seq_len.value(),
            eval_every=self.eval_every.value(),
            checkpoint_every=self.checkpoint_every.value(),
            seed=self.seed.value(),
        )
        if spec.kind == "embedder":  # the preset set the rest (full fine-tune, no exports)
            return replace(
                spec, negatives=self.negatives.value(), eval_passages=self.eval_passages.value()
            )
        return replace(
            spec,
            lora_r=self.lora_r.value(),
            lora_alpha=self.lora_alpha.value(),
            lora_dropout=self.lora_dropout.value(),
            grad_accum=self.grad_accum.value(),
            mask_retrieved=self.mask_box.isChecked(),
            load_in_4bit=self.four_bit.isChecked(),
            gradient_checkpointing=self.checkpointing.isChecked(),
            engine=str(self.engine_combo.currentData()),
            exports=[k for k, box in self.export_boxes.items() if box.isChecked()],
            tracking=str(self.tracking_combo.currentData()),
        )

    # -- lists --------------------------------------------------------------------
    def refresh(self) -> None:
        where = self.where  # read here: the work below runs on another thread

        def work(push: Push, cancel: threading.Event) -> dict[str, Any]:
            from core.dataset.storage import DatasetStore
            from core.knowledge.embedders import list_embedders
            from core.models.registry import ModelRegistry
            from core.training.colab import status as colab_status

            def embs() -> list[Any]:
                return list_embedders(self.ws.layout)

            from core.training.gpu_env import gpu_status
            from core.training.runs import RunStore

            return {
                "datasets": DatasetStore(self.ws.layout.datasets).names(),
                "models": [
                    e.name
                    for e in ModelRegistry(self.ws.layout).list()
                    if e.kind != "bundled" and e.present and (e.merged_dir or e.default_gguf)
                ],
                "embedders": [(e.name if not e.bundled else BUNDLED, e.label) for e in embs()],
                "runs": [er.run_summary(r) for r in RunStore(self.ws.layout).runs()],
                "gpu": gpu_status(self.ws.layout),
                "colab": colab_status(self.ws.layout) if where == "colab" else None,
            }

        self.jobs.start(work, "training-lists", latest="lists", on_result=self._got_lists)

    def _got_lists(self, data: dict[str, Any]) -> None:
        want = self.dataset_combo.currentData()
        self.dataset_combo.clear()
        for name in data["datasets"]:
            self.dataset_combo.addItem(name, name)
        index = self.dataset_combo.findData(want) if want else 0
        self.dataset_combo.setCurrentIndex(max(0, index) if data["datasets"] else -1)
        self._lists = {"models": data["models"], "embedders": data["embedders"]}
        self._fill_bases()
        if self.reembed_panel.isVisible() and not self.reembed_panel.busy:
            self.reembed_panel.refresh()
        self._fill_history(data["runs"])
        gpu = data["gpu"]
        self.gpu_label.setText(gpu.sentence)
        self.gpu_button.setVisible(
            gpu.nvidia and not gpu.env_ready and self.where == "local" and self.kind != "embedder"
        )
        colab = data.get("colab")
        if colab is not None:
            self.colab_label.setText(colab.sentence)

    @property
    def where(self) -> str:
        return str(self.where_combo.currentData() or "local")

    def _show_where(self) -> None:
        remote = self.where == "colab" and self.kind == "generator"
        self._pick.setRowVisible(self._gpu_row, remote)
        self._pick.setRowVisible(self._push_row, remote)
        self._pick.setRowVisible(self.colab_label, remote)
        # This computer's GPU set-up (unsloth): not what a Colab run or an embedder uses.
        self.gpu_label.setVisible(not remote and self.kind != "embedder")
        if self.kind == "embedder":
            self.gpu_button.hide()
        self.cancel_button.setToolTip(
            "Stop the remote run and release the Colab runtime"
            if remote
            else "Write a checkpoint and stop; Resume continues"
        )
        if remote:
            self.colab_label.setText("Looking for the colab CLI…")
            self.refresh()
            if self.preset_combo.currentData() != "gpu-standard":
                self.preset_combo.setCurrentIndex(self.preset_combo.findData("gpu-standard"))

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

    def _fill_history(self, runs: list[dict[str, Any]]) -> None:
        selected = self.selected_run()
        self.history.setRowCount(0)
        for summary in runs:
            row = self.history.rowCount()
            self.history.insertRow(row)
            loss = summary.get("loss")
            cells = [
                summary["name"],
                summary["state"],
                f"{summary.get('step', 0)}/{summary.get('total', 0)}",
                f"{loss:.3f}" if isinstance(loss, float | int) else "",
                er.validation_cell(summary),
                er.model_cell(summary),
            ]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(str(text))
                if col == 0:
                    item.setData(Qt.ItemDataRole.UserRole, summary)
                if col == 1 and summary.get("error"):
                    item.setToolTip(summary["error"])
                if col == 4 and summary.get("kind") == "embedder":
                    item.setToolTip("Recall@5 on the held-out questions: before → after tuning")
                self.history.setItem(row, col, item)
            if summary["name"] == selected:
                self.history.selectRow(row)
        self._update_buttons()

    def selected_run(self) -> str:
        rows = self.history.selectionModel().selectedRows() if self.history.selectionModel() else []
        if not rows:
            return ""
        item = self.history.item(rows[0].row(), 0)
        return item.text() if item else ""

    def _selected_summary(self) -> dict[str, Any]:
        rows = self.history.selectionModel().selectedRows()
        if not rows:
            return {}
        item = self.history.item(rows[0].row(), 0)
        data = item.data(Qt.ItemDataRole.UserRole) if item else None
        return data if isinstance(data, dict) else {}

    def _on_history_selected(self) -> None:
        self._update_buttons()
        name = self.selected_run()
        if not name or self.running:
            return
        self.show_run(name)

    def show_run(self, name: str) -> None:
        """Draw a past run's curve and log from its events file."""
        from core.training.runs import RunStore

        try:
            run = RunStore(self.ws.layout).get(name)
        except Exception as exc:
            self.show_error(str(exc))
            return
        self.chart.clear()
        self.log_view.clear()
        self._reset_recall()
        for event in run.events():
            self._show_event(event, live=False)
        summary = er.run_summary(run)
        self.status_label.setText(f"{name}: {summary['state']}")
        if summary.get("kind") == "embedder" and summary.get("state") == "done":
            summary["kb"] = self._run_kb(name)
        self._show_panel(summary)

    # -- running ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None or self.remote is not None

    def _set_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)
        self.run_state_changed.emit(on)
        self._update_buttons()

    def _update_buttons(self) -> None:
        summary = self._selected_summary()
        state = summary.get("state", "")
        self.resume_button.setEnabled(
            not self.running
            and state in ("cancelled", "interrupted", "failed")
            and bool(summary.get("checkpoint"))
        )
        self.delete_run_button.setEnabled(
            bool(summary) and not (self.running and summary.get("name") == self.run_name)
        )

    def start(self) -> None:
        """Check the job (fields, dataset, base, lengths) off the GUI thread, then start."""
        if self.running:
            return
        self.hide_error()
        spec = self.spec()
        wanted = self.name_edit.text().strip()
        if self.kind == "alternating":
            self._start_rounds(spec, wanted)
            return
        self.start_button.setEnabled(False)
        self.status_label.setText("Checking the job…")

        def work(push: Push, cancel: threading.Event) -> tuple[str, str]:
            from core.training.preflight import check_job
            from core.training.runs import RunStore

            if spec.kind == "embedder":
                return self._check_embedder(spec, wanted)
            checked = check_job(self.ws.layout, spec)
            store = RunStore(self.ws.layout)
            name = wanted or store.unique_name(f"{spec.dataset}-tuned")
            store.create(name, spec)
            assert checked.prepared is not None
            p = checked.prepared
            note = (
                f"{len(p.train)} training rows ({p.train_tokens} tokens), "
                f"{len(p.validation)} validation rows"
                + (f", {p.too_long} longer than max_seq_len left out" if p.too_long else "")
            )
            return name, note

        def failed(message: str) -> None:
            self.start_button.setEnabled(True)
            self.status_label.setText("The job cannot start.")
            self.show_error(message)

        where, gpu = self.where, str(self.gpu_combo.currentData())
        if spec.kind == "embedder":
            where = "local"  # an embedder trains on this computer
        push_repo = self.push_repo_edit.text().strip() or None

        def launch(result: tuple[str, str]) -> None:
            if where == "colab":
                self._launch_remote(result[0], gpu, result[1], push_repo)
            else:
                self._launch(result[0], False, result[1])

        self.jobs.start(work, "training-check", on_result=launch, on_error=failed)

    def _start_rounds(self, spec: TrainSpec, wanted: str) -> None:
        """The alternating schedule, driven from a background job (each training step is a
        worker process of its own); the same name again continues a stopped schedule."""
        from dataclasses import asdict

        from core.training.rounds import RoundsPlan, run_rounds

        if not spec.dataset:
            self.show_error("Choose a dataset first: the rounds start from it.")
            return
        embedder_only = {"negatives", "recall_k", "eval_passages", "kb"}
        generator = {
            k: v
            for k, v in asdict(spec).items()
            if k not in ("dataset", "base", "kind") and k not in embedder_only
        }
        plan = RoundsPlan(
            name=wanted or f"{spec.dataset}-rounds",
            dataset=spec.dataset,
            rounds=self.rounds_spin.value(),
            base=spec.base,
            generator_preset=str(self.preset_combo.currentData() or "cpu-quick"),
            generator=generator,
        )
        self.run_name = plan.name
        self._final = {}
        self._cancelled = False
        self._started = time.monotonic()
        self.chart.clear()
        self.log_view.clear()
        self.log_view.appendPlainText(
            f"Schedule {plan.name}: {plan.rounds} rounds on {plan.dataset} (each: tune the "
            "embedder, re-embed, re-trace the questions, tune the generator)."
        )
        ws = self.ws

        def work(push: Push, cancel: threading.Event) -> list[dict[str, Any]]:
            return run_rounds(ws, plan, on_event=push, cancel=cancel)

        def done(summaries: list[dict[str, Any]]) -> None:
            elapsed = duration(time.monotonic() - self._started)
            self.progress.setRange(0, 1)
            finished = len(summaries) == plan.rounds
            self.progress.setValue(1 if finished else 0)
            self.status_label.setText(
                f"{plan.name}: {len(summaries)} of {plan.rounds} rounds after {elapsed}"
                + ("" if finished else " (stopped: Start with the same name continues)")
            )
            if summaries:
                self.models_changed.emit()
                self.reembed_panel.refresh()

        self.remote = self.jobs.start(
            work,
            "training-rounds",
            on_items=self._remote_items,
            on_result=done,
            on_error=self._remote_failed,
            on_finished=self._remote_finished,
        )
        self._rounds = True
        self._set_running(True)
        self.status_label.setText(f"{plan.name}: starting round 1…")
        self.progress.setRange(0, 0)

    def _check_embedder(self, spec: TrainSpec, wanted: str) -> tuple[str, str]:
        """(Worker thread) the embedder job's pairs and corpus; the run, created."""
        from core.training.embedder_data import check_embedder_job
        from core.training.runs import RunStore

        checked = check_embedder_job(self.ws.layout, spec, self.ws.store)
        store = RunStore(self.ws.layout)
        name = wanted or store.unique_name(f"{spec.dataset}-embedder")
        store.create(name, spec)
        skipped = sum(checked.skipped.values())
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(checked.skipped.items()))
        note = (
            f"{len(checked.train)} training questions, {len(checked.validation)} held-out "
            f"question{'s' if len(checked.validation) != 1 else ''} among "
            f"{len(checked.corpus.ids)} passages"
            + (f" ({skipped} left out: {why})" if skipped else "")
        )
        return name, note

    def _launch_remote(self, name: str, gpu: str, note: str, push_repo: str | None) -> None:
        """The run goes to a Colab runtime; its events come back like a local worker's."""
        from core.training.runs import RunStore

        run = RunStore(self.ws.layout).get(name)
        self.run_name = name
        self._final = {}
        self._cancelled = False
        self._started = time.monotonic()
        self.chart.clear()
        self.log_view.clear()
        self.log_view.appendPlainText(f"Run {name}: {note}. Going to a Colab {gpu} runtime…")
        layout = self.ws.layout

        def work(push: Push, cancel: threading.Event) -> object:
            from core.errors import CotragError
            from core.models.token import get_token
            from core.training.remote import run_on_colab

            try:
                token = get_token()
            except CotragError:
                token = None
            return run_on_colab(
                layout,
                run,
                gpu,
                on_event=push,
                on_log=lambda stream, line: push(("log", stream, line)),
                should_stop=cancel.is_set,
                hub_token=token,
                push_repo=push_repo,
            )

        self.remote = self.jobs.start(
            work,
            "colab-run",
            on_items=self._remote_items,
            on_result=self._remote_done,
            on_error=self._remote_failed,
            on_finished=self._remote_finished,
        )
        self._set_running(True)
        self.status_label.setText(f"{name}: allocating a Colab {gpu} runtime…")
        self.progress.setRange(0, 0)

    def _remote_items(self, items: list[object]) -> None:
        for item in items:
            if isinstance(item, dict) and item.get("run"):
                self.run_name = str(item["run"])  # a schedule's current run
            line = er.round_line(item) if isinstance(item, dict) else ""
            if line:
                self.log_view.appendPlainText(line)
                self.status_label.setText(line)
                if isinstance(item, dict) and item.get("step") in ("embedder", "generator"):
                    self.chart.clear()
                continue
            if isinstance(item, dict):
                if item.get("event") in FINAL:
                    self._final = item
                self._show_event(item, live=True)
            elif isinstance(item, tuple) and len(item) == 3:
                self.log_view.appendPlainText(f"colab: {item[2]}")

    def _remote_done(self, result: object) -> None:
        from core.training.remote import ColabRun

        assert isinstance(result, ColabRun)
        elapsed = duration(time.monotonic() - self._started)
        self.status_label.setText(f"{self.run_name}: {result.state} after {elapsed}")
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if result.state == "done" else 0)
        if result.state == "done":
            self.status_message.emit(result.sentence())
            self.models_changed.emit()
        elif result.state == "cancelled":
            self.status_message.emit(result.sentence())
        else:
            self.show_error(result.sentence())

    def _remote_failed(self, message: str) -> None:
        self.status_label.setText(f"{self.run_name}: failed")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.show_error(message)

    def _remote_finished(self) -> None:
        self.remote = None
        self._rounds = False
        self._set_running(False)
        self.refresh()

    def export_for_colab(self) -> None:
        """The notebook and the dataset in a folder, for a user who uploads them by hand."""
        folder = QFileDialog.getExistingDirectory(self, "Export the job for Colab")
        if folder:
            self.export_to(Path(folder))

    def export_to(self, folder: Path) -> None:
        spec = self.spec()
        name = self.name_edit.text().strip() or f"{spec.dataset}-colab"
        push_repo = self.push_repo_edit.text().strip() or None

        def work(push: Push, cancel: threading.Event) -> Path:
            from core.dataset.storage import DatasetStore
            from core.training.colab_notebook import write_export
            from core.training.preflight import check_job

            check_job(self.ws.layout, spec)
            dataset = DatasetStore(self.ws.layout.datasets).open(spec.dataset)
            return write_export(folder, spec, dataset, name, push_repo=push_repo).notebook

        self.jobs.start(
            work,
            "colab-export",
            on_result=lambda nb: self.status_message.emit(
                f"Wrote {nb} and the dataset next to it (README.txt says how to upload them)."
            ),
        )

    def ask_fetch(self) -> None:
        repo = self.push_repo_edit.text().strip()
        if not repo:
            self.show_error("Type the hub repo the notebook pushed to (Hub repo), then Fetch.")
            return
        run, ok = QInputDialog.getText(
            self, "Fetch results", f"The run name the notebook pushed to {repo}:",
            text=self.name_edit.text().strip(),
        )  # fmt: skip
        if ok and run.strip():
            self.fetch(repo, run.strip())

    def fetch(self, repo: str, run: str) -> None:
        """Wait for a hand-run notebook's results on the hub, pull, check, register them."""
        layout = self.ws.layout
        self.fetch_button.setEnabled(False)
        self.status_label.setText(f"Waiting for the results of {run} on {repo}…")

        def work(push: Push, cancel: threading.Event) -> str:
            from core.training.remote import fetch_pushed_run

            return fetch_pushed_run(layout, repo, run, should_stop=cancel.is_set).name

        def done(name: str) -> None:
            self.status_label.setText(f"{name}: fetched from {repo}")
            self.status_message.emit(f"Registered {name}: choose it in the chat's model list.")
            self.models_changed.emit()

        self.jobs.start(
            work,
            "colab-fetch",
            latest="fetch",
            on_result=done,
            on_finished=lambda: self.fetch_button.setEnabled(True),
        )

    def resume_selected(self) -> None:
        name = self.selected_run()
        if name and not self.running:
            self.hide_error()
            self._launch(name, True, "resuming from the last checkpoint")

    def _launch(self, name: str, resume: bool, note: str) -> None:
        from core.training.process import worker_command
        from core.training.runs import RunStore

        run = RunStore(self.ws.layout).get(name)
        command = worker_command(run, resume=resume, layout=self.ws.layout)
        self.run_name = name
        self._final = {}
        self._cancelled = False
        self._buffer = ""
        self._started = time.monotonic()
        if not resume:
            self.chart.clear()
            self.log_view.clear()
            self._reset_recall()
        self.log_view.appendPlainText(f"Run {name}: {note}.")
        process = QProcess(self)
        process.setProgram(command[0])
        process.setArguments(command[1:])
        process.setStandardErrorFile(str(run.log_file), QProcess.OpenModeFlag.Append)
        env = process.processEnvironment()
        if env.isEmpty():
            from PySide6.QtCore import QProcessEnvironment

            env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        process.setProcessEnvironment(env)
        process.readyReadStandardOutput.connect(self._read_output)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_process_error)
        self.process = process
        self._set_running(True)
        self.status_label.setText(f"{name}: starting…")
        self.progress.setRange(0, 0)
        process.start()

    @Slot()
    def _read_output(self) -> None:
        if self.process is None:
            return
        self._buffer += bytes(self.process.readAllStandardOutput().data()).decode(
            "utf-8", "replace"
        )
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            event = parse_line(line)
            if event is not None:
                if event["event"] in FINAL:
                    self._final = event
                self._show_event(event, live=True)

    def _show_event(self, event: dict[str, Any], *, live: bool) -> None:
        kind = event.get("event")
        if kind == "preparing":
            self.log_view.appendPlainText(str(event.get("message", "")))
            if live:
                self.status_label.setText(f"{self.run_name}: {event.get('message', '')}")
        elif kind == "started" and event.get("kind") == "embedder":
            total = int(event.get("total", 0))
            self.chart.total = total
            self._recall["questions"] = int(event.get("rows_validation", 0))
            self.log_view.appendPlainText(
                f"Tuning the embedder {event.get('base', '')} on {event.get('device')} "
                f"({event.get('engine')}"
                + (f", {event['threads']} threads" if event.get("threads") else "")
                + f"): {event.get('rows_train', '?')} training questions, "
                f"{event.get('rows_validation', '?')} held-out among {event.get('corpus', '?')} "
                f"passages, {total} steps"
                + (f", from step {event['start_step']}" if event.get("start_step") else "")
                + "."
            )
            if live:
                self.progress.setRange(0, max(1, total))
                self.progress.setValue(int(event.get("start_step", 0)))
                self.refresh()
        elif kind == "started":
            total = int(event.get("total", 0))
            self.chart.total = total
            self.log_view.appendPlainText(
                f"Training on {event.get('device')} ({event.get('engine')}, {event.get('dtype')}"
                + (f", {event['threads']} threads" if event.get("threads") else "")
                + f"): {event.get('rows_train', '?')} rows, {total} steps"
                + (f", from step {event['start_step']}" if event.get("start_step") else "")
                + f"; {event.get('trainable_params', 0):,} trainable weights."
            )
            if live:
                self.progress.setRange(0, max(1, total))
                self.progress.setValue(int(event.get("start_step", 0)))
                self.refresh()  # the run shows in the history as running
        elif kind == "step":
            step, total = int(event["step"]), int(event.get("total", 0))
            self.chart.add_step(step, float(event["loss"]), total)
            if live:
                self.progress.setRange(0, max(1, total))
                self.progress.setValue(step)
                self.status_label.setText(
                    f"{self.run_name}: step {step}/{total} · loss {event['loss']:.3f} · "
                    f"{event.get('tokens_per_s', 0):.0f} tokens/s · "
                    f"ETA {duration(float(event.get('eta_s', 0)))}"
                )
        elif kind == "eval" and "recall" in event:
            # An embedder's validation: recall always, a loss only with enough questions.
            if isinstance(event.get("loss"), float | int):
                self.chart.add_eval(int(event["step"]), float(event["loss"]))
            self.log_view.appendPlainText(er.eval_log_line(event))
            key = "now" if self._recall["before"] else "before"
            self._recall[key] = dict(event["recall"] or {})
            self._show_recall(finished=False)
        elif kind == "eval":
            self.chart.add_eval(int(event["step"]), float(event["loss"]))
            self.log_view.appendPlainText(
                f"step {event['step']}: validation loss {event['loss']:.3f}"
            )
        elif kind == "checkpoint":
            self.log_view.appendPlainText(f"checkpoint at step {event['step']}")
        elif kind == "exporting":
            self.log_view.appendPlainText(
                f"exporting {event['what']} ({event['index']}/{event['total']})…"
            )
            if live:
                self.status_label.setText(f"{self.run_name}: exporting {event['what']}…")
        elif kind == "done" and event.get("kind") == "embedder":
            metrics = event.get("metrics", {})
            self._recall["before"] = metrics.get("recall_before") or self._recall["before"]
            self._recall["now"] = metrics.get("recall_after") or self._recall["now"]
            self._recall["questions"] = (
                metrics.get("validation_questions", 0) or self._recall["questions"]
            )
            self._show_recall(finished=True)
            self.log_view.appendPlainText(
                f"Done: the tuned embedder {event.get('model')} "
                f"({er.recall_figures(metrics.get('recall_after') or {})}); re-embed a "
                "knowledge base with it below to search with it."
            )
        elif kind == "done":
            metrics = event.get("metrics", {})
            self.log_view.appendPlainText(
                f"Done: model {event.get('model')} (final loss {_num(metrics.get('final_loss'))}, "
                f"validation loss {_num(metrics.get('eval_loss'))}); files: "
                + ", ".join(event.get("outputs", {}))
            )
        elif kind == "cancelled":
            self.log_view.appendPlainText(f"Cancelled at step {event.get('step')}.")
        elif kind == "error":
            self.log_view.appendPlainText(f"Error: {event.get('message')} {event.get('fix', '')}")
        elif kind == "log":
            self.log_view.appendPlainText(str(event.get("message", "")))

    def _reset_recall(self) -> None:
        self._recall = {"before": {}, "now": {}, "questions": 0, "k": 5}
        self.recall_label.hide()

    def _show_recall(self, *, finished: bool) -> None:
        r = self._recall
        self.recall_label.setText(
            er.recall_line(r["before"], r["now"], r["questions"], finished=finished, k=r["k"])
        )
        self.recall_label.show()

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read_output()
        self._kill_timer.stop()
        from core.training.process import ProcessOutcome
        from core.training.runs import RunStore

        crashed = status == QProcess.ExitStatus.CrashExit
        outcome = ProcessOutcome(
            exit_code=None if crashed else code,
            signal=signal.SIGKILL if crashed else None,
            cancelled=self._cancelled,
            final=self._final,
        )
        run = RunStore(self.ws.layout).get(self.run_name)
        sentence = outcome.sentence(run.log_file)
        elapsed = duration(time.monotonic() - self._started)
        self.status_label.setText(f"{self.run_name}: {outcome.state} after {elapsed}")
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if outcome.state == "done" else 0)
        embedder = self._final.get("kind") == "embedder"
        if outcome.state == "done" and embedder:
            model = str(self._final.get("model", self.run_name))
            self.status_message.emit(
                f"Done: the tuned embedder is {model}; re-embed a knowledge base with it to "
                "search with it."
            )
            self._show_panel(
                {"kind": "embedder", "model": model, "kb": self._run_kb(self.run_name)}
            )
        elif outcome.state == "done":
            self.status_message.emit(sentence)
            self.models_changed.emit()
        elif outcome.state == "cancelled":
            self.status_message.emit(sentence)
        else:
            self.show_error(sentence)
        if self.process is not None:
            self.process.deleteLater()
        self.process = None
        self._set_running(False)
        self.refresh()

    def _run_kb(self, name: str) -> str:
        """The knowledge base a run searched (its spec's, else its dataset's): two small files."""
        from core.dataset.storage import DatasetStore
        from core.training.runs import RunStore

        try:
            spec = RunStore(self.ws.layout).get(name).spec()
            dataset = DatasetStore(self.ws.layout.datasets).open(spec.dataset)
            return spec.kb or str(dataset.meta.get("kb", ""))
        except Exception:  # the panel keeps the knowledge base it shows
            log.debug("No knowledge base for %s", name, exc_info=True)
            return ""

    @Slot(QProcess.ProcessError)
    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.show_error(
                "The training process could not start (cotrag-train-worker is missing): "
                "reinstall the app with `bash packaging/install.sh`."
            )
            if self.process is not None:
                self.process.deleteLater()
            self.process = None
            self._set_running(False)

    def cancel(self) -> None:
        """Ask the worker for a checkpoint and a clean stop; kill it if it does not come.
        A Colab run is stopped and its runtime released."""
        if self.remote is not None:
            self._cancelled = True
            self.remote.cancel()
            self.status_label.setText(
                f"{self.run_name}: stopping (a checkpoint first)…"
                if self._rounds
                else f"{self.run_name}: stopping the Colab runtime…"
            )
            self.cancel_button.setEnabled(False)
            return
        if self.process is None:
            return
        from core.training.process import request_stop
        from core.training.runs import RunStore

        self._cancelled = True
        command = [self.process.program(), *self.process.arguments()]
        run = RunStore(self.ws.layout).get(self.run_name)
        request_stop(run, int(self.process.processId() or 0), command)
        self.status_label.setText(f"{self.run_name}: cancelling (writing a checkpoint)…")
        self.cancel_button.setEnabled(False)
        self._kill_timer.start(CANCEL_GRACE_MS)

    def _kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def delete_selected_run(self) -> None:
        name = self.selected_run()
        if not name:
            return
        if not confirm_destructive(
            self,
            "Delete run",
            f"Delete the run {name!r} with its checkpoints and log? Its tuned model (if "
            "any) stays.",
        ):
            return
        from core.training.runs import RunStore

        try:
            RunStore(self.ws.layout).delete(name)
        except Exception as exc:
            self.show_error(str(exc))
            return
        self.status_message.emit(f"Deleted run {name}.")
        self.refresh()

    def setup_gpu(self) -> None:
        self.gpu_button.setEnabled(False)

        def work(push: Push, cancel: threading.Event) -> int:
            from core.training.gpu_env import setup_gpu_env

            return setup_gpu_env(self.ws.layout, say=push)

        def lines(items: list[object]) -> None:
            for line in items:
                self.log_view.appendPlainText(str(line))

        def finished() -> None:
            self.gpu_button.setEnabled(True)
            self.refresh()

        self.jobs.start(
            work,
            "gpu-setup",
            on_items=lines,
            on_result=lambda code: self.status_message.emit(
                "GPU environment ready." if code == 0 else "GPU set-up failed: see the log."
            ),
            on_finished=finished,
        )

    # -- errors, shutdown ----------------------------------------------------------------
    def show_error(self, message: str) -> None:
        self.banner.show_message(message)
        self.error.emit(message)

    def hide_error(self) -> None:
        self.banner.hide()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel a running job (it checkpoints) and wait for it, then stop the list jobs."""
        if self.remote is not None:
            self.cancel()  # the jobs' shutdown below waits for the runtime to be released
        if self.process is not None:
            self.cancel()
            if not self.process.waitForFinished(int(timeout * 1000)):
                self.process.kill()
                self.process.waitForFinished(5000)
        self.reembed_panel.shutdown()
        self.jobs.shutdown()
