"""The Dataset tab's "Sample the model's own runs" panel: how many runs per question, the
temperature, the model to be tuned, what happens to a question with no kept run; whether
Generate samples each new example, and a button that samples the open dataset."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.dataset.sampling import MAX_SAMPLES, SampleProgress
from core.durations import time_left
from core.models.installed import ModelRegistry
from core.workspace import Workspace
from desktop.fit import fit_combo
from desktop.scaffold import hint, section_title

FALLBACK_LABELS = [
    ("constructed", "keep the constructed trace"),
    ("drop", "drop the question"),
]


@dataclass(frozen=True)
class SampleRequest:
    samples: int
    temperature: float
    model: str
    """"" = the configured model."""
    fallback: str


class SamplingPanel(QWidget):
    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addSpacing(8)
        column.addWidget(section_title("Sample the model's own runs", self))
        column.addWidget(
            hint(
                "The model you will tune runs each question several times; the shortest run "
                "that vets the right passage and answers right becomes the trace.",
                self,
            )
        )
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.samples_spin = QSpinBox(self)
        self.samples_spin.setRange(1, MAX_SAMPLES)
        self.samples_spin.setValue(5)
        self.samples_spin.setToolTip("Runs per question (each with its own recorded seed)")
        self.temperature_spin = QDoubleSpinBox(self)
        self.temperature_spin.setRange(0.05, 2.0)
        self.temperature_spin.setSingleStep(0.1)
        self.temperature_spin.setValue(0.7)
        self.model_combo = QComboBox(self)
        self.fallback_combo = QComboBox(self)
        for value, label in FALLBACK_LABELS:
            self.fallback_combo.addItem(label, value)
        fit_combo(self.model_combo, 10)
        fit_combo(self.fallback_combo, 10)
        form.addRow("Runs per question", self.samples_spin)
        form.addRow("Temperature", self.temperature_spin)
        form.addRow("Model", self.model_combo)
        form.addRow("None kept", self.fallback_combo)
        column.addLayout(form)
        self.on_generate = QCheckBox("Sample each new example while generating", self)
        column.addWidget(self.on_generate)
        self.sample_button = QPushButton("Sample this dataset", self)
        self.sample_button.setToolTip(
            "Run the model on every question of the open dataset not sampled before "
            "(Cancel stops after the current question; pressing it again goes on)"
        )
        column.addWidget(self.sample_button)
        self.fill_models()

    def fill_models(self) -> None:
        keep = self.model_combo.currentData()
        self.model_combo.clear()
        self.model_combo.addItem("The configured model", "")
        for entry in ModelRegistry(self.ws.layout).library():
            if entry.present:
                self.model_combo.addItem(f"{entry.name} ({entry.format})", entry.name)
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(keep)))

    def request(self) -> SampleRequest:
        return SampleRequest(
            self.samples_spin.value(),
            round(self.temperature_spin.value(), 2),
            str(self.model_combo.currentData() or ""),
            str(self.fallback_combo.currentData()),
        )

    def set_running(self, on: bool) -> None:
        for w in (
            self.samples_spin,
            self.temperature_spin,
            self.model_combo,
            self.fallback_combo,
            self.on_generate,
        ):
            w.setEnabled(not on)


def progress_text(event: SampleProgress) -> str:
    """The running line: questions decided, kept and the keep rate, pace, time left."""
    return (
        f"{event.done} of {event.total} questions sampled · {event.kept} kept "
        f"({event.keep_rate:.0%} keep rate) · {event.per_minute:.1f} per minute · "
        + (time_left(event.eta_s) if event.done < event.total else "done")
    )
