"""The pieces every tab is built from: the error banner with its signals, section titles,
columns and splitters. A tab subclasses ``TabView`` and lays out its panels."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from desktop.error_banner import ErrorBanner


class TabView(QWidget):
    """A tab: says what failed in its banner (and to the window), and what it is doing."""

    status_message = Signal(str)
    error = Signal(str)
    open_tab = Signal(str)
    """The user asked for another tab (its key): an empty state's link to what to do first."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.banner = ErrorBanner(self)

    @Slot(str)
    def show_error(self, message: str) -> None:
        self.banner.show_message(message)
        self.error.emit(message)

    def hide_error(self) -> None:
        self.banner.hide()


def section_title(text: str, parent: QWidget | None = None) -> QLabel:
    label = QLabel(text, parent)
    label.setObjectName("sectionTitle")
    return label


def tab_link(key: str, text: str) -> str:
    """``text`` as a link that opens the tab ``key`` (a QLabel's ``linkActivated`` gives the
    key: connect it to the tab's ``open_tab``)."""
    return f'<a href="{key}" style="color:#2563eb; text-decoration:none">{text}</a>'


def hint(text: str, parent: QWidget | None = None) -> QLabel:
    label = QLabel(text, parent)
    label.setObjectName("hint")
    label.setWordWrap(True)
    return label


def column(
    parent: QWidget | None = None, margins: tuple[int, int, int, int] = (0, 0, 0, 0)
) -> tuple[QWidget, QVBoxLayout]:
    """A widget with a vertical layout, the unit each side of a splitter is made of."""
    widget = QWidget(parent)
    layout = QVBoxLayout(widget)
    layout.setContentsMargins(*margins)
    return widget, layout


def splitter(
    parent: QWidget | None = None, orientation: Qt.Orientation = Qt.Orientation.Horizontal
) -> QSplitter:
    return QSplitter(orientation, parent)
