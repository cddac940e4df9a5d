""" "Add to dataset" from the chat: a question the user asked becomes a training example.

The user gives the short answer (and may correct the cited answer); the example then goes
through the same checks and the same real retrieval as every other example.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from core.dataset.chat_turn import DUPLICATE, TurnToDataset

REJECTION_SENTENCES = {
    "answer_not_found": "no passage that searching the question finds contains that answer; "
    "check the answer's wording against the document",
    "answer_in_question": "the question already contains its answer",
    "near_duplicate": "a question like this one is in the dataset already",
    "round_trip": "searching the question does not find the passage with the answer",
    "question_length": "the question is too short or too long",
    "answer_length": "the answer is too long: give the short fact (a name, a value, a phrase)",
}


def rejection_sentence(reason: str, detail: str) -> str:
    return REJECTION_SENTENCES.get(reason, f"{reason}: {detail}")


def outcome_sentence(dataset: str, outcome: TurnToDataset) -> str:
    """What became of a question sent to ``dataset``, as the window says it."""
    if outcome.added:
        return f"Added to dataset {dataset}."
    if outcome.reason == DUPLICATE:
        return "Not added: this question is in the dataset already."
    return f"Not added: {rejection_sentence(outcome.reason, outcome.detail)}."


class AddToDatasetDialog(QDialog):
    def __init__(
        self,
        question: str,
        model_answer: str,
        datasets: list[str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add to dataset")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "This question becomes a training example: the app finds the passage with the "
            "answer by searching the question, and records the trace a tuned model should "
            "write.",
            self,
        )
        intro.setWordWrap(True)
        intro.setObjectName("hint")
        layout.addWidget(intro)
        form = QFormLayout()
        self.dataset = QComboBox(self)
        self.dataset.setEditable(True)
        self.dataset.addItems(datasets)
        if not datasets:
            self.dataset.setEditText("from-chat")
        self.question = QLabel(question, self)
        self.question.setWordWrap(True)
        self.answer = QLineEdit(self)
        self.answer.setPlaceholderText("the short answer, as the document says it")
        self.cited = QPlainTextEdit(self)
        self.cited.setPlainText(model_answer)
        self.cited.setFixedHeight(80)
        form.addRow("Dataset", self.dataset)
        form.addRow("Question", self.question)
        form.addRow("Answer", self.answer)
        form.addRow("Cited answer", self.cited)
        layout.addLayout(form)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.answer.textChanged.connect(self._check)
        layout.addWidget(self.buttons)
        self._check()

    def _check(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(bool(self.answer.text().strip() and self.dataset.currentText().strip()))

    def values(self) -> tuple[str, str, str]:
        """(dataset name, short answer, cited answer)."""
        return (
            self.dataset.currentText().strip(),
            self.answer.text().strip(),
            self.cited.toPlainText().strip(),
        )
