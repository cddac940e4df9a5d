"""The Dataset tab's left column: the datasets, and the form that generates one (knowledge
base, name, size, question writer, kinds) with the run's progress."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.dataset.candidates import KINDS
from core.dataset.progress import Progress
from core.dataset.spec import GenerateSpec
from core.durations import time_left
from core.errors import CotragError
from core.models.installed import ModelRegistry
from core.workspace import Workspace
from desktop.fit import fit_combo
from desktop.scaffold import hint, section_title

ENDPOINT = "endpoint"


@dataclass(frozen=True)
class GenerateRequest:
    """What the form asks for: the dataset's name, the run's spec, who writes the questions
    (``bundled``, ``none``, a model name, or ``endpoint`` with its URL, model and key)."""

    name: str
    spec: GenerateSpec
    teacher: str
    url: str = ""
    model: str = ""
    key: str = ""


class GeneratePanel(QWidget):
    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self._sizes: dict[str, int] = {}
        """Each dataset's name and number of examples (the list the tab last read)."""
        self._suggested = ""
        """The fresh name the form put in the name field (the user has not changed it)."""
        self._generating = self._model_busy = self._has = False
        self.column = QVBoxLayout(self)
        self.column.setContentsMargins(12, 12, 6, 12)
        self._build_datasets()
        self._build_form()
        self.column.addStretch(1)
        self.fill_teachers()
        self._show_endpoint(False)

    def _build_datasets(self) -> None:
        lcol = self.column
        lcol.addWidget(section_title("Datasets", self))
        self.dataset_list = QListWidget(self)
        self.dataset_list.setMaximumHeight(150)
        lcol.addWidget(self.dataset_list)
        row = QHBoxLayout()
        self.import_button = QPushButton("Import QA…", self)
        self.import_button.setToolTip("QA pairs (JSON, JSONL, CSV, SQuAD) traced through the KB")
        self.export_button = QPushButton("Export…", self)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.setObjectName("danger")
        for b in (self.import_button, self.export_button, self.delete_button):
            row.addWidget(b)
        lcol.addLayout(row)

    def _build_form(self) -> None:
        lcol = self.column
        lcol.addSpacing(8)
        lcol.addWidget(section_title("Generate", self))
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.kb_combo = QComboBox(self)
        self.kb_combo.setPlaceholderText("no knowledge base")
        self.kb_combo.currentTextChanged.connect(lambda _kb: self._kb_changed())
        self.name_edit = QLineEdit(self)
        self.name_edit.setPlaceholderText("e.g. manual-v1 (a name that exists continues it)")
        self.name_edit.textChanged.connect(lambda _t: self._apply())
        self.count_spin = QSpinBox(self)
        self.count_spin.setRange(1, 100_000)
        self.count_spin.setValue(200)
        self.count_spin.valueChanged.connect(lambda _v: self._apply())
        self.teacher_combo = QComboBox(self)
        self.teacher_combo.currentIndexChanged.connect(self._on_teacher_changed)
        self.endpoint_edit = QLineEdit(self)
        self.endpoint_edit.setPlaceholderText("http://localhost:8080/v1")
        self.endpoint_model = QLineEdit(self)
        self.endpoint_model.setPlaceholderText("model name at the endpoint")
        self.endpoint_key = QLineEdit(self)
        self.endpoint_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.endpoint_key.setPlaceholderText("API key (kept in the OS keyring)")
        fit_combo(self.kb_combo, 10)
        fit_combo(self.teacher_combo, 12)
        form.addRow("Knowledge base", self.kb_combo)
        form.addRow("Name", self.name_edit)
        form.addRow("Examples", self.count_spin)
        form.addRow("Questions by", self.teacher_combo)
        self._endpoint_rows = [
            ("Endpoint", self.endpoint_edit),
            ("Model", self.endpoint_model),
            ("API key", self.endpoint_key),
        ]
        for label, widget in self._endpoint_rows:
            form.addRow(label, widget)
        self.form = form
        lcol.addLayout(form)
        # Says so when the name is a dataset's that exists: Generate then adds to it.
        self.name_state = hint("", self)
        self.name_state.hide()
        lcol.addWidget(self.name_state)
        kinds = QGridLayout()  # three a row: the form stays narrow enough for 1024 px
        kinds.setSpacing(6)
        self.kind_boxes: dict[str, QCheckBox] = {}
        for i, kind in enumerate(KINDS):
            box = QCheckBox(kind, self)
            box.setChecked(True)
            self.kind_boxes[kind] = box
            kinds.addWidget(box, i // 3, i % 3)
        kinds.setColumnStretch(3, 1)
        lcol.addLayout(kinds)
        self.teacher_traces = QCheckBox("The model also tries to write each trace", self)
        self.teacher_traces.setToolTip(
            "The question writer runs the search loop itself; its trace is kept when it is "
            "clean, vets the right passage and answers right (slow with a small model)."
        )
        lcol.addWidget(self.teacher_traces)
        self.rewrite = QCheckBox("Rewrite questions in the writer's own words", self)
        self.rewrite.setToolTip(
            "The question writer restates each checked question the way a user would ask it. "
            "A rewrite is kept only when searching with it still finds its passage, it does "
            "not hold the answer, and at most 60% of its words come from the source sentence; "
            "otherwise the original question stays."
        )
        lcol.addWidget(self.rewrite)
        self.licence = hint(
            "Check the licence of the model that writes the questions: some forbid training "
            "other models on their output.",
            self,
        )
        lcol.addWidget(self.licence)
        buttons = QHBoxLayout()
        self.generate_button = QPushButton("Generate", self)
        self.generate_button.setObjectName("primary")
        self.cancel_button = QPushButton("Cancel", self)
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.cancel_button)
        lcol.addLayout(buttons)
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(False)
        lcol.addWidget(self.progress)
        self.progress_label = hint("", self)
        lcol.addWidget(self.progress_label)

    def add_below(self, widget: QWidget) -> None:
        """Place ``widget`` under the progress (the tab's error banner)."""
        self.column.insertWidget(self.column.count() - 1, widget)

    # -- question writers --
    def fill_teachers(self) -> None:
        self.teacher_combo.clear()
        self.teacher_combo.addItem("Bundled model (SmolLM2-135M)", "bundled")
        self.teacher_combo.addItem("Templates only (no model)", "none")
        for entry in ModelRegistry(self.ws.layout).library():
            if entry.present:
                self.teacher_combo.addItem(f"{entry.name} ({entry.format})", entry.name)
        self.teacher_combo.addItem("OpenAI-compatible endpoint…", ENDPOINT)

    def refresh_teachers(self) -> None:
        keep = self.teacher_combo.currentData()
        self.fill_teachers()
        index = self.teacher_combo.findData(keep)
        self.teacher_combo.setCurrentIndex(max(0, index))

    def _show_endpoint(self, on: bool) -> None:
        for _, widget in self._endpoint_rows:
            self.form.setRowVisible(widget, on)

    @Slot(int)
    def _on_teacher_changed(self, _index: int) -> None:
        self._show_endpoint(self.teacher_combo.currentData() == ENDPOINT)
        # Templates only: no model to restate the questions.
        self.rewrite.setEnabled(self.teacher_combo.currentData() != "none")

    # -- the request --
    def set_knowledge_bases(self, names: list[str], current: str) -> None:
        keep = self.kb_combo.currentText()
        self.kb_combo.clear()
        self.kb_combo.addItems(names)
        chosen = keep if keep in names else current
        if chosen:
            self.kb_combo.setCurrentText(chosen)

    # -- the dataset's name --
    def set_datasets(self, sizes: dict[str, int]) -> None:
        """The datasets there are (name: examples). An empty name field gets a fresh name:
        after a restart Generate makes a new dataset unless the user names an old one."""
        self._sizes = dict(sizes)
        if not self.name_edit.text().strip():
            self._suggest()
        self._apply()

    def fresh_name(self) -> str:
        """An unused dataset name from the knowledge base's (``Manuals-qa``, ``Manuals-qa-2``)."""
        stem = f"{self.kb_combo.currentText().strip() or 'dataset'}-qa"[:60]
        name, n = stem, 2
        while name in self._sizes:
            name, n = f"{stem}-{n}", n + 1
        return name

    def _suggest(self) -> None:
        self._suggested = self.fresh_name()
        self.name_edit.setText(self._suggested)

    def _kb_changed(self) -> None:
        name = self.name_edit.text().strip()
        if not name or name == self._suggested:
            self._suggest()  # the suggestion follows the knowledge base
        self._apply()

    def typed_name(self) -> str:
        """The name the user typed ("" while the field holds the form's own suggestion)."""
        name = self.name_edit.text().strip()
        return "" if name == self._suggested else name

    def existing_size(self) -> int | None:
        """The number of examples of the dataset the name field names, None for a new name."""
        return self._sizes.get(self.name_edit.text().strip())

    def request(self) -> GenerateRequest:
        """The run the form asks for (CotragError: what is missing, as a sentence)."""
        name = self.name_edit.text().strip()
        kb = self.kb_combo.currentText()
        if not kb:
            raise CotragError(
                "Choose a knowledge base first (build one in the Knowledge base tab)."
            )
        if not name:
            raise CotragError("Give the dataset a name.")
        spec = GenerateSpec(
            kb=kb,
            count=self.count_spin.value(),
            kinds={k: 1.0 if box.isChecked() else 0.0 for k, box in self.kind_boxes.items()},
            teacher_traces=self.teacher_traces.isChecked(),
            rewrite=self.rewrite.isEnabled() and self.rewrite.isChecked(),
        )
        teacher = str(self.teacher_combo.currentData())
        url, model = self.endpoint_edit.text().strip(), self.endpoint_model.text().strip()
        if teacher == ENDPOINT and not url:
            raise CotragError(
                "Type the endpoint's base URL (for example http://localhost:8080/v1)."
            )
        return GenerateRequest(name, spec, teacher, url, model, self.endpoint_key.text())

    def enable(self, *, generating: bool, model_busy: bool, has: bool) -> None:
        """The buttons a user may press: ``has`` a dataset open, a run ``generating``, the
        model busy elsewhere (the chat)."""
        self._generating, self._model_busy, self._has = generating, model_busy, has
        self._apply()

    def _apply(self) -> None:
        generating, model_busy, has = self._generating, self._model_busy, self._has
        no_kb = self.kb_combo.count() == 0
        size = self.existing_size()
        name = self.name_edit.text().strip()
        self.generate_button.setText("Generate" if size is None else "Add to dataset")
        if size is None:
            self.name_state.hide()
            adds = ""
        else:
            # Examples is the size the dataset grows to (the generator resumes it), not a
            # number to add on top.
            wanted = self.count_spin.value()
            grows = (
                f"Generate adds up to {wanted - size} more to it (Examples is the size it grows to)"
                if wanted > size
                else f"it already holds {wanted} or more: raise Examples to add to it"
            )
            adds = (
                f"“{name}” exists with {size} example{'s' if size != 1 else ''}: {grows}. "
                "Type a new name for a new dataset."
            )
            self.name_state.setText(adds)
            self.name_state.show()
        self.generate_button.setEnabled(not generating and not model_busy and not no_kb)
        if no_kb:
            tip = "No knowledge base yet: build one in the Knowledge base tab first"
        elif model_busy:
            tip = "Wait for the chat's answer: the model runs one thing at a time"
        else:
            tip = adds
        self.generate_button.setToolTip(tip)
        self.cancel_button.setEnabled(generating)
        for button in (self.export_button, self.delete_button):
            button.setEnabled(has and not generating)
            button.setToolTip("" if has else "Open a dataset first: click one in the list")
        self.import_button.setEnabled(not generating and not model_busy)

    def set_running(self, on: bool) -> None:
        """While a run goes, its settings and the dataset list are not to be changed."""
        for w in (
            self.kb_combo,
            self.name_edit,
            self.count_spin,
            self.teacher_combo,
            self.teacher_traces,
            self.rewrite,
            *self.kind_boxes.values(),
            self.dataset_list,
        ):
            w.setEnabled(not on)
        if not on:
            self._on_teacher_changed(self.teacher_combo.currentIndex())

    # -- progress --
    def begin(self, target: int, text: str) -> None:
        """A run starts: ``target`` examples (0: not known yet), ``text`` says what happens."""
        self.progress.setRange(0, target)
        self.progress.setValue(0)
        self.progress_label.setText(text)

    def show_progress(self, event: Progress) -> None:
        self.progress.setRange(0, max(1, event.target))
        self.progress.setValue(min(event.accepted, event.target))
        self.progress_label.setText(
            f"{event.accepted} of {event.target} accepted · {event.rejected} rejected · "
            f"{event.per_minute:.0f} per minute · "
            + (time_left(event.eta_s) if event.accepted < event.target else "done")
        )

    def end(self) -> None:
        """The run ended (done, stopped or failed)."""
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        if self.progress_label.text().startswith(("Loading", "Importing")):
            self.progress_label.setText("")  # it failed before it began: the banner says why
