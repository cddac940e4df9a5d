"""A screen audit: does every visible text fit its widget, and do sibling widgets overlap?

``audit(window)`` walks the visible widgets under a window and reports, for every
label, button, check box, combo box and table header section, whether its text fits the
room the widget gives it, or is deliberately elided (shortened with "…") with the full
text in its tooltip; and whether any two visible siblings cover each other. Each finding
names the widget's path, its text and the sizes, so a test can list them all at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFontMetrics, QTextDocument
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractScrollArea,
    QCheckBox,
    QComboBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QRubberBand,
    QScrollBar,
    QSizeGrip,
    QStyle,
    QStyleOptionButton,
    QStyleOptionComboBox,
    QToolButton,
    QWidget,
)

ELLIPSIS = "…"
# Text may overhang its box by this many pixels (anti-aliasing, a glyph's side bearing)
# before a person could see it cut.
SLACK = 2
# A combo box that paints its text shortened with "…" where it does not fit says so with
# this (Qt's own cuts it mid-letter); with the whole text in its tooltip it passes.
ELIDES_PROPERTY = "elidesText"
# Widgets laid over others on purpose (a floating banner, a drop hint) say so with this.
OVERLAY_PROPERTY = "auditOverlay"


@dataclass(frozen=True)
class Finding:
    """One thing a person would see cut or covered."""

    path: str
    problem: str  # "clipped" or "overlaps"
    text: str
    need: int  # pixels the text needs (clipped) or the overlap's area (overlaps)
    have: int  # pixels the widget gives it (clipped) or 0
    detail: str = ""

    def __str__(self) -> str:
        if self.problem == "clipped":
            return f"{self.path}: {self.text!r} needs {self.need} px, has {self.have} {self.detail}"
        return f"{self.path}: {self.detail}"


def widget_path(widget: QWidget, root: QWidget | None = None) -> str:
    """Class names (and object names) from the window down, e.g. ``MainWindow/ChatTab/QLabel``."""
    parts: list[str] = []
    node: QWidget | None = widget
    while node is not None:
        name = type(node).__name__
        if node.objectName() and not node.objectName().startswith("qt_"):
            name += f"#{node.objectName()}"
        parts.append(name)
        if node is root:
            break
        node = node.parentWidget()
    return "/".join(reversed(parts))


def _plain(text: str) -> str:
    if GuiQt.mightBeRichText(text):
        doc = QTextDocument()
        doc.setHtml(text)
        return doc.toPlainText()
    return text


def _mnemonic_free(text: str) -> str:
    return re.sub(r"&(.)", r"\1", text)


def elided_on_purpose(shown: str, tooltip: str) -> bool:
    """Shortened with an ellipsis, and the tooltip has what was cut."""
    shown = shown.strip()
    if not tooltip or ELLIPSIS not in shown:
        return False
    head = shown.split(ELLIPSIS)[0].strip()
    return _plain(tooltip).replace("\n", " ").find(head.replace("\n", " ")) >= 0


def _tooltip_holds(text: str, tooltip: str) -> bool:
    return bool(tooltip) and text.strip() in _plain(tooltip)


def _label(label: QLabel) -> Finding | None:
    text = QLabel.text(label)  # what it shows (a subclass may say more in text())
    if not text or (label.pixmap() is not None and not label.pixmap().isNull()):
        return None
    plain = _plain(text)
    if elided_on_purpose(plain, label.toolTip()):
        return None
    have_w, have_h = label.contentsRect().width(), label.contentsRect().height()
    if label.wordWrap():
        need_h = label.heightForWidth(label.width())
        if need_h > label.height() + SLACK:
            return Finding(
                widget_path(label), "clipped", plain, need_h, label.height(), "(height, wrapped)"
            )
        return None
    hint = QLabel.sizeHint(label)
    need = hint.width() - (label.width() - have_w)
    if need > have_w + SLACK:
        return Finding(widget_path(label), "clipped", plain, need, have_w)
    hint_h = hint.height() - (label.height() - have_h)
    if hint_h > have_h + 2 * SLACK + 2:
        return Finding(widget_path(label), "clipped", plain, hint_h, have_h, "(height)")
    return None


def _button(button: QAbstractButton) -> Finding | None:
    text = _mnemonic_free(button.text())
    if not text.strip() or elided_on_purpose(text, button.toolTip()):
        return None
    fm = QFontMetrics(button.font())
    need = max(fm.horizontalAdvance(line) for line in text.split("\n"))
    style = button.style()
    icon = button.icon()
    icon_w = button.iconSize().width() + 4 if not icon.isNull() else 0
    if isinstance(button, QToolButton):
        if button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonIconOnly:
            return None
        if button.toolButtonStyle() != Qt.ToolButtonStyle.ToolButtonTextBesideIcon:
            icon_w = 0
        margin = style.pixelMetric(QStyle.PixelMetric.PM_ButtonMargin, None, button)
        have = button.width() - margin
        if button.menu() is not None or button.popupMode().value:
            have -= style.pixelMetric(QStyle.PixelMetric.PM_MenuButtonIndicator, None, button)
    elif isinstance(button, QPushButton | QCheckBox | QRadioButton):
        option = QStyleOptionButton()
        button.initStyleOption(option)
        element = QStyle.SubElement.SE_PushButtonContents
        if isinstance(button, QCheckBox):
            element = QStyle.SubElement.SE_CheckBoxContents
        elif isinstance(button, QRadioButton):
            element = QStyle.SubElement.SE_RadioButtonContents
        have = style.subElementRect(element, option, button).width()
        if isinstance(button, QPushButton) and button.menu() is not None:
            have -= style.pixelMetric(QStyle.PixelMetric.PM_MenuButtonIndicator, None, button)
    else:
        return None
    need += icon_w
    if need > have + SLACK:
        return Finding(widget_path(button), "clipped", text, need, have)
    return None


def _combo(combo: QComboBox) -> Finding | None:
    text = combo.currentText()
    if not text:
        return None
    option = QStyleOptionComboBox()
    combo.initStyleOption(option)
    field = combo.style().subControlRect(
        QStyle.ComplexControl.CC_ComboBox,
        option,
        QStyle.SubControl.SC_ComboBoxEditField,
        combo,
    )
    need = QFontMetrics(combo.font()).horizontalAdvance(text)
    icon = combo.itemIcon(combo.currentIndex()) if combo.currentIndex() >= 0 else None
    if icon is not None and not icon.isNull():
        need += combo.iconSize().width() + 4
    elides = bool(combo.property(ELIDES_PROPERTY))
    if need > field.width() + SLACK and not (elides and _tooltip_holds(text, combo.toolTip())):
        return Finding(widget_path(combo), "clipped", text, need, field.width())
    return None


def _header(header: QHeaderView) -> list[Finding]:
    model = header.model()
    if model is None:
        return []
    findings: list[Finding] = []
    orientation = header.orientation()
    count = model.columnCount() if orientation == Qt.Orientation.Horizontal else model.rowCount()
    for logical in range(count):
        if header.isSectionHidden(logical):
            continue
        text = str(model.headerData(logical, orientation, Qt.ItemDataRole.DisplayRole) or "")
        if not text.strip():
            continue
        tooltip = str(model.headerData(logical, orientation, Qt.ItemDataRole.ToolTipRole) or "")
        need_size = header.sectionSizeFromContents(logical)
        need = need_size.width() if orientation == Qt.Orientation.Horizontal else need_size.height()
        if header.isSortIndicatorShown() and header.sortIndicatorSection() != logical:
            # Room for the sort arrow is reserved on every section; only one shows it.
            need -= header.style().pixelMetric(QStyle.PixelMetric.PM_HeaderMarkSize, None, header)
        have = header.sectionSize(logical)
        if need > have + SLACK and not _tooltip_holds(text, tooltip):
            findings.append(
                Finding(widget_path(header), "clipped", text, need, have, f"(section {logical})")
            )
    return findings


def _cut_off(widget: QWidget, root: QWidget) -> Finding | None:
    """The part of ``widget`` its ancestors hide, each direction on its own, except where a
    scroll area can bring it into view (a scroll bar allowed in that direction)."""
    x0, x1, y0, y1 = 0, widget.width(), 0, widget.height()
    node = widget
    sideways = upways = False
    while node is not root:
        parent = node.parentWidget()
        if parent is None:
            break
        x0, x1 = x0 + node.x(), x1 + node.x()
        y0, y1 = y0 + node.y(), y1 + node.y()
        area = parent.parentWidget()
        if isinstance(area, QAbstractScrollArea) and parent is area.viewport():
            off = Qt.ScrollBarPolicy.ScrollBarAlwaysOff
            sideways |= area.horizontalScrollBarPolicy() != off
            upways |= area.verticalScrollBarPolicy() != off
        if not sideways:
            x0, x1 = max(x0, 0), min(x1, parent.width())
        if not upways:
            y0, y1 = max(y0, 0), min(y1, parent.height())
        node = parent
    shown_w, shown_h = max(0, x1 - x0), max(0, y1 - y0)
    if widget.width() - shown_w > SLACK:
        need, have, where = widget.width(), shown_w, "width"
    elif widget.height() - shown_h > SLACK:
        need, have, where = widget.height(), shown_h, "height"
    else:
        return None
    detail = f"({where} cut off by the widget it sits in)"
    return Finding(widget_path(widget), "clipped", _text_of(widget), need, have, detail)


def _overlaps(parent: QWidget) -> list[Finding]:
    if isinstance(parent, QAbstractScrollArea):
        return []  # its viewport, scroll bars and corner are placed by Qt
    children = [
        child
        for child in parent.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
        if child.isVisible()
        and not child.isWindow()
        and not isinstance(child, QRubberBand | QSizeGrip | QScrollBar)
        and not child.property(OVERLAY_PROPERTY)
        and child.width() > 0
        and child.height() > 0
    ]
    findings: list[Finding] = []
    for i, first in enumerate(children):
        for second in children[i + 1 :]:
            common: QRect = first.geometry().intersected(second.geometry())
            if common.width() > 1 and common.height() > 1:
                findings.append(
                    Finding(
                        widget_path(first),
                        "overlaps",
                        _text_of(first),
                        common.width() * common.height(),
                        0,
                        f"{_describe(first)} overlaps {_describe(second)} "
                        f"by {common.width()}x{common.height()} px",
                    )
                )
    return findings


def _text_of(widget: QWidget) -> str:
    if isinstance(widget, QLabel | QAbstractButton):
        return _plain(widget.text())
    if isinstance(widget, QComboBox):
        return widget.currentText()
    return ""


def _describe(widget: QWidget) -> str:
    text = _text_of(widget)
    g = widget.geometry()
    label = type(widget).__name__ + (f" {text[:30]!r}" if text else "")
    return f"{label} at ({g.x()},{g.y()} {g.width()}x{g.height()})"


def audit(root: QWidget) -> list[Finding]:
    """Every clipped text and every overlap among the visible widgets under ``root``."""
    findings: list[Finding] = []
    widgets = [root, *root.findChildren(QWidget)]
    for widget in widgets:
        if not widget.isVisible() or widget.width() <= 0 or widget.height() <= 0:
            continue
        if widget is not root and widget.isWindow():
            continue
        if isinstance(widget, QLabel):
            found = _label(widget)
        elif isinstance(widget, QAbstractButton):
            found = _button(widget)
        elif isinstance(widget, QComboBox):
            found = _combo(widget)
        else:
            found = None
        if isinstance(widget, QHeaderView):
            findings.extend(_header(widget))
        if found is None and isinstance(widget, QLabel | QAbstractButton | QComboBox | QLineEdit):
            found = _cut_off(widget, root)
        if found is not None:
            findings.append(found)
        findings.extend(_overlaps(widget))
    return findings


def report(findings: list[Finding]) -> str:
    return "\n".join(str(f) for f in findings)
