"""The main window: Knowledge base, Chat, Dataset, Training, Compare and Models tabs, menus,
status bar, window state."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from PySide6.QtCore import QSettings, QUrl, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QTabWidget, QWidget

from core.workspace import Workspace
from desktop.chat_tab import ChatTab
from desktop.compare_tab import CompareTab
from desktop.dataset_tab import DatasetTab
from desktop.kb_tab import KnowledgeTab
from desktop.models_tab import ModelsTab
from desktop.settings_dialog import SettingsDialog
from desktop.style import icon
from desktop.training_tab import TrainingTab

log = logging.getLogger(__name__)


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

        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.kb_tab = KnowledgeTab(workspace, self)
        self.chat_tab = ChatTab(workspace, settings, self)
        self.tabs.addTab(self.kb_tab, icon("database"), "Knowledge base")
        self.dataset_tab = DatasetTab(workspace, settings, self)
        self.tabs.addTab(self.chat_tab, icon("chat"), "Chat")
        self.tabs.addTab(self.dataset_tab, icon("dataset"), "Dataset")
        self.training_tab = TrainingTab(workspace, settings, self)
        self.tabs.addTab(self.training_tab, icon("training"), "Training")
        self.compare_tab = CompareTab(workspace, settings, self)
        self.tabs.addTab(self.compare_tab, icon("compare"), "Compare")
        self.models_tab = ModelsTab(workspace, settings, self)
        self.tabs.addTab(self.models_tab, icon("models"), "Models")
        self.setCentralWidget(self.tabs)

        self.kb_tab.knowledge_bases_changed.connect(self.chat_tab.set_knowledge_bases)
        self.kb_tab.knowledge_bases_changed.connect(self.dataset_tab.set_knowledge_bases)
        self.kb_tab.knowledge_bases_changed.connect(self.compare_tab.set_knowledge_bases)
        # The model runs one stream at a time: chat, dataset and compare runs exclude
        # each other (each tab is told whether another one is using the model).
        self._model_users: set[QWidget] = set()
        users: tuple[ChatTab | DatasetTab | CompareTab, ...] = (
            self.chat_tab,
            self.dataset_tab,
            self.compare_tab,
        )
        for user in users:
            user.run_state_changed.connect(lambda on, u=user: self._on_model_use(u, on))
        self.training_tab.models_changed.connect(self.chat_tab.refresh_models)
        self.training_tab.models_changed.connect(self.compare_tab.refresh)
        self.training_tab.models_changed.connect(self.models_tab.refresh)
        # A re-embed switched a knowledge base's version: its "searched with" label follows.
        self.training_tab.reembed_panel.switched.connect(lambda _name: self.kb_tab.refresh())
        self.models_tab.models_changed.connect(self.chat_tab.refresh_models)
        self.models_tab.models_changed.connect(self.compare_tab.refresh)
        self.models_tab.models_changed.connect(self.dataset_tab.refresh_teachers)
        self.chat_tab.models_added.connect(self.models_tab.refresh)
        self.chat_tab.open_models.connect(lambda: self.tabs.setCurrentWidget(self.models_tab))
        self.tabs.currentChanged.connect(self._on_tab_changed)
        for tab in (
            self.kb_tab,
            self.chat_tab,
            self.dataset_tab,
            self.training_tab,
            self.compare_tab,
            self.models_tab,
        ):
            tab.status_message.connect(self.show_status)
            tab.error.connect(self.show_error)

        self.data_label = QLabel(f"Data: {workspace.layout.root}", self)
        self.data_label.setObjectName("hint")
        self.statusBar().addPermanentWidget(self.data_label)
        self._build_menu()
        self._restore_state()
        self.kb_tab.refresh()
        self.dataset_tab.refresh()
        self.training_tab.refresh()
        self.compare_tab.refresh()

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
        split = self.settings.value("window/chat_splitter")
        if split is not None:
            self.chat_tab.splitter.restoreState(split)

    def _save_state(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/tab", self.tabs.currentIndex())
        self.settings.setValue("window/chat_splitter", self.chat_tab.splitter.saveState())
        self.settings.sync()

    @Slot(int)
    def _on_tab_changed(self, index: int) -> None:
        # Datasets and models made in other tabs (or by the CLI) show up when looked at.
        widget = self.tabs.widget(index)
        if widget is self.training_tab and not self.training_tab.running:
            self.training_tab.refresh()
        elif widget is self.compare_tab and not self.compare_tab.running:
            self.compare_tab.refresh()
        elif widget is self.models_tab:
            self.models_tab.refresh()

    def _on_model_use(self, tab: QWidget, on: bool) -> None:
        if on:
            self._model_users.add(tab)
        else:
            self._model_users.discard(tab)
        for other in (self.chat_tab, self.dataset_tab, self.compare_tab):
            other.set_model_busy(bool(self._model_users - {other}))

    @Slot(str)
    def show_status(self, message: str) -> None:
        self.statusBar().showMessage(message, 10_000)

    @Slot(str)
    def show_error(self, message: str) -> None:
        self.statusBar().showMessage(message, 15_000)

    @Slot()
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.ws, self.settings, self)
        if dialog.exec():
            self.show_status("Settings saved.")

    @Slot()
    def open_data_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.ws.layout.root)))

    @Slot()
    def open_log(self) -> None:
        if self.log_file is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_file)))

    def closeEvent(self, event: QCloseEvent) -> None:
        # Workers stop cooperatively (between tokens / batches); wait for them so no
        # thread outlives the objects it reports to, then free the model.
        self.show_status("Stopping background work…")
        self.chat_tab.shutdown()
        self.dataset_tab.shutdown()
        self.training_tab.shutdown()
        self.compare_tab.shutdown()
        self.models_tab.shutdown()
        self.kb_tab.shutdown()
        self._save_state()
        try:
            self.ws.close()
        except Exception:  # closing must never turn into a crash at exit
            log.exception("closing the workspace failed")
        super().closeEvent(event)
