"""The sentence a tab shows when something failed (the traceback goes to the log)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget


class ErrorBanner(QLabel):
    """Hidden until there is something to say; styled by ``#errorBanner`` in app.qss."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("", parent)
        self.setObjectName("errorBanner")
        self.setWordWrap(True)
        self.hide()

    def show_message(self, message: str) -> None:
        self.setText(message)
        self.show()
