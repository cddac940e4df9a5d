"""The Compare tab's side-by-side view: one question, model A's trace beside model B's."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QSplitter, QVBoxLayout, QWidget

from core.agent.events import Finished
from desktop.fit import ElidedLabel
from desktop.phase_clock import PhaseClock
from desktop.scaffold import column, splitter
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
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip("Stop the model that is answering (Esc)")
        self.stop_button.setEnabled(False)
        qrow.addWidget(self.question, 1)
        qrow.addWidget(self.ask_button)
        qrow.addWidget(self.stop_button)
        scol.addLayout(qrow)
        # What the question waits for (A loads, A answers, B loads, B answers), timed.
        self.status = ElidedLabel("", self, min_chars=20)
        self.status.setObjectName("footer")
        self.clock = PhaseClock(self.status, self)
        # Each title sits on its own pane, so it moves with the splitter's handle.
        split = splitter(self, Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        self.side_split = split
        self.trace_a, self.title_a = self._pane(split, "A")
        self.trace_b, self.title_b = self._pane(split, "B")
        split.setSizes([1, 1])
        scol.addWidget(split, 1)
        scol.addWidget(self.status)

    def _pane(self, split: QSplitter, name: str) -> tuple[TraceView, ElidedLabel]:
        pane, pcol = column(split, (0, 0, 0, 0))
        title = ElidedLabel(name, pane, min_chars=8)
        title.setObjectName("sectionTitle")
        view = TraceView(pane)
        view.set_empty_text(f"Model {name}'s trace appears here.")
        pcol.addWidget(title)
        pcol.addWidget(view, 1)
        split.addWidget(pane)
        return view, title

    def start(self, question: str, a_label: str, b_label: str) -> None:
        """Both traces cleared and headed by the question, the titles naming the models,
        the clock running on "Loading model A…"."""
        self.title_a.setText(f"A · {a_label}")
        self.title_b.setText(f"B · {b_label}")
        for view in (self.trace_a, self.trace_b):
            view.clear()
            view.add_question(question)
        self.clock.start("Loading model A…")

    @Slot(list)
    def show_events(self, items: list[tuple[int, object]]) -> None:
        """Events tagged 0 (model A) or 1 (model B), each into its own trace; the clock
        says which model is loading or answering (A runs first, then B)."""
        for index, view in enumerate((self.trace_a, self.trace_b)):
            events = [e for i, e in items if i == index]
            if events:
                view.handle(events)
                self._follow(index, events)

    def _follow(self, index: int, events: list[object]) -> None:
        if not self.clock.running:
            return
        if any(isinstance(e, Finished) for e in events):
            if index == 0:
                self.clock.set_phase("Loading model B…")
            return
        answering = f"Model {'AB'[index]} is answering…"
        if self.clock.phase != answering:
            self.clock.set_phase(answering)

    def finish(self, stopped: bool) -> None:
        """The question is over: the clock stops on what happened."""
        self.clock.stop()
        took = f"{self.clock.elapsed:.1f} s"
        self.status.setText(f"Stopped after {took}." if stopped else f"Both answered in {took}.")
