"""The Training tab's monitor: the run's status line, recall, progress, loss chart and log.

It renders the worker's typed events (:mod:`core.training.events`), live or replayed
from a past run's ``events.jsonl``. Its widgets sit in the tab's right column, in one
layout with the run history, so the chart, the log and the history share its height.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.training.events import (
    Cancelled,
    Checkpoint,
    Done,
    Error,
    Eval,
    Exporting,
    GuardDone,
    Guarding,
    Log,
    Preparing,
    Started,
    Step,
    WorkerEvent,
)
from core.training.guard import SIDE_WORDS
from core.training.rounds import RoundDone, RoundStep, RunEvent
from desktop import embedder_runs as er
from desktop.loss_chart import LossChart
from desktop.scaffold import section_title


def duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float | int) else "–"


def _threads(event: Started) -> str:
    return f", {event.threads} threads" if event.threads else ""


def _from_step(event: Started) -> str:
    return f", from step {event.start_step}" if event.start_step else ""


@dataclass
class Recall:
    """An embedder run's recall@k: at step 0 (the base), and the latest."""

    before: dict[str, Any] = field(default_factory=dict)
    now: dict[str, Any] = field(default_factory=dict)
    questions: int = 0
    k: int = 5


VERDICT_COLOURS = {"better": "#047857", "same": "#374151", "worse": "#b91c1c"}


class RunMonitor(QObject):
    started = Signal()
    """A live run's worker has started (the history now lists it as running)."""
    compare_requested = Signal(str)
    """"Compare with base" on a tuned model (its name)."""
    stepped = Signal(str, int, int, float)
    """A live run's step: (run, step, steps in all, loss), for the history's row."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.run_name = ""
        self.status_label = section_title("No run yet.", parent)
        self.recall_label = QLabel("", parent)
        self.recall_label.setObjectName("recallLine")
        self.recall_label.setStyleSheet("font-weight: 600; color: #047857;")
        self.recall_label.setToolTip(
            "How often the chunk that answers a held-out question is among the first k found, "
            "with the base embedder (before) and the tuned one"
        )
        self.recall_label.hide()
        self.guard_model = ""
        """The tuned model the guard line is about."""
        self.guard_row = QWidget(parent)
        grow = QHBoxLayout(self.guard_row)
        grow.setContentsMargins(0, 0, 0, 0)
        self.verdict_label = QLabel("", self.guard_row)
        self.verdict_label.setObjectName("verdictLine")
        self.verdict_label.setWordWrap(True)
        # Two lines of room: a wrapped label's height does not reach the column's layout.
        self.verdict_label.setMinimumHeight(2 * self.verdict_label.fontMetrics().lineSpacing() + 4)
        self.verdict_label.setToolTip(
            "The guard: the base and the tuned model on the dataset's held-out questions "
            "(documents the run never saw), paired per question, McNemar's exact p"
        )
        self.compare_button = QPushButton("Compare with base", self.guard_row)
        self.compare_button.setToolTip("Open the Compare tab on this model and its guard table")
        self.compare_button.clicked.connect(
            lambda: self.compare_requested.emit(self.guard_model) if self.guard_model else None
        )
        grow.addWidget(self.verdict_label, 1)
        grow.addWidget(self.compare_button)
        self.guard_row.hide()
        self._verdict: tuple[str, str] = ("", "")
        self.progress = QProgressBar(parent)
        self.progress.setTextVisible(True)
        self.chart = LossChart(parent)
        self.log_view = QPlainTextEdit(parent)
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.log_view.setPlaceholderText("What the training process says")
        self._recall = Recall()
        self._start_time = 0.0

    def place(self, layout: QVBoxLayout) -> None:
        layout.addWidget(self.status_label)
        layout.addWidget(self.recall_label)
        layout.addWidget(self.guard_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.chart, 3)
        layout.addWidget(self.log_view, 2)

    # -- what the monitor says -----------------------------------------------------------
    def say(self, text: str) -> None:
        """The status line."""
        self.status_label.setText(text)

    def log(self, line: str) -> None:
        self.log_view.appendPlainText(line)

    def begin(self, name: str, note: str, *, clear: bool = True) -> None:
        """A run starts (``clear``: afresh, not resumed): its first log line, ``note``."""
        self.run_name = name
        self._start_time = time.monotonic()
        if clear:
            self.clear()
        self.log(note)

    @property
    def elapsed(self) -> str:
        """How long the run started last has taken."""
        return duration(time.monotonic() - self._start_time)

    def ended(self, state: str) -> None:
        """The run ended in ``state`` (done, cancelled, failed…)."""
        self.say(f"{self.run_name}: {state} after {self.elapsed}")
        self.finished(state == "done")

    def clear(self) -> None:
        """An empty chart and log (the recall line is :meth:`reset_recall`'s)."""
        self.chart.clear()
        self.log_view.clear()
        self.show_guard("", "", "")

    def show_guard(self, model: str, verdict: str, sentence: str) -> None:
        """The guard's verdict on ``model`` in one line, with "Compare with base" (hidden
        when there is no sentence)."""
        self.guard_model = model
        self._verdict = (verdict, sentence)
        colour = VERDICT_COLOURS.get(verdict, "#6b7280")
        self.verdict_label.setStyleSheet(f"font-weight: 600; color: {colour};")
        self.verdict_label.setText(sentence)
        self.compare_button.setVisible(bool(model))
        self.guard_row.setVisible(bool(sentence))

    def working(self) -> None:
        """A busy bar until the first step says how many there are."""
        self.progress.setRange(0, 0)

    def finished(self, done: bool) -> None:
        """A full bar when the run is done; else the bar stays where the run stopped (a
        cancelled run keeps the steps it made)."""
        if done or self.progress.maximum() == 0:  # done, or stopped before any count
            self.progress.setRange(0, 1)
            self.progress.setValue(1 if done else 0)

    def reset_recall(self) -> None:
        self._recall = Recall()
        self.recall_label.hide()

    def _show_recall(self, *, finished: bool) -> None:
        r = self._recall
        self.recall_label.setText(
            er.recall_line(r.before, r.now, r.questions, finished=finished, k=r.k)
        )
        self.recall_label.show()

    def _headline(self, text: str) -> None:
        self.status_label.setText(f"{self.run_name}: {text}")

    def _steps(self, total: int, value: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(value)

    # -- events ----------------------------------------------------------------------------
    def replay(self, events: list[WorkerEvent]) -> None:
        """A past run's curve, log and recall, from the events it recorded."""
        self.clear()
        self.reset_recall()
        for event in events:
            self.show_event(event, live=False)

    def show_live(self, items: list[object]) -> None:
        """What a running job pushes: the worker's events, an alternating schedule's steps
        and its runs' events, the colab CLI's output lines (``("log", stream, line)``)."""
        for item in items:
            if isinstance(item, RoundStep | RoundDone):
                line = er.round_line(item)
                self.log(line)
                self.say(line)
                if isinstance(item, RoundStep) and item.step in ("embedder", "generator"):
                    self.chart.clear()
            elif isinstance(item, RunEvent):  # one of a schedule's training runs
                self.run_name = item.run
                self.show_event(item.worker, live=True)
            elif isinstance(item, WorkerEvent):
                self.show_event(item, live=True)
            elif isinstance(item, tuple) and len(item) == 3:
                self.log(f"colab: {item[2]}")

    def show_event(self, event: WorkerEvent, *, live: bool) -> None:
        """Draw one event; ``live`` ones (not replayed from a past run) move the status line
        and the progress bar too."""
        if isinstance(event, Preparing):
            self.log(event.message)
            if live:
                self._headline(event.message)
        elif isinstance(event, Started):
            self._started(event, live=live)
        elif isinstance(event, Step):
            self.chart.add_step(event.step, event.loss, event.total)
            if live:
                self.stepped.emit(self.run_name, event.step, event.total, event.loss)
                self._steps(event.total, event.step)
                self._headline(
                    f"step {event.step}/{event.total} · loss {event.loss:.3f} · "
                    f"{event.tokens_per_s:.0f} tokens/s · ETA {duration(event.eta_s)}"
                )
        elif isinstance(event, Eval):
            self._eval(event)
        elif isinstance(event, Checkpoint):
            self.log(f"checkpoint at step {event.step}")
        elif isinstance(event, Exporting):
            self.log(f"exporting {event.what} ({event.index}/{event.total})…")
            if live:
                self._headline(f"exporting {event.what}…")
        elif isinstance(event, Guarding):
            if live:
                self._steps(event.total, event.index)
                side = SIDE_WORDS.get(event.side, event.side)
                self._headline(f"guard: {side} ({event.index}/{event.total})")
        elif isinstance(event, GuardDone):
            self.log(f"Guard: {event.sentence}")
            self.show_guard("", event.verdict, event.sentence)
        elif isinstance(event, Done):
            self._done(event)
        elif isinstance(event, Cancelled):
            self.log(f"Cancelled at step {event.step}.")
        elif isinstance(event, Error):
            self.log(f"Error: {event.message} {event.fix}")
        elif isinstance(event, Log):
            self.log(event.message)

    def _started(self, event: Started, *, live: bool) -> None:
        self.chart.total = event.total
        if event.kind == "embedder":
            self._recall.questions = event.rows_validation
            corpus = "?" if event.corpus is None else event.corpus
            self.log(
                f"Tuning the embedder {event.base} on {event.device} ({event.engine}"
                f"{_threads(event)}): {event.rows_train} training questions, "
                f"{event.rows_validation} held-out among {corpus} passages, "
                f"{event.total} steps{_from_step(event)}."
            )
        else:
            self.log(
                f"Training on {event.device} ({event.engine}, {event.dtype}{_threads(event)}): "
                f"{event.rows_train} rows, {event.total} steps{_from_step(event)}; "
                f"{event.trainable_params:,} trainable weights."
            )
        if live:
            self._steps(event.total, event.start_step)
            self._headline(
                f"training: resumed at step {event.start_step}/{event.total}; the next step "
                "takes longest…"
                if event.start_step
                else f"training: step 0/{event.total}; the first step takes longest…"
            )
            self.started.emit()

    def _eval(self, event: Eval) -> None:
        if event.loss is not None:
            self.chart.add_eval(event.step, event.loss)
        if event.recall is None:
            self.log(f"step {event.step}: validation loss {_num(event.loss)}")
            if event.step == 0:  # the first training step is still on its way
                self._headline(f"validation loss {_num(event.loss)} before training; step 1…")
            return
        # An embedder's validation: recall always, a loss only with enough questions.
        self.log(er.eval_log_line(event))
        if self._recall.before:
            self._recall.now = dict(event.recall)
        else:
            self._recall.before = dict(event.recall)
        self._show_recall(finished=False)

    def _done(self, event: Done) -> None:
        metrics = event.metrics
        if event.kind != "embedder" and self._verdict[1]:
            self.show_guard(event.model, *self._verdict)
        if event.kind != "embedder":
            self.log(
                f"Done: model {event.model} (final loss {_num(metrics.get('final_loss'))}, "
                f"validation loss {_num(metrics.get('eval_loss'))}); files: "
                + ", ".join(event.outputs)
            )
            return
        r = self._recall
        r.before = metrics.get("recall_before") or r.before
        r.now = metrics.get("recall_after") or r.now
        r.questions = metrics.get("validation_questions", 0) or r.questions
        self._show_recall(finished=True)
        self.log(
            f"Done: the tuned embedder {event.model} "
            f"({er.recall_figures(metrics.get('recall_after') or {})}); re-embed a "
            "knowledge base with it below to search with it."
        )
