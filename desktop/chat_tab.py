"""Chat tab: ask a question, watch the live trace, keep the conversation. It lays out its
panels and asks through ``core.chat``, the flow `cotrag ask` runs too."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QWidget

from core.agent.events import Finished
from core.agent.record import RunRecord
from core.chat import Question, ask, keep_turn
from core.conversations import Conversation, ConversationStore
from core.dataset.chat_turn import TurnToDataset, add_turn_to_dataset
from core.dataset.service import datasets
from core.knowledge.types import Hit
from core.workspace import Workspace
from desktop.add_to_dataset import AddToDatasetDialog, outcome_sentence
from desktop.chat_ask import AskBox
from desktop.chat_conversations import ConversationList
from desktop.chat_footer import ChatFooter
from desktop.chat_toolbar import ChatToolbar
from desktop.confirm import confirm_destructive
from desktop.passage_dialog import PassageDialog
from desktop.scaffold import TabView, column, splitter, tab_link
from desktop.tasks import Job, JobGroup, Push
from desktop.trace_view import ASK_BELOW, TraceView

log = logging.getLogger(__name__)

NO_KNOWLEDGE_BASE = (
    "No knowledge base yet.<br>Build one from your documents in the "
    + tab_link("kb", "Knowledge base tab")
    + ", then ask about them here.<br>To ask the model alone, set Mode to closed book."
)


class ChatTab(TabView):
    run_state_changed = Signal(bool)
    models_added = Signal()
    """A model file was added from the chat (the Models tab lists it too)."""
    open_models = Signal()
    """The user wants the Models tab (to search the hub and pull a model)."""

    def __init__(
        self, workspace: Workspace, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.settings = settings
        self.conversations = ConversationStore(workspace.layout.conversations)
        self.conversation: Conversation | None = None
        self.jobs = JobGroup(self, self.show_error)
        self._job: Job | None = None
        self._model_busy = False
        self.setAcceptDrops(True)
        self._build()
        self.toolbar.refresh_models()
        self.refresh_conversations()
        self._set_running(False)

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        self.splitter = splitter(self)
        root.addWidget(self.splitter)

        self.side = ConversationList(self.splitter)
        self.side.opened.connect(self.open_conversation)
        self.side.new_button.clicked.connect(self.new_conversation)
        self.side.export_button.clicked.connect(self.export_conversation)
        self.side.delete_button.clicked.connect(self.delete_conversation)

        main, mcol = column(self.splitter, (6, 12, 12, 8))
        mcol.setSpacing(8)
        self.toolbar = ChatToolbar(self.ws, main)
        self.toolbar.model_added.connect(self._on_model_added)
        self.toolbar.failed.connect(self.show_error)
        self.toolbar.choice_changed.connect(self._update_buttons)
        self.toolbar.get_models_button.clicked.connect(self.open_models)
        mcol.addWidget(self.toolbar)
        self.trace = TraceView(main)
        self.trace.passage_requested.connect(self.open_passage)
        self.trace.run_finished.connect(self._on_run_finished)
        self.trace.link_activated.connect(self.open_tab)
        mcol.addWidget(self.trace, 1)
        mcol.addWidget(self.banner)
        self.ask_box = AskBox(main)
        self.ask_box.question.submitted.connect(self.ask)
        self.ask_box.ask_button.clicked.connect(self.ask)
        self.ask_box.stop_button.clicked.connect(self.stop)
        QShortcut(QKeySequence("Esc"), self, self.stop)
        mcol.addWidget(self.ask_box)
        self.footer = ChatFooter(main)
        self.footer.feedback_clicked.connect(self.set_feedback)
        self.footer.add_dataset_button.clicked.connect(self.ask_add_to_dataset)
        mcol.addWidget(self.footer)
        self._show_feedback(False)

        self.splitter.addWidget(self.side)
        self.splitter.addWidget(main)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 4)
        self.splitter.setSizes([220, 900])

    # -- models -------------------------------------------------------------------
    def refresh_models(self) -> None:
        """Re-read the models (a run or a pull just registered one); keeps the choice."""
        self.toolbar.refresh_models(select=self.toolbar.model or "")

    @Slot(Path)
    def _on_model_added(self, path: Path) -> None:
        self.models_added.emit()
        self.status_message.emit(f"Added model {path.name}.")

    @property
    def model_combo(self) -> QComboBox:
        """The model picker (a test or the window reads what it offers)."""
        return self.toolbar.model_combo

    @Slot(list, str)
    def set_knowledge_bases(self, names: list[str], current: str) -> None:
        self.toolbar.set_knowledge_bases(names, current)
        self.trace.set_empty_text(ASK_BELOW if names else NO_KNOWLEDGE_BASE)

    # -- running ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._job is not None

    @property
    def current_job(self) -> Job | None:
        """The run in progress (None when no question is being answered)."""
        return self._job

    def _set_running(self, on: bool) -> None:
        self._update_buttons()
        self.toolbar.set_enabled_for_run(on)
        self.run_state_changed.emit(on)

    def _update_buttons(self) -> None:
        """Ask, Export… and Delete, enabled only with something to act on."""
        running, toolbar = self.running, self.toolbar
        self.ask_box.set_state(
            running=running, model_busy=self._model_busy, missing=toolbar.missing()
        )
        self.side.set_enabled_for_run(running, bool(self.conversation and self.conversation.turns))

    @Slot(bool)
    def set_model_busy(self, busy: bool) -> None:
        """A dataset is being generated with the model: one stream at a time."""
        self._model_busy = busy
        self._update_buttons()

    @Slot()
    def ask(self, question: str | None = None) -> None:
        text = question.strip() if isinstance(question, str) else self.ask_box.text()
        if not text or self.running:
            return
        if self._model_busy:
            self.show_error("A dataset is being generated with the model; ask when it is done.")
            return
        mode, kb, model = self.toolbar.mode, self.toolbar.kb, self.toolbar.model
        if mode != "closed" and not kb:
            self.show_error(
                "Choose a knowledge base first (build one in the Knowledge base tab), "
                "or switch the mode to closed book."
            )
            return
        self.hide_error()
        if self.conversation is None:
            self.conversation = self.conversations.new(text, kb=kb, model=model or "")
        self.ask_box.question.clear()
        self._show_feedback(False)  # the thumbs belong to the answer now being written
        self.trace.add_question(text)
        self.footer.start_clock("Loading the model…")
        request = Question(
            text, mode=mode, kb=kb, model=model, answer_model=self.toolbar.answer_model
        )

        def work(push: Push, cancel: threading.Event) -> RunRecord:
            asking = ask(self.ws, request, cancel)
            try:
                for event in asking:
                    push(event)
            except Exception:
                if not asking.record.finished:
                    raise
                # The run failed after it streamed: the trace on screen is kept (and saved)
                # with its error; Finished already carried the sentence to show.
                log.exception("the run failed after streaming")
            return asking.record

        self._job = self.jobs.start(
            work,
            "agent",
            on_items=self._on_events,
            on_result=self._on_record,
            on_error=self._on_failed,
            on_finished=self._on_job_finished,
        )
        self._set_running(True)

    def ask_about(self, kb: str, question: str) -> None:
        """Ask ``question`` of knowledge base ``kb`` in a new conversation (a question the
        welcome suggested): ``kb`` is chosen even before a list that names it arrives."""
        combo = self.toolbar.kb_combo
        if combo.findText(kb) < 0:
            combo.addItem(kb)
        combo.setCurrentText(kb)
        self.new_conversation()
        self.ask(question)

    @Slot()
    def stop(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.footer.set_text("Stopping…")

    @Slot(list)
    def _on_events(self, events: list[object]) -> None:
        self.trace.handle(events)
        if self.running and not any(isinstance(e, Finished) for e in events):
            self.footer.set_phase("Generating…")

    @Slot(object)
    def _on_run_finished(self, event: Finished) -> None:
        self.footer.show_finished(event)
        if event.reason == "error" and event.error:
            self.show_error(event.error)

    @Slot(object)
    def _on_record(self, record: RunRecord) -> None:
        conv = self.conversation
        if conv is None:
            return
        try:
            keep_turn(self.conversations, record, conv)
        except OSError as exc:
            self._save_failed(exc)
        self.refresh_conversations(select=conv.id)
        self._show_feedback(bool(record.answer) and record.mode != "closed")

    def _save_conversation(self) -> None:
        if self.conversation is None:
            return
        try:
            self.conversations.save(self.conversation)
        except OSError as exc:
            self._save_failed(exc)

    def _save_failed(self, exc: OSError) -> None:
        log.exception("saving conversation failed")
        self.show_error(f"The conversation could not be saved ({exc}); check the disk.")

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.footer.set_text("")
        self.show_error(message)

    @Slot()
    def _on_job_finished(self) -> None:
        self.footer.stop_clock()
        self._job = None
        self._set_running(False)
        self.ask_box.question.setFocus()

    def shutdown(self, timeout: float = 15.0) -> None:
        self.jobs.shutdown(timeout)

    # -- feedback and "Add to dataset" --------------------------------------------
    def _show_feedback(self, on: bool) -> None:
        turn = self.conversation.turns[-1] if on and self.conversation else {}
        self.footer.show_feedback(on, str(turn.get("feedback", "")))

    @Slot(str)
    def set_feedback(self, value: str) -> None:
        """Thumbs up or down on the last answer (clicking the same one again clears it)."""
        if self.conversation is None or not self.conversation.turns:
            return
        turn = self.conversation.turns[-1]
        turn["feedback"] = "" if turn.get("feedback") == value else value
        self.footer.set_feedback(turn["feedback"])
        self._save_conversation()

    @Slot()
    def ask_add_to_dataset(self) -> None:
        if self.conversation is None or not self.conversation.turns:
            return
        turn = self.conversation.turns[-1]
        dialog = AddToDatasetDialog(
            str(turn.get("question", "")),
            str(turn.get("answer", "")),
            datasets(self.ws).names(),
            self,
        )
        if dialog.exec():
            self.add_to_dataset(*dialog.values())

    def add_to_dataset(self, name: str, answer: str, cited: str) -> None:
        """Trace the last question through the knowledge base into dataset ``name``."""
        conv = self.conversation
        if conv is None or not conv.turns:
            return
        turn, kb = conv.turns[-1], conv.kb or self.toolbar.kb
        if not kb:
            self.show_error("This conversation has no knowledge base to find the answer in.")
            return

        def work(push: Push, cancel: threading.Event) -> TurnToDataset:
            return add_turn_to_dataset(
                self.ws, turn, kb=kb, dataset=name, answer=answer, cited=cited, cancel=cancel
            )

        def done(outcome: TurnToDataset) -> None:
            if not outcome.added:
                self.show_error(outcome_sentence(name, outcome))
                return
            self._save_conversation()
            self.status_message.emit(outcome_sentence(name, outcome))

        self.jobs.start(work, "add-to-dataset", on_result=done)

    # -- passages -----------------------------------------------------------------
    @Slot(object)
    def open_passage(self, hit: Hit) -> None:
        number = self.trace.number_of(hit)
        dialog = PassageDialog(hit, self, number)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.last_dialog = dialog

    # -- conversations ------------------------------------------------------------
    def refresh_conversations(self, select: str = "") -> None:
        self.side.show_conversations(self.conversations.list(), select)

    @Slot(str)
    def open_conversation(self, conv_id: str) -> None:
        """Show a saved conversation, every question with its trace, as it was asked."""
        try:
            conv = self.conversations.load(conv_id)
        except Exception as exc:  # a damaged file must not take the window down
            log.exception("opening conversation %s failed", conv_id)
            self.show_error(str(exc))
            return
        self.conversation = conv
        self.trace.clear()
        self.hide_error()
        last, damaged = self.trace.show_saved(conv.turns)
        for problem in damaged:
            self.show_error(f"One question in this conversation could not be shown ({problem}).")
        if conv.kb:
            self.toolbar.kb_combo.setCurrentText(conv.kb)
        if last is not None:
            self.footer.show_finished(last)  # "Stopped." too, when the user stopped it
        else:
            self.footer.set_text("")
        final = conv.turns[-1] if conv.turns else {}
        self._show_feedback(bool(final.get("answer")) and final.get("mode") != "closed")
        self._update_buttons()

    @Slot()
    def new_conversation(self) -> None:
        self.conversation = None
        self._show_feedback(False)
        self.trace.clear()
        self.footer.set_text("")
        self.hide_error()
        self.side.list.clearSelection()
        self._update_buttons()
        self.ask_box.question.setFocus()

    @Slot()
    def delete_conversation(self) -> None:
        conv = self.conversation
        if conv is None or not conv.turns:
            return
        if confirm_destructive(
            self, "Delete conversation", f"Delete the conversation “{conv.title}”?"
        ):
            self.delete_current()

    def delete_current(self) -> None:
        if self.conversation is not None:
            try:
                self.conversations.delete(self.conversation.id)
            except Exception as exc:
                self.show_error(str(exc))
        self.new_conversation()
        self.refresh_conversations()

    @Slot()
    def export_conversation(self) -> None:
        conv = self.conversation
        if conv is None or not conv.turns:
            self.show_error("Open or start a conversation first, then export it.")
            return
        file, _ = QFileDialog.getSaveFileName(
            self, "Export conversation", f"{conv.id}.json", "JSON (*.json)"
        )
        if file:
            self.export_to(Path(file))

    def export_to(self, target: Path) -> None:
        if self.conversation is None:
            return
        try:
            self.conversations.export(self.conversation.id, target)
        except Exception as exc:
            log.exception("export failed")
            self.show_error(f"Export failed: {exc}")
            return
        self.status_message.emit(f"Exported to {target}.")

    # -- dropping a model ---------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if any(u.isLocalFile() and u.toLocalFile().lower().endswith(".gguf") for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            if isinstance(url, QUrl) and url.isLocalFile():
                self.toolbar.add_model(Path(url.toLocalFile()))
        event.acceptProposedAction()
