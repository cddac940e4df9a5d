"""The Chat tab's footer: the last run's figures, thumbs up or down, Add to dataset…."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QToolButton, QWidget

from core.agent.events import Finished, RunStats
from core.conversations import FEEDBACK_DOWN, FEEDBACK_UP
from desktop.fit import ElidedLabel
from desktop.phase_clock import PhaseClock


def format_stats(stats: RunStats) -> str:
    parts = [
        f"{stats.tokens_per_s:.1f} tokens/s",
        f"{stats.rounds} round{'s' if stats.rounds != 1 else ''}",
        f"prompt {stats.prompt_tokens:,} tokens read, {stats.cached_tokens:,} already known",
        f"{stats.seconds:.1f} s",
    ]
    if stats.protocol_errors:
        n = stats.protocol_errors
        parts.append(f"{n} format slip{'s' if n != 1 else ''}")
    return " · ".join(parts)


class ChatFooter(QWidget):
    """What the last run did; once it answered, what the user thinks of the answer."""

    feedback_clicked = Signal(str)
    """``up`` or ``down``: a thumb was clicked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)  # the spacing of the tab's column it sits in
        self.label = ElidedLabel("", self, min_chars=30)
        self.label.setObjectName("footer")
        self.label.setToolTip(
            "Speed, search rounds, the prompt's tokens the model read and those it already "
            "had from the last turn (its cache), the time taken, and the model's slips from "
            "the search format (protocol errors)"
        )
        row.addWidget(self.label, 1)
        self.thumb_up = QToolButton(self)
        self.thumb_up.setText("✓ Good")
        self.thumb_up.setToolTip("A good answer")
        self.thumb_down = QToolButton(self)
        self.thumb_down.setText("✗ Bad")
        self.thumb_down.setToolTip("A bad answer")
        for button, value in ((self.thumb_up, FEEDBACK_UP), (self.thumb_down, FEEDBACK_DOWN)):
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.clicked.connect(lambda _on, v=value: self.feedback_clicked.emit(v))
            row.addWidget(button)
        self.add_dataset_button = QPushButton("Add to dataset…", self)
        self.add_dataset_button.setToolTip("Make this question a training example")
        row.addWidget(self.add_dataset_button)
        self._clock = PhaseClock(self.label, self)

    def text(self) -> str:
        return self.label.text()

    def set_text(self, text: str) -> None:
        """Show ``text`` (and stop the running clock, if any)."""
        self._clock.stop()
        self.label.setText(text)

    def start_clock(self, phase: str) -> None:
        """``Loading the model… 3.2 s``: what the run waits for, with the time since it
        started (:class:`desktop.phase_clock.PhaseClock`)."""
        self._clock.start(phase)

    def set_phase(self, phase: str) -> None:
        """What the running clock says the run is doing now (``Generating…``)."""
        self._clock.set_phase(phase)

    def stop_clock(self) -> None:
        """Leave the last text as it is and stop updating it."""
        self._clock.stop()

    def show_finished(self, event: Finished) -> None:
        """The figures of a run that ended (``Stopped.`` first when the user stopped it)."""
        text = format_stats(event.stats)
        self.set_text(f"Stopped. {text}" if event.reason == "cancelled" else text)

    def show_feedback(self, on: bool, feedback: str = "") -> None:
        """The thumbs and Add to dataset… show for an answer; ``feedback`` is checked."""
        for widget in (self.thumb_up, self.thumb_down, self.add_dataset_button):
            widget.setVisible(on)
        self.set_feedback(feedback)

    def set_feedback(self, feedback: str) -> None:
        self.thumb_up.setChecked(feedback == FEEDBACK_UP)
        self.thumb_down.setChecked(feedback == FEEDBACK_DOWN)
