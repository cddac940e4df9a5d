"""The Chat tab's side panel: the saved conversations, with New, Export… and Delete."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.conversations import Conversation
from desktop.scaffold import hint, section_title


def _item_text(conv: Conversation) -> str:
    when = time.strftime("%d %b %H:%M", time.localtime(conv.created))
    turns = len(conv.turns)
    return f"{conv.title}\n{when} · {turns} question{'s' * (turns != 1)}"


class ConversationList(QWidget):
    """The conversations, newest first; clicking one opens it (``opened`` with its id)."""

    opened = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatSide")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 6, 12)
        layout.addWidget(section_title("Conversations", self))
        self.list = QListWidget(self)
        self.list.itemClicked.connect(self._on_clicked)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        layout.addWidget(self.list, 1)
        self.hint = hint("Every question you ask is saved here with its full trace.", self)
        layout.addWidget(self.hint)
        buttons = QHBoxLayout()
        self.new_button = QPushButton("New", self)
        self.export_button = QPushButton("Export…", self)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.setObjectName("danger")
        for button in (self.new_button, self.export_button, self.delete_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)

    def show_conversations(self, saved: list[Conversation], select: str = "") -> None:
        """List ``saved`` (the hint shows while there is none); ``select`` is highlighted."""
        self.list.clear()
        self.hint.setVisible(not saved)
        for conv in saved:
            item = QListWidgetItem(_item_text(conv))
            item.setData(Qt.ItemDataRole.UserRole, conv.id)
            item.setToolTip(conv.title)
            self.list.addItem(item)
            if conv.id == select:
                item.setSelected(True)
                self.list.setCurrentItem(item)

    def ids(self) -> list[str]:
        """The ids listed, top to bottom."""
        return [
            str(self.list.item(row).data(Qt.ItemDataRole.UserRole))
            for row in range(self.list.count())
        ]

    def set_enabled_for_run(self, running: bool, has: bool) -> None:
        """While a question runs the list stays as it is; Export… and Delete act on the
        open conversation (``has``: one with a question in it)."""
        for widget in (self.list, self.new_button):
            widget.setEnabled(not running)
        for button in (self.export_button, self.delete_button):
            button.setEnabled(has and not running)
            button.setToolTip("" if has else "Open a conversation in the list first")

    @Slot(QListWidgetItem)
    def _on_clicked(self, item: QListWidgetItem) -> None:
        conv_id = item.data(Qt.ItemDataRole.UserRole)
        if conv_id:
            self.opened.emit(str(conv_id))
