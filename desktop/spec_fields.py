"""The Training tab's spec fields: every field of a ``TrainSpec`` a user tunes, in one form.

The job kind decides which rows show (a generator's LoRA and exports, an embedder's
negatives and recall pool, the rounds of an alternating schedule).
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from core.training.spec import EXPORTS, TrainSpec


class SpecFields(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self._form = form
        self.lora_r = self._spin("LoRA rank (r)", 1, 512)
        self.lora_alpha = self._spin("LoRA alpha", 1, 1024)
        self.lora_dropout = self._double("LoRA dropout", 0.0, 0.9, 2, 0.05)
        self.learning_rate = QLineEdit(self)
        self.learning_rate.setToolTip("e.g. 2e-4")
        form.addRow("Learning rate", self.learning_rate)
        self.epochs = self._double("Epochs", 0.0, 100.0, 2, 0.5)
        self.max_steps = self._spin("Max steps (0 = epochs)", 0, 1_000_000)
        self.batch_size = self._spin("Batch size", 1, 512)
        self.grad_accum = self._spin("Gradient accumulation", 1, 512)
        self.warmup = self._spin("Warm-up steps", 0, 100_000)
        self.max_seq_len = self._spin("Max sequence length", 64, 131072)
        self.eval_every = self._spin("Validate every (steps)", 0, 100_000)
        self.checkpoint_every = self._spin("Checkpoint every (steps)", 0, 100_000)
        self.seed = self._spin("Seed", 0, 2**31 - 1)
        self.negatives = self._spin("Hard negatives", 0, 32)
        self.negatives.setToolTip(
            "Per question: passages the search returned that do not answer it, next to the "
            "other questions' answers in the batch"
        )
        self.rounds_spin = self._spin("Rounds", 1, 20)
        self.rounds_spin.setValue(2)
        self.rounds_spin.setToolTip(
            "Each round: tune the embedder, re-embed the knowledge base, trace the questions "
            "again through the tuned search, tune the generator on those traces"
        )
        self.eval_passages = self._spin("Recall among (passages)", 20, 1_000_000)
        self.eval_passages.setToolTip(
            "The held-out questions are searched among this many passages: the held-out "
            "documents' chunks, the distractors, then a sample of the rest"
        )
        self.raft_rows = self._spin("Reader rows per example", 0, 16)
        self.raft_rows.setToolTip(
            "Extra answer-stage rows per example (0 = off): the passage that answers among "
            "other passages of the knowledge base, at a random place, so the model learns to "
            "read the right one"
        )
        self.raft_absent = self._double("…without the answer's passage", 0.0, 1.0, 2, 0.05)
        self.raft_absent.setToolTip(
            "Share of the reader rows whose passages do not hold the answer: the model learns "
            'to say "The documents do not say."'
        )
        self.mask_box = QCheckBox("No loss on passages and notes", self)
        self.mask_box.setToolTip(
            "Train only on what the model wrote: never on the retrieved passages, the loop's "
            "notes or the tags it closed"
        )
        form.addRow("Mask", self.mask_box)
        self.four_bit = QCheckBox("4-bit base weights (GPU only)", self)
        form.addRow("QLoRA", self.four_bit)
        self.checkpointing = QCheckBox("Gradient checkpointing", self)
        self.checkpointing.setToolTip("Far less memory for long rows, about a third slower")
        form.addRow("Memory", self.checkpointing)
        self.guard_box = QCheckBox("Check it against the base", self)
        self.guard_box.setToolTip(
            "After the export, the base and the tuned model answer the dataset's validation "
            "questions (documents the run never saw); the verdict — better, no different or "
            "worse than the base — is kept with the model and shown in every model list"
        )
        form.addRow("Guard", self.guard_box)
        guard_qa_row = QWidget(self)
        qa_layout = QHBoxLayout(guard_qa_row)
        qa_layout.setContentsMargins(0, 0, 0, 0)
        self.guard_qa = QLineEdit(guard_qa_row)
        self.guard_qa.setPlaceholderText("the dataset's held-out questions")
        self.guard_qa.setToolTip(
            "A QA file (one JSON object per line: question, answers) whose questions the guard "
            "asks instead. Questions as you ask them give the verdict that holds: on the "
            "dataset's fill-in template questions a tuned model looks better than it is, so "
            "only a loss on them counts"
        )
        qa_layout.addWidget(self.guard_qa, 1)
        browse = QPushButton("Choose…", guard_qa_row)
        browse.clicked.connect(self._choose_guard_qa)
        qa_layout.addWidget(browse)
        self.guard_box.toggled.connect(guard_qa_row.setEnabled)
        form.addRow("Guard questions", guard_qa_row)
        self.engine_combo = QComboBox(self)
        for engine in ("auto", "torch", "unsloth"):
            self.engine_combo.addItem(engine, engine)
        form.addRow("Engine", self.engine_combo)
        exports = QWidget(self)
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
        self.tracking_combo = QComboBox(self)
        for kind in ("none", "tensorboard", "mlflow"):
            self.tracking_combo.addItem(kind, kind)
        form.addRow("Tracking", self.tracking_combo)
        self._generator_rows: list[QWidget] = [
            self.lora_r, self.lora_alpha, self.lora_dropout, self.grad_accum, self.raft_rows,
            self.raft_absent, self.mask_box, self.four_bit, self.checkpointing, self.guard_box,
            guard_qa_row, self.engine_combo, exports, self.tracking_combo,
        ]  # fmt: skip
        self._embedder_rows: list[QWidget] = [self.negatives, self.eval_passages]

    def _spin(self, label: str, low: int, high: int) -> QSpinBox:
        spin = QSpinBox(self)
        spin.setRange(low, high)
        self._form.addRow(label, spin)
        return spin

    def _double(
        self, label: str, low: float, high: float, decimals: int, step: float
    ) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(self)
        spin.setRange(low, high)
        spin.setDecimals(decimals)
        spin.setSingleStep(step)
        self._form.addRow(label, spin)
        return spin

    def _choose_guard_qa(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Questions for the guard", "", "QA files (*.jsonl *.json);;All files (*)"
        )
        if file:
            self.guard_qa.setText(file)

    def set_kind(self, kind: str) -> None:
        """The rows of a generator, an embedder or an alternating job (the generator's, plus
        Rounds)."""
        embedder = kind == "embedder"
        for widget in self._generator_rows:
            self._form.setRowVisible(widget, not embedder)
        for widget in self._embedder_rows:
            self._form.setRowVisible(widget, embedder)
        self._form.setRowVisible(self.rounds_spin, kind == "alternating")

    def row_visible(self, field: QWidget) -> bool:
        """Whether the row of this field shows for the current job kind."""
        return self._form.isRowVisible(field)

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
        self.raft_rows.setValue(spec.raft_rows)
        self.raft_absent.setValue(spec.raft_absent_share)
        self.mask_box.setChecked(spec.mask_retrieved)
        self.four_bit.setChecked(spec.load_in_4bit)
        self.checkpointing.setChecked(spec.gradient_checkpointing)
        self.guard_box.setChecked(spec.guard)
        self.guard_qa.setText(spec.guard_qa)
        self.engine_combo.setCurrentIndex(max(0, self.engine_combo.findData(spec.engine)))
        for kind, box in self.export_boxes.items():
            box.setChecked(kind in spec.exports)
        self.tracking_combo.setCurrentIndex(max(0, self.tracking_combo.findData(spec.tracking)))

    def read(self, preset: TrainSpec) -> TrainSpec:
        """``preset`` with the fields' values (checked by the preflight, not here)."""
        try:
            rate = float(self.learning_rate.text().strip())
        except ValueError:
            rate = float("nan")
        spec = replace(
            preset,
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
            raft_rows=self.raft_rows.value(),
            raft_absent_share=self.raft_absent.value(),
            mask_retrieved=self.mask_box.isChecked(),
            load_in_4bit=self.four_bit.isChecked(),
            gradient_checkpointing=self.checkpointing.isChecked(),
            guard=self.guard_box.isChecked(),
            guard_qa=self.guard_qa.text().strip(),
            engine=str(self.engine_combo.currentData()),
            exports=[k for k, box in self.export_boxes.items() if box.isChecked()],
            tracking=str(self.tracking_combo.currentData()),
        )
