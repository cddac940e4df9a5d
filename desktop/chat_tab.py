"""Chat tab: ask a question, watch the live trace, keep the conversation."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.agent.events import Finished, RunStats, Token
from core.conversations import Conversation, ConversationStore
from core.knowledge.types import Hit
from core.workspace import Workspace
from desktop.confirm import confirm_destructive
from desktop.error_banner import ErrorBanner
from desktop.passage_dialog import PassageDialog
from desktop.replay import events_from_record
from desktop.tasks import Job, JobGroup, Push
from desktop.trace_view import TraceView

log = logging.getLogger(__name__)

MODES = [
    ("loop", "Reason & search (loop)"),
    ("rag", "Search once, then answer (rag)"),
    ("closed", "No documents (closed book)"),
]


def format_stats(stats: RunStats) -> str:
    parts = [
        f"{stats.tokens_per_s:.1f} tokens/s",
        f"{stats.rounds} round{'s' if stats.rounds != 1 else ''}",
        f"{stats.cached_tokens} prompt tokens reused from cache",
        f"{stats.prompt_tokens} evaluated",
        f"{stats.seconds:.1f} s",
    ]
    if stats.protocol_errors:
        parts.append(f"{stats.protocol_errors} protocol error(s)")
    return " · ".join(parts)


class QuestionBox(QPlainTextEdit):
    """Enter asks; Shift+Enter starts a new line."""

    submitted = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class ChatTab(QWidget):
    status_message = Signal(str)
    error = Signal(str)
    run_state_changed = Signal(bool)
    models_added = Signal()
    open_models = Signal()
    """The user wants the Models tab (to search the hub and pull a model)."""
    """A model file was added from the chat (the Models tab lists it too)."""

    def __init__(
        self, workspace: Workspace, settings: QSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.settings = settings
        self.conversations = ConversationStore(workspace.layout.conversations)
        self.conversation: Conversation | None = None
        self._job: Job | None = None
        self.jobs = JobGroup(self, self.show_error)
        self._run_started = 0.0
        self._run_tokens = 0
        self.last_record: dict[str, Any] | None = None
        self._model_busy = False
        self.setAcceptDrops(True)
        self._build()
        self._fill_models()
        self.refresh_conversations()
        self._set_running(False)

    # -- layout -------------------------------------------------------------------
    def _build(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter = split
        root.addWidget(split)

        side = QWidget(split)
        side.setObjectName("chatSide")
        scol = QVBoxLayout(side)
        scol.setContentsMargins(12, 12, 6, 12)
        title = QLabel("Conversations", side)
        title.setObjectName("sectionTitle")
        scol.addWidget(title)
        self.conv_list = QListWidget(side)
        self.conv_list.itemClicked.connect(self._on_conversation_clicked)
        self.conv_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.conv_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        scol.addWidget(self.conv_list, 1)
        self.conv_hint = QLabel("Every question you ask is saved here with its full trace.", side)
        self.conv_hint.setObjectName("hint")
        self.conv_hint.setWordWrap(True)
        scol.addWidget(self.conv_hint)
        brow = QHBoxLayout()
        self.new_conv_button = QPushButton("New", side)
        self.export_button = QPushButton("Export…", side)
        self.delete_conv_button = QPushButton("Delete", side)
        self.delete_conv_button.setObjectName("danger")
        self.new_conv_button.clicked.connect(self.new_conversation)
        self.export_button.clicked.connect(self.export_conversation)
        self.delete_conv_button.clicked.connect(self.delete_conversation)
        for b in (self.new_conv_button, self.export_button, self.delete_conv_button):
            brow.addWidget(b)
        scol.addLayout(brow)

        main = QWidget(split)
        mcol = QVBoxLayout(main)
        mcol.setContentsMargins(6, 12, 12, 8)
        mcol.setSpacing(8)
        bar = QHBoxLayout()
        self.kb_combo = QComboBox(main)
        self.kb_combo.setMinimumWidth(160)
        self.kb_combo.setPlaceholderText("no knowledge base")
        self.kb_combo.setToolTip("The knowledge base the model searches")
        self.model_combo = QComboBox(main)
        self.model_combo.setMinimumWidth(200)
        self.model_combo.setToolTip(
            "The generator model: GGUF (llama.cpp), Hugging Face folder (transformers), MLX"
        )
        self.add_model_button = QPushButton("Add model…", main)
        self.add_model_button.setToolTip("Add a local .gguf file (or drop one on this tab)")
        self.add_model_button.clicked.connect(self.choose_model)
        self.get_models_button = QPushButton("Get models…", main)
        self.get_models_button.setToolTip("Search the Hugging Face hub and pull a model")
        self.get_models_button.clicked.connect(self.open_models)
        self.mode_combo = QComboBox(main)
        for key, label in MODES:
            self.mode_combo.addItem(label, key)
        for text, widget in (("Knowledge base", self.kb_combo), ("Model", self.model_combo)):
            lab = QLabel(text, main)
            lab.setObjectName("hint")
            bar.addWidget(lab)
            bar.addWidget(widget)
        bar.addWidget(self.add_model_button)
        bar.addWidget(self.get_models_button)
        lab = QLabel("Mode", main)
        lab.setObjectName("hint")
        bar.addWidget(lab)
        bar.addWidget(self.mode_combo)
        bar.addStretch(1)
        mcol.addLayout(bar)

        self.trace = TraceView(main)
        self.trace.passage_requested.connect(self.open_passage)
        self.trace.run_finished.connect(self._on_run_finished)
        mcol.addWidget(self.trace, 1)

        self.error_banner = ErrorBanner(main)
        mcol.addWidget(self.error_banner)

        ask = QHBoxLayout()
        self.question = QuestionBox(main)
        self.question.setObjectName("questionBox")
        self.question.setPlaceholderText("Ask a question about your documents…  (Enter to ask)")
        self.question.setFixedHeight(64)
        self.question.submitted.connect(self.ask)
        self.ask_button = QPushButton("Ask", main)
        self.ask_button.setObjectName("primary")
        self.ask_button.setMinimumHeight(34)
        self.ask_button.clicked.connect(self.ask)
        self.stop_button = QPushButton("Stop", main)
        self.stop_button.setMinimumHeight(34)
        self.stop_button.clicked.connect(self.stop)
        QShortcut(QKeySequence("Esc"), self, self.stop)
        buttons = QVBoxLayout()
        buttons.addWidget(self.ask_button)
        buttons.addWidget(self.stop_button)
        ask.addWidget(self.question, 1)
        ask.addLayout(buttons)
        mcol.addLayout(ask)
        foot = QHBoxLayout()
        self.footer = QLabel("", main)
        self.footer.setObjectName("footer")
        foot.addWidget(self.footer, 1)
        self.thumb_up = QToolButton(main)
        self.thumb_up.setText("✓ Good")
        self.thumb_up.setToolTip("A good answer")
        self.thumb_down = QToolButton(main)
        self.thumb_down.setText("✗ Bad")
        self.thumb_down.setToolTip("A bad answer")
        for button, value in ((self.thumb_up, "up"), (self.thumb_down, "down")):
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.clicked.connect(lambda _on, v=value: self.set_feedback(v))
            foot.addWidget(button)
        self.add_dataset_button = QPushButton("Add to dataset…", main)
        self.add_dataset_button.setToolTip("Make this question a training example")
        self.add_dataset_button.clicked.connect(self.ask_add_to_dataset)
        foot.addWidget(self.add_dataset_button)
        mcol.addLayout(foot)
        self._show_feedback(False)

        split.addWidget(side)
        split.addWidget(main)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 4)
        split.setSizes([220, 900])

    # -- models -------------------------------------------------------------------
    def _fill_models(self, select: str | None = None) -> None:
        """The registry's runnable models: bundled, pulled, added, tuned (and the
        configured model when it is a path the registry does not know)."""
        from core.models.registry import ModelRegistry

        self.model_combo.clear()
        self.model_combo.addItem("SmolLM2-135M (bundled)", "")
        registry = ModelRegistry(self.ws.layout)
        for entry in [*registry.library(), *registry.tuned()]:
            if not entry.present or (entry.kind == "tuned" and not entry.variants):
                continue
            label = {"pulled": "hub", "added": entry.format, "tuned": "tuned"}[entry.kind]
            self.model_combo.addItem(f"{entry.name} ({label})", entry.name)
            tip = entry.describe()
            if entry.kind == "tuned":
                tip += f"; runs {entry.default_variant}"
            self.model_combo.setItemData(
                self.model_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        configured = self.ws.config.model
        if configured and self.model_combo.findData(configured) < 0:
            self.model_combo.addItem(Path(configured).name, configured)
            self.model_combo.setItemData(
                self.model_combo.count() - 1, configured, Qt.ItemDataRole.ToolTipRole
            )
        want = select if select is not None else configured
        index = self.model_combo.findData(want) if want else 0
        self.model_combo.setCurrentIndex(max(0, index))

    def refresh_models(self) -> None:
        """Re-read the models (a run or a pull just registered one); keeps the choice."""
        self._fill_models(select=self.model_combo.currentData() or "")

    def add_model(self, path: Path) -> None:
        from core.errors import CotragError
        from core.models.registry import ModelRegistry

        if path.suffix.lower() != ".gguf" or not path.is_file():
            self.show_error(f"{path.name} is not a .gguf model file; choose a GGUF file.")
            return
        try:
            entry = ModelRegistry(self.ws.layout).add_local(path)
        except CotragError as exc:
            self.show_error(str(exc))
            return
        self._fill_models(select=entry.name)
        self.models_added.emit()
        self.status_message.emit(f"Added model {path.name}.")

    @Slot()
    def choose_model(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Add a GGUF model", "", "GGUF models (*.gguf);;All files (*)"
        )
        if file:
            self.add_model(Path(file))

    @property
    def model(self) -> str | None:
        return self.model_combo.currentData() or None

    # -- knowledge bases ----------------------------------------------------------
    @Slot(list, str)
    def set_knowledge_bases(self, names: list[str], current: str) -> None:
        keep = self.kb_combo.currentText()
        self.kb_combo.clear()
        self.kb_combo.addItems(names)
        chosen = keep if keep in names else current
        if chosen:
            self.kb_combo.setCurrentText(chosen)

    # -- running ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._job is not None

    def _set_running(self, on: bool) -> None:
        self.ask_button.setEnabled(not on and not self._model_busy)
        self.stop_button.setEnabled(on)
        self.question.setReadOnly(on)
        for w in (
            self.kb_combo,
            self.model_combo,
            self.mode_combo,
            self.add_model_button,
            self.conv_list,
            self.new_conv_button,
            self.delete_conv_button,
        ):
            w.setEnabled(not on)
        self.run_state_changed.emit(on)

    @Slot(bool)
    def set_model_busy(self, busy: bool) -> None:
        """A dataset is being generated with the model: one stream at a time."""
        self._model_busy = busy
        self.ask_button.setEnabled(not busy and not self.running)
        self.ask_button.setToolTip(
            "Wait for the dataset run: the model runs one thing at a time" if busy else ""
        )

    @Slot()
    def ask(self, question: str | None = None) -> None:
        text = (question if isinstance(question, str) else self.question.toPlainText()).strip()
        if not text or self.running:
            return
        if self._model_busy:
            self.show_error("A dataset is being generated with the model; ask when it is done.")
            return
        mode = str(self.mode_combo.currentData())
        kb = self.kb_combo.currentText()
        if mode != "closed" and not kb:
            self.show_error(
                "Choose a knowledge base first (build one in the Knowledge base tab), "
                "or switch the mode to closed book."
            )
            return
        self.hide_error()
        model = self.model
        if self.conversation is None:
            self.conversation = self.conversations.new(text, kb=kb, model=model or "")
        self.question.clear()
        self.trace.add_question(text)
        self._run_started = time.monotonic()
        self._run_tokens = 0
        self.footer.setText("Loading the model…")

        def work(push: Push, cancel: threading.Event) -> dict[str, Any]:
            from core.agent.record import RunRecord

            agent = self.ws.agent(kb if mode != "closed" else None, model=model)
            record = RunRecord(question=text, mode=mode)
            try:
                for event in agent.run(text, mode=mode, cancel=cancel):  # type: ignore[arg-type]
                    record.add(event)
                    push(event)
            except Exception:
                if not record.finished:
                    raise
                # The run failed after it streamed: the trace on screen is kept (and saved)
                # with its error; Finished already carried the sentence to show.
                log.exception("the run failed after streaming")
            return record.to_dict()

        self._job = self.jobs.start(
            work,
            "agent",
            on_items=self._on_events,
            on_result=self._on_record,
            on_error=self._on_failed,
            on_finished=self._on_job_finished,
        )
        self._set_running(True)

    @Slot()
    def stop(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.footer.setText("Stopping…")

    @Slot(list)
    def _on_events(self, events: list[object]) -> None:
        self.trace.handle(events)
        self._run_tokens += sum(1 for e in events if isinstance(e, Token))
        if self.running and not any(isinstance(e, Finished) for e in events):
            elapsed = time.monotonic() - self._run_started
            self.footer.setText(f"Generating… {elapsed:.1f} s")

    @Slot(object)
    def _on_run_finished(self, event: Finished) -> None:
        text = format_stats(event.stats)
        if event.reason == "cancelled":
            text = "Stopped. " + text
        self.footer.setText(text)
        if event.reason == "error" and event.error:
            self.show_error(event.error)

    @Slot(object)
    def _on_record(self, record: dict[str, Any]) -> None:
        self.last_record = record
        conv = self.conversation
        if conv is None:
            return
        conv.turns.append(record)
        self._save_conversation()
        self.refresh_conversations(select=conv.id)
        self._show_feedback(bool(record.get("answer")) and record.get("mode") != "closed")

    def _save_conversation(self) -> None:
        if self.conversation is None:
            return
        try:
            self.conversations.save(self.conversation)
        except OSError as exc:
            log.exception("saving conversation failed")
            self.show_error(f"The conversation could not be saved ({exc}); check the disk.")

    # -- feedback and "Add to dataset" --------------------------------------------
    def _show_feedback(self, on: bool) -> None:
        for widget in (self.thumb_up, self.thumb_down, self.add_dataset_button):
            widget.setVisible(on)
        turn = self.conversation.turns[-1] if on and self.conversation else {}
        self.thumb_up.setChecked(turn.get("feedback") == "up")
        self.thumb_down.setChecked(turn.get("feedback") == "down")

    def set_feedback(self, value: str) -> None:
        """Thumbs up or down on the last answer (clicking the same one again clears it)."""
        if self.conversation is None or not self.conversation.turns:
            return
        turn = self.conversation.turns[-1]
        turn["feedback"] = "" if turn.get("feedback") == value else value
        self.thumb_up.setChecked(turn["feedback"] == "up")
        self.thumb_down.setChecked(turn["feedback"] == "down")
        self._save_conversation()

    @Slot()
    def ask_add_to_dataset(self) -> None:
        from core.dataset.service import datasets
        from desktop.add_to_dataset import AddToDatasetDialog

        if self.conversation is None or not self.conversation.turns:
            return
        turn = self.conversation.turns[-1]
        dialog = AddToDatasetDialog(
            str(turn.get("question", "")),
            str(turn.get("answer", "")),
            datasets(self.ws).names(),
            self,
        )
        self.add_dialog = dialog
        if dialog.exec():
            self.add_to_dataset(*dialog.values())

    def add_to_dataset(self, name: str, answer: str, cited: str) -> None:
        """Trace the last question through the knowledge base into dataset ``name``."""
        from desktop.add_to_dataset import rejection_sentence

        conv = self.conversation
        if conv is None or not conv.turns:
            return
        turn = conv.turns[-1]
        question, kb = str(turn.get("question", "")), conv.kb or self.kb_combo.currentText()
        if not kb:
            self.show_error("This conversation has no knowledge base to find the answer in.")
            return

        def work(push: Push, cancel: threading.Event) -> str:
            from core.conversations import set_correction
            from core.dataset import service
            from core.dataset.editing import edited, replace_example
            from core.dataset.generate import Accepted, GenerateSpec, ImportedPair, Rejected

            spec = GenerateSpec(kb=kb, count=1, unanswerable_share=0.0)
            gen, dataset, _ = service.generator(self.ws, name, spec, None, cancel=cancel)
            for event in gen.run_pairs([ImportedPair(question, answer)]):
                if isinstance(event, Rejected):
                    return f"Not added: {rejection_sentence(event.reason, event.detail)}."
                if isinstance(event, Accepted):
                    example = event.example
                    if cited and cited != example["record"]["answer"]:
                        example = edited(example, question=question, answer=answer, cited=cited)
                        replace_example(dataset, example)
                    turn["dataset"] = name
                    # The answer the user confirmed (or typed) is the turn's correction, so
                    # a later `cotrag dataset import --conversations` uses it too.
                    set_correction(turn, answer, cited)
                    return f"Added to dataset {name}."
            return "Not added: this question is in the dataset already."

        def done(message: str) -> None:
            if message.startswith("Not added"):
                self.show_error(message)
            else:
                self._save_conversation()
                self.status_message.emit(message)

        self.jobs.start(work, "add-to-dataset", on_result=done)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.footer.setText("")
        self.show_error(message)

    @Slot()
    def _on_job_finished(self) -> None:
        self._job = None
        self._set_running(False)
        self.question.setFocus()

    def shutdown(self, timeout: float = 15.0) -> None:
        self.jobs.shutdown(timeout)

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
        self.conv_list.clear()
        saved = self.conversations.list()
        self.conv_hint.setVisible(not saved)
        for conv in saved:
            when = time.strftime("%d %b %H:%M", time.localtime(conv.created))
            turns = len(conv.turns)
            item = QListWidgetItem(f"{conv.title}\n{when} · {turns} question{'s' * (turns != 1)}")
            item.setData(Qt.ItemDataRole.UserRole, conv.id)
            item.setToolTip(conv.title)
            self.conv_list.addItem(item)
            if conv.id == select:
                item.setSelected(True)
                self.conv_list.setCurrentItem(item)

    @Slot(QListWidgetItem)
    def _on_conversation_clicked(self, item: QListWidgetItem) -> None:
        conv_id = item.data(Qt.ItemDataRole.UserRole)
        if conv_id:
            self.open_conversation(str(conv_id))

    def open_conversation(self, conv_id: str) -> None:
        try:
            conv = self.conversations.load(conv_id)
        except Exception as exc:  # a damaged file must not take the window down
            log.exception("opening conversation %s failed", conv_id)
            self.show_error(str(exc))
            return
        self.conversation = conv
        self.trace.clear()
        self.hide_error()
        last: Finished | None = None
        for turn in conv.turns:
            try:
                events = events_from_record(turn)
            except (KeyError, ValueError, TypeError) as exc:
                self.show_error(f"One question in this conversation could not be shown ({exc}).")
                continue
            self.trace.add_question(str(turn.get("question", "")))
            self.trace.handle(list(events))
            last = next((e for e in reversed(events) if isinstance(e, Finished)), last)
        if conv.kb:
            self.kb_combo.setCurrentText(conv.kb)
        self.footer.setText(format_stats(last.stats) if last else "")
        final = conv.turns[-1] if conv.turns else {}
        self._show_feedback(bool(final.get("answer")) and final.get("mode") != "closed")

    @Slot()
    def new_conversation(self) -> None:
        self.conversation = None
        self._show_feedback(False)
        self.trace.clear()
        self.footer.setText("")
        self.hide_error()
        self.conv_list.clearSelection()
        self.question.setFocus()

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

    # -- errors -------------------------------------------------------------------
    @Slot(str)
    def show_error(self, message: str) -> None:
        self.error_banner.show_message(message)
        self.error.emit(message)

    def hide_error(self) -> None:
        self.error_banner.hide()

    # -- dropping a model ---------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if any(u.isLocalFile() and u.toLocalFile().lower().endswith(".gguf") for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            if isinstance(url, QUrl) and url.isLocalFile():
                self.add_model(Path(url.toLocalFile()))
        event.acceptProposedAction()
