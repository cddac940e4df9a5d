"""The Chat tab's ask box: the question, Ask and Stop."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget


class QuestionBox(QPlainTextEdit):
    """Enter asks; Shift+Enter starts a new line."""

    submitted = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class AskBox(QWidget):
    """The question box with Ask and Stop beside it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)  # the spacing of the tab's column it sits in
        self.question = QuestionBox(self)
        self.question.setObjectName("questionBox")
        self.question.setPlaceholderText("Ask a question about your documents…  (Enter to ask)")
        self.question.setFixedHeight(64)
        self.ask_button = QPushButton("Ask", self)
        self.ask_button.setObjectName("primary")
        self.ask_button.setMinimumHeight(34)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setMinimumHeight(34)
        buttons = QVBoxLayout()
        buttons.addWidget(self.ask_button)
        buttons.addWidget(self.stop_button)
        row.addWidget(self.question, 1)
        row.addLayout(buttons)

    def text(self) -> str:
        return self.question.toPlainText().strip()

    def set_state(self, *, running: bool, model_busy: bool, missing: str = "") -> None:
        """Ask while nothing runs, the model is free and nothing is ``missing`` (why a
        question cannot be asked: no knowledge base); Stop while a run goes on."""
        self.ask_button.setEnabled(not running and not model_busy and not missing)
        self.ask_button.setToolTip(
            "Wait for the dataset run: the model runs one thing at a time"
            if model_busy
            else missing
        )
        self.stop_button.setEnabled(running)
        self.question.setReadOnly(running)
