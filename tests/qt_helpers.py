"""Qt test helpers for the desktop tests: a window on a throwaway data dir, drops, waits."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QWidget

# The offscreen platform says this about every top-level window; it is not our bug.
IGNORED_QT_MESSAGES = ["This plugin does not support propagateSizeHints"]


def settings_in(folder: Path) -> QSettings:
    return QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)


def mime_for(paths: list[Path]) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def drop(widget: QWidget, paths: list[Path]) -> bool:
    """Drag ``paths`` over ``widget`` and drop them, as a file manager would."""
    mime = mime_for(paths)
    enter = QDragEnterEvent(
        widget.rect().center(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    widget.dragEnterEvent(enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(
        QPointF(widget.rect().center()),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    widget.dropEvent(event)
    return True
