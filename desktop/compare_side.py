"""The Compare tab's side-by-side view: one question, model A's trace beside model B's."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QVBoxLayout, QWidget

from desktop.scaffold import section_title, splitter
from desktop.trace_view import TraceView


class SideBySide(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        scol = QVBoxLayout(self)
        scol.setContentsMargins(0, 8, 0, 0)
        qrow = QHBoxLayout()
        self.question = QLineEdit(self)
        self.question.setPlaceholderText("A question for both models")
        self.ask_button = QPushButton("Ask both", self)
        self.ask_button.setObjectName("primary")
        qrow.addWidget(self.question, 1)
        qrow.addWidget(self.ask_button)
        scol.addLayout(qrow)
        split = splitter(self, Qt.Orientation.Horizontal)
        self.trace_a = TraceView(split)
        self.trace_b = TraceView(split)
        for view, name in ((self.trace_a, "A"), (self.trace_b, "B")):
            view.set_empty_text(f"Model {name}'s trace appears here.")
        split.addWidget(self.trace_a)
        split.addWidget(self.trace_b)
        self.side_split = split
        titles = QHBoxLayout()
        self.title_a = section_title("A", self)
        self.title_b = section_title("B", self)
        for t in (self.title_a, self.title_b):
            titles.addWidget(t, 1)
        scol.addLayout(titles)
        scol.addWidget(split, 1)

    def start(self, question: str, a_label: str, b_label: str) -> None:
        """Both traces cleared and headed by the question, the titles naming the models."""
        self.title_a.setText(f"A · {a_label}")
        self.title_b.setText(f"B · {b_label}")
        for view in (self.trace_a, self.trace_b):
            view.clear()
            view.add_question(question)

    @Slot(list)
    def show_events(self, items: list[tuple[int, object]]) -> None:
        """Events tagged 0 (model A) or 1 (model B), each into its own trace."""
        for index, view in enumerate((self.trace_a, self.trace_b)):
            events = [e for i, e in items if i == index]
            if events:
                view.handle(events)
