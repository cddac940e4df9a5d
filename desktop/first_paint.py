"""Run something once a widget has painted for the first time."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget


class _FirstPaint(QObject):
    def __init__(self, widget: QWidget, callback: Callable[[], None]) -> None:
        super().__init__(widget)
        self.widget = widget
        self.callback = callback

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.widget.removeEventFilter(self)
            # The paint itself comes first: the callback runs once it has completed.
            QTimer.singleShot(0, self.callback)
        return False


def on_first_paint(widget: QWidget, callback: Callable[[], None]) -> None:
    """Call ``callback`` on the event loop right after ``widget``'s first paint."""
    widget.installEventFilter(_FirstPaint(widget, callback))
