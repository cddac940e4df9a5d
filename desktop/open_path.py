"""Open a file or folder with the desktop's own opener, and say where it is when nothing
opens it (a machine with no file manager or default editor installed)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMessageBox, QWidget


def open_path(parent: QWidget, path: Path, what: str) -> bool:
    """Open ``path`` (``what`` names it: "log file"); when the desktop cannot, a
    dialog gives its full path, selectable and with a button that copies it."""
    if path.exists() and QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
        return True
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Information)
    box.setWindowTitle(f"Open {what}")
    if path.exists():
        box.setText(f"Nothing on this computer opens the {what}. It is here:")
    else:
        box.setText(f"There is no {what} yet. It will be here:")
    box.setInformativeText(str(path))
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    copy = box.addButton("Copy path", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Close)
    copy.clicked.disconnect()  # copying leaves the dialog open
    copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(str(path)))
    box.open()
    return False
