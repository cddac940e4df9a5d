"""The welcome on a first start: what the app does, a sample knowledge base made from the
app's own user guide (``core.first_run``, with the indexing's progress and Cancel), then
three questions to ask it. The window shows it in place of the tabs while the data folder
is fresh and the user has not dismissed it."""

from __future__ import annotations

import threading

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.first_run import SampleDone, SampleEvent, make_sample_kb, suggested_questions
from core.knowledge.indexer import Progress
from core.workspace import Workspace
from desktop.error_banner import ErrorBanner
from desktop.kb_indexing import IndexProgress
from desktop.tasks import Job, JobGroup, Push

WHAT_IT_DOES = (
    "CoT-RAG Studio answers questions from your own documents with a small model that runs "
    "on this computer: you watch it think, search and cite the passages it used. Its traces "
    "become training data, so you can fine-tune the model on your documents and compare it "
    "with the one you started from."
)
OFFER = (
    "Try it first on a sample knowledge base made from the app's own user guide, then ask "
    "the app about itself. It takes a minute or less and only adds to your data folder."
)
CARD_WIDTH = 660


class WelcomePanel(QWidget):
    """A card in the middle of the window. ``question_chosen`` carries the knowledge base and
    the question clicked; ``dismissed`` says the user is done with the welcome."""

    question_chosen = Signal(str, str)
    dismissed = Signal()
    knowledge_base_made = Signal(str)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.setObjectName("welcome")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.jobs = JobGroup(self, self._failed)
        self._job: Job | None = None
        self.kb = ""
        self._build()
        self._show_step("offer")

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 24, 24, 24)
        row = QHBoxLayout()
        outer.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        self.card = QFrame(self)
        self.card.setObjectName("welcomeCard")
        # A fixed width (the smallest window has room for it) lets the wrapped text take
        # the height it needs as the card's content changes.
        self.card.setFixedWidth(CARD_WIDTH)
        row.addStretch(1)
        row.addWidget(self.card)
        row.addStretch(1)

        col = QVBoxLayout(self.card)
        col.setContentsMargins(32, 28, 32, 28)
        col.setSpacing(12)
        title = QLabel("Welcome to CoT-RAG Studio", self.card)
        title.setObjectName("welcomeTitle")
        col.addWidget(title)
        col.addWidget(self._text(WHAT_IT_DOES))
        col.addSpacing(4)

        self.offer = self._text(OFFER, "hint")
        col.addWidget(self.offer)
        self.progress = IndexProgress(self.card)
        self.progress.cancel_button.clicked.connect(self.cancel)
        self.progress.bar.setMaximumWidth(160)  # the room goes to what the run is doing
        col.addWidget(self.progress)
        self.banner = ErrorBanner(self.card)
        col.addWidget(self.banner)

        self.ready_label = self._text("")
        col.addWidget(self.ready_label)
        self.question_buttons: list[QPushButton] = []
        for question in suggested_questions():
            button = QPushButton(question.text, self.card)
            button.setObjectName("suggestion")
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.clicked.connect(lambda _=False, q=question.text: self._choose(q))
            col.addWidget(button)
            self.question_buttons.append(button)

        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        self.create_button = QPushButton("Create the sample knowledge base", self.card)
        self.create_button.setObjectName("primary")
        self.create_button.clicked.connect(self.create_sample)
        self.close_button = QPushButton("Not now", self.card)
        self.close_button.setToolTip("Start with your own documents; this welcome does not return")
        self.close_button.clicked.connect(self.dismissed)
        buttons.addWidget(self.create_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        col.addSpacing(4)
        col.addLayout(buttons)

    def _text(self, text: str, name: str = "welcomeText") -> QLabel:
        label = QLabel(text, self.card)
        label.setObjectName(name)
        label.setWordWrap(True)
        return label

    def _show_step(self, step: str) -> None:
        """``offer`` (and after a failure or Cancel), ``working`` or ``ready``."""
        self.offer.setVisible(step == "offer")
        self.create_button.setVisible(step == "offer")
        self.progress.setVisible(step == "working")
        self.progress.cancel_button.setEnabled(step == "working")
        self.ready_label.setVisible(step == "ready")
        for button in self.question_buttons:
            button.setVisible(step == "ready")
        self.close_button.setText("Close" if step == "ready" else "Not now")
        self.close_button.setEnabled(step != "working")

    # -- the sample knowledge base -------------------------------------------------
    @property
    def working(self) -> bool:
        return self._job is not None

    @Slot()
    def create_sample(self) -> None:
        if self._job is not None:
            return
        self.banner.hide()
        self._show_step("working")
        self.progress.start()

        def work(push: Push, cancel: threading.Event) -> SampleDone | None:
            done = None
            for event in make_sample_kb(self.ws, cancel):
                push(event)
                if isinstance(event, SampleDone):
                    done = event
            return done

        self._job = self.jobs.start(
            work,
            "sample-kb",
            on_items=self._on_events,
            on_result=self._on_done,
            on_finished=self._on_finished,
        )

    @Slot()
    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.progress.cancelling()

    @Slot(list)
    def _on_events(self, events: list[SampleEvent]) -> None:
        last = next((e for e in reversed(events) if isinstance(e, Progress)), None)
        if last is not None:
            self.progress.show_progress(last)

    @Slot(object)
    def _on_done(self, done: SampleDone | None) -> None:
        if done is None or not done.ready:
            self._show_step("offer")
            self.create_button.setText("Create the sample knowledge base")
            return
        self.kb = done.name
        if done.outcome == "found":
            text = f"A knowledge base named “{done.name}” was already there; it is used as it is."
        else:
            chunks = done.summary.chunks if done.summary else 0
            text = f"“{done.name}” is ready ({chunks} passages)."
        self.ready_label.setText(f"{text} Ask it one of these questions:")
        self._show_step("ready")
        self.knowledge_base_made.emit(done.name)

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.banner.show_message(message)
        self._show_step("offer")
        self.create_button.setText("Try again")

    @Slot()
    def _on_finished(self) -> None:
        self._job = None

    def _choose(self, question: str) -> None:
        if self.kb:
            self.question_chosen.emit(self.kb, question)

    def shutdown(self, timeout: float = 15.0) -> None:
        """Cancel the sample's indexing and wait for it (the window is closing)."""
        self.jobs.shutdown(timeout)
