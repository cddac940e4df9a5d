"""No silent changes from the mouse wheel: an input changes its value from the wheel only
when it has keyboard focus.

Scrolling a form with the wheel used to change whichever combo box, spin box or slider
passed under the pointer (Training's *Engine* went from ``auto`` to ``unsloth``). One
event filter on the application fixes this everywhere: such an input takes focus only by
click or Tab (``StrongFocus``, never ``WheelFocus``), and a wheel event over one without
focus scrolls the scroll area around it instead, as the user meant.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollBar,
    QWidget,
)

_GUARD_NAME = "cotrag-wheel-guard"


def _guarded(widget: QObject) -> QWidget | None:
    """The value-holding input ``widget`` is or belongs to (a spin box's line edit is its
    child), or None."""
    for candidate in (widget, widget.parent()):
        if isinstance(candidate, QScrollBar):
            return None
        if isinstance(candidate, QComboBox | QAbstractSpinBox | QAbstractSlider):
            return candidate
    return None


def _scroll_area(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            return parent
        parent = parent.parentWidget()
    return None


class WheelGuard(QObject):
    """Application-wide event filter; see the module's docstring."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.Polish:
            widget = _guarded(watched)
            if widget is watched and widget.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            return False
        if kind != QEvent.Type.Wheel:
            return False
        widget = _guarded(watched)
        if widget is None or widget.hasFocus():
            return False
        area = _scroll_area(widget)
        if area is not None:
            # The wheel scrolls the form around the input, not the input.
            QApplication.sendEvent(area.viewport(), event)
            event.accept()  # handled: it goes no further up
            return True
        event.ignore()  # a spontaneous event then goes on to the parent widgets
        return True


def install_wheel_guard(app: QApplication | None = None) -> WheelGuard:
    """Install the guard on the application (once; later calls return the same guard)."""
    app = app or QApplication.instance()  # type: ignore[assignment]
    assert isinstance(app, QApplication)
    existing = app.findChild(WheelGuard, _GUARD_NAME)
    if existing is not None:
        return existing
    guard = WheelGuard(app)
    guard.setObjectName(_GUARD_NAME)
    app.installEventFilter(guard)
    # Inputs built before the guard: they take focus by click or Tab only, from now on.
    for widget in app.allWidgets():
        if _guarded(widget) is widget and widget.focusPolicy() == Qt.FocusPolicy.WheelFocus:
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return guard
