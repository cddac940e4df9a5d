"""The main window: Knowledge base, Chat, Dataset, Training, Compare and Models tabs, menus,
status bar, window state.

Only the Knowledge base tab (it lists the knowledge bases the other tabs offer) and the
tab shown are built when the window opens; every other tab, its module included, is built
the first time it is shown or asked for (``window.chat_tab`` builds the Chat tab). The
tabs' first reads of the data folder start once the window has painted. A window narrower
than a tab's minimum width grows to it when that tab is first built (before, it had the
widest tab's minimum from the start).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from PySide6.QtCore import QSettings, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QStackedWidget, QWidget

from core.first_run import is_fresh
from core.workspace import Workspace
from desktop.first_paint import on_first_paint
from desktop.lazy_tabs import LazyTabs
from desktop.open_path import open_path
from desktop.settings_dialog import SettingsDialog
from desktop.style import icon
from desktop.welcome import WelcomePanel
from desktop.wheel_guard import install_wheel_guard

if TYPE_CHECKING:
    from desktop.chat_tab import ChatTab
    from desktop.compare_tab import CompareTab
    from desktop.dataset_tab import DatasetTab
    from desktop.kb_tab import KnowledgeTab
    from desktop.models_tab import ModelsTab
    from desktop.training_tab import TrainingTab

log = logging.getLogger(__name__)

# Key, icon, label, in the order the tabs appear.
TABS = (
    ("kb", "database", "Knowledge base"),
    ("chat", "chat", "Chat"),
    ("dataset", "dataset", "Dataset"),
    ("training", "training", "Training"),
    ("compare", "compare", "Compare"),
    ("models", "models", "Models"),
)
# The tabs that share the one model stream (one run at a time among them).
MODEL_USERS = ("chat", "dataset", "compare")
# Tabs that read the data folder when they are built (it used to be at start-up).
FIRST_REFRESH = ("kb", "dataset", "training", "compare")
# Tabs that re-read on being shown: datasets and models made elsewhere show up.
REFRESH_ON_SHOW = ("training", "compare", "models")
WELCOME_DISMISSED = "welcome/dismissed"
"""QSettings key: the first start's welcome was closed (it never shows again)."""


class _Tab(Protocol):
    def shutdown(self, timeout: float = 15.0) -> None: ...


class MainWindow(QMainWindow):
    def __init__(
        self,
        workspace: Workspace,
        settings: QSettings,
        log_file: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.settings = settings
        self.log_file = log_file
        self.setWindowTitle("CoT-RAG Studio")
        self.setWindowIcon(icon("app"))
        self.resize(1200, 800)
        # No combo box, spin box or slider anywhere changes from a wheel it did not ask for.
        install_wheel_guard()

        # The model runs one stream at a time: chat, dataset and compare runs exclude
        # each other (each tab is told whether another one is using the model).
        self._model_users: set[QWidget] = set()
        # Every list of knowledge bases the KB tab announced (a repeat of the same names
        # left out): a tab built later hears them in order, as if it had been there.
        self._kb_lists: list[tuple[list[str], str]] = []
        self._painted = False
        self._closed = False
        self._after_paint: list[Callable[[], None]] = []

        self._tab_messages: dict[str, tuple[str, float]] = {}
        """Each tab's last status message and when it goes stale (monotonic seconds)."""
        self.tabs = LazyTabs(self)
        self.tabs.setDocumentMode(True)
        self.tabs.built.connect(self._on_tab_built)
        factories = {
            "kb": self._make_kb,
            "chat": self._make_chat,
            "dataset": self._make_dataset,
            "training": self._make_training,
            "compare": self._make_compare,
            "models": self._make_models,
        }
        for key, icon_name, label in TABS:
            self.tabs.add_lazy(key, factories[key], icon(icon_name), label)
        # The welcome, on a first start, takes the tabs' place until it is dismissed.
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.tabs)
        self.setCentralWidget(self.pages)
        self.welcome: WelcomePanel | None = None
        if self._welcome_wanted():
            self._show_welcome()
        self.tabs.content("kb")
        self.tabs.shown.connect(self._on_tab_shown)

        self.data_label = QLabel(f"Data: {workspace.layout.root}", self)
        self.data_label.setObjectName("hint")
        self.statusBar().addPermanentWidget(self.data_label)
        self._build_menu()
        self._restore_state()
        self.tabs.start()
        on_first_paint(self, self._on_first_paint)

    # -- the tabs, built when first asked for ----------------------------------------
    @property
    def kb_tab(self) -> KnowledgeTab:
        return cast("KnowledgeTab", self.tabs.content("kb"))

    @property
    def chat_tab(self) -> ChatTab:
        return cast("ChatTab", self.tabs.content("chat"))

    @property
    def dataset_tab(self) -> DatasetTab:
        return cast("DatasetTab", self.tabs.content("dataset"))

    @property
    def training_tab(self) -> TrainingTab:
        return cast("TrainingTab", self.tabs.content("training"))

    @property
    def compare_tab(self) -> CompareTab:
        return cast("CompareTab", self.tabs.content("compare"))

    @property
    def models_tab(self) -> ModelsTab:
        return cast("ModelsTab", self.tabs.content("models"))

    @property
    def painted(self) -> bool:
        """The window has painted once and its tabs' first reads have started."""
        return self._painted

    def _built(self, key: str) -> QWidget | None:
        return self.tabs.built_content(key)

    # Each tab's module is imported when the tab is first built: most of start-up was
    # the import and construction of tabs nobody had opened yet.
    def _make_kb(self, parent: QWidget) -> QWidget:
        from desktop.kb_tab import KnowledgeTab

        return KnowledgeTab(self.ws, parent)

    def _make_chat(self, parent: QWidget) -> QWidget:
        from desktop.chat_tab import ChatTab

        return ChatTab(self.ws, self.settings, parent)

    def _make_dataset(self, parent: QWidget) -> QWidget:
        from desktop.dataset_tab import DatasetTab

        return DatasetTab(self.ws, self.settings, parent)

    def _make_training(self, parent: QWidget) -> QWidget:
        from desktop.training_tab import TrainingTab

        return TrainingTab(self.ws, self.settings, parent)

    def _make_compare(self, parent: QWidget) -> QWidget:
        from desktop.compare_tab import CompareTab

        return CompareTab(self.ws, self.settings, parent)

    def _make_models(self, parent: QWidget) -> QWidget:
        from desktop.models_tab import ModelsTab

        return ModelsTab(self.ws, self.settings, parent)

    # -- the welcome of a first start -------------------------------------------------
    def _welcome_wanted(self) -> bool:
        """Not dismissed before, and nothing made in the data folder yet."""
        if self.settings.value(WELCOME_DISMISSED, False, type=bool):
            return False
        try:
            return is_fresh(self.ws)
        except OSError:  # an unreadable folder is no first start; the tabs will say more
            log.exception("could not tell whether the data folder is fresh")
            return False

    def _show_welcome(self) -> None:
        welcome = WelcomePanel(self.ws, self.pages)
        welcome.dismissed.connect(self.dismiss_welcome)
        welcome.knowledge_base_made.connect(lambda name: self.kb_tab.refresh(select=name))
        welcome.question_chosen.connect(self._ask_from_welcome)
        self.pages.addWidget(welcome)
        self.pages.setCurrentWidget(welcome)
        self.welcome = welcome

    @Slot()
    def dismiss_welcome(self) -> None:
        """Close the welcome for good and show the tabs."""
        self.settings.setValue(WELCOME_DISMISSED, True)
        self.settings.sync()
        self.pages.setCurrentWidget(self.tabs)
        welcome, self.welcome = self.welcome, None
        if welcome is not None:
            welcome.shutdown()
            self.pages.removeWidget(welcome)
            welcome.deleteLater()

    @Slot(str, str)
    def _ask_from_welcome(self, kb: str, question: str) -> None:
        self.dismiss_welcome()
        chat = self.chat_tab
        self.tabs.setCurrentWidget(chat)
        chat.ask_about(kb, question)

    # -- wiring, as each tab is built -------------------------------------------------
    @Slot(str, QWidget)
    def _on_tab_built(self, key: str, tab: QWidget) -> None:
        view = cast(
            "KnowledgeTab | ChatTab | DatasetTab | TrainingTab | CompareTab | ModelsTab", tab
        )
        view.status_message.connect(lambda message, k=key: self.show_status(message, k))
        view.error.connect(lambda message, k=key: self.show_error(message, k))
        view.open_tab.connect(lambda wanted: self.tabs.setCurrentWidget(self.tabs.content(wanted)))
        if key == "kb":
            self.kb_tab.knowledge_bases_changed.connect(self._on_knowledge_bases)
        elif key == "chat":
            chat = self.chat_tab
            chat.models_added.connect(self._on_chat_added_models)
            chat.open_models.connect(lambda: self.tabs.setCurrentWidget(self.models_tab))
            split = self.settings.value("window/chat_splitter")
            if split is not None:
                chat.splitter.restoreState(split)
        elif key == "training":
            training = self.training_tab
            training.models_changed.connect(self._on_training_made_models)
            training.compare_requested.connect(self._open_compare_on)
            # A re-embed switched a knowledge base's version: its "searched with" label follows.
            training.reembed_panel.switched.connect(lambda _name: self.kb_tab.refresh())
        elif key == "models":
            self.models_tab.models_changed.connect(self._on_models_changed)
        if key in MODEL_USERS:
            user = cast("ChatTab | DatasetTab | CompareTab", tab)
            for names, current in self._kb_lists:
                user.set_knowledge_bases(names, current)
            user.run_state_changed.connect(lambda on, u=user: self._on_model_use(u, on))
            if self._model_users:
                user.set_model_busy(True)
        if key in FIRST_REFRESH:
            self._when_painted(
                cast("KnowledgeTab | DatasetTab | TrainingTab | CompareTab", tab).refresh
            )

    def _users(self) -> list[ChatTab | DatasetTab | CompareTab]:
        built = (self._built(key) for key in MODEL_USERS)
        return [cast("ChatTab | DatasetTab | CompareTab", tab) for tab in built if tab is not None]

    @Slot(list, str)
    def _on_knowledge_bases(self, names: list[str], current: str) -> None:
        if not self._kb_lists or self._kb_lists[-1][0] != names:
            self._kb_lists.append((list(names), current))
        for user in self._users():
            user.set_knowledge_bases(names, current)

    @Slot()
    def _on_training_made_models(self) -> None:
        if self._built("chat"):
            self.chat_tab.refresh_models()
        if self._built("compare"):
            self.compare_tab.refresh()
        if self._built("models"):
            self.models_tab.refresh()

    @Slot(str)
    def _open_compare_on(self, model: str) -> None:
        """The Compare tab, opened on a tuned model and its stored guard table."""
        self.tabs.setCurrentWidget(self.compare_tab)
        self.compare_tab.open_guard(model)

    @Slot()
    def _on_models_changed(self) -> None:
        if self._built("chat"):
            self.chat_tab.refresh_models()
        if self._built("compare"):
            self.compare_tab.refresh()
        if self._built("dataset"):
            self.dataset_tab.refresh_teachers()

    @Slot()
    def _on_chat_added_models(self) -> None:
        if self._built("models"):
            self.models_tab.refresh()

    def _when_painted(self, action: Callable[[], None]) -> None:
        if self._painted:
            action()
        else:
            self._after_paint.append(action)

    def _on_first_paint(self) -> None:
        if self._painted or self._closed:
            return
        self._painted = True
        pending, self._after_paint = self._after_paint, []
        for action in pending:
            action()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._painted:
            # Should a platform never paint the window itself, its content loads anyway.
            QTimer.singleShot(1000, self._on_first_paint)

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        settings = QAction("&Settings…", self)
        settings.setShortcut(QKeySequence.StandardKey.Preferences)
        settings.triggered.connect(self.open_settings)
        menu.addAction(settings)
        folder = QAction("Open &data folder", self)
        folder.triggered.connect(self.open_data_folder)
        menu.addAction(folder)
        logs = QAction("Open &log file", self)
        logs.triggered.connect(self.open_log)
        menu.addAction(logs)
        menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        menu.addAction(quit_action)

    def _restore_state(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        tab = self.settings.value("window/tab", 0)
        with contextlib.suppress(TypeError, ValueError):
            self.tabs.setCurrentIndex(int(str(tab)))

    def _save_state(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/tab", self.tabs.currentIndex())
        if self._built("chat"):  # else the saved layout stays as it was
            self.settings.setValue("window/chat_splitter", self.chat_tab.splitter.saveState())
        self.settings.sync()

    @Slot(str, bool)
    def _on_tab_shown(self, key: str, fresh: bool) -> None:
        # A tab's last message stays with it: leaving the tab takes it off the status bar,
        # coming back shows it again while it is fresh.
        message, until = self._tab_messages.get(key, ("", 0.0))
        left = until - time.monotonic()
        if message and left > 0.5:
            self.statusBar().showMessage(message, int(left * 1000))
        else:
            self.statusBar().clearMessage()
        # Datasets and models made in other tabs (or by the CLI) show up when looked at;
        # a tab built to be shown has just read them.
        if fresh or key not in REFRESH_ON_SHOW:
            return
        if key == "training" and not self.training_tab.running:
            self.training_tab.refresh()
        elif key == "compare" and not self.compare_tab.running:
            self.compare_tab.refresh()
        elif key == "models":
            self.models_tab.refresh()

    def _on_model_use(self, tab: QWidget, on: bool) -> None:
        if on:
            self._model_users.add(tab)
        else:
            self._model_users.discard(tab)
        for other in self._users():
            other.set_model_busy(bool(self._model_users - {other}))

    def show_status(self, message: str, tab: str = "", seconds: float = 10.0) -> None:
        """``message`` on the status bar for ``seconds``; a tab's message (``tab``: its key)
        shows while that tab is the one shown, and again when the user comes back to it."""
        if tab:
            self._tab_messages[tab] = (message, time.monotonic() + seconds)
            if self.tabs.key_at(self.tabs.currentIndex()) != tab:
                return
        self.statusBar().showMessage(message, int(seconds * 1000))

    def show_error(self, message: str, tab: str = "") -> None:
        self.show_status(message, tab, 15.0)

    @Slot()
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.ws, self.settings, self)
        if dialog.exec():
            self.show_status("Settings saved.")

    @Slot()
    def open_data_folder(self) -> None:
        open_path(self, self.ws.layout.root, "data folder")

    @Slot()
    def open_log(self) -> None:
        if self.log_file is None:
            self.show_status("This session writes no log file (it logs to the terminal).")
            return
        open_path(self, self.log_file, "log file")

    def closeEvent(self, event: QCloseEvent) -> None:
        # Workers stop cooperatively (between tokens / batches); wait for them so no
        # thread outlives the objects it reports to, then free the model.
        self.show_status("Stopping background work…")
        self._closed = True
        if self.welcome is not None:
            self.welcome.shutdown()
        for key in ("chat", "dataset", "training", "compare", "models", "kb"):
            tab = self._built(key)
            if tab is not None:
                cast("_Tab", tab).shutdown()
        self._save_state()
        try:
            self.ws.close()
        except Exception:  # closing must never turn into a crash at exit
            log.exception("closing the workspace failed")
        super().closeEvent(event)
