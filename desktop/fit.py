"""Text that fits the room it is given: a one-line label that shortens itself with "…"
and shows the whole text in its tooltip, and combo boxes that may be narrower than their
longest item (Qt then shortens the shown text) and say the whole choice in their tooltip."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QTableView,
    QWidget,
)

COMBO_PROPERTY = "fitTooltip"
"""The combo box's own tooltip, kept under the current choice's text."""


class ElidedLabel(QLabel):
    """One line of plain text, shortened with "…" to the label's width; then the whole
    text is the tooltip (above the label's own tooltip, if it has one). It may shrink to
    about ``min_chars`` characters; ``text()`` is always the whole text."""

    def __init__(self, text: str = "", parent: QWidget | None = None, min_chars: int = 12) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self._full = ""
        self._tip = ""
        self._min_chars = min_chars
        self.setText(text)

    def text(self) -> str:
        return self._full

    def setText(self, text: str) -> None:
        self._full = text
        self._fit()
        self.updateGeometry()

    def setToolTip(self, tip: str) -> None:
        self._tip = tip
        self._fit()

    def _room(self) -> int:
        return self.contentsRect().width() - 2 * self.margin() - max(0, self.indent())

    def _fit(self) -> None:
        metrics = self.fontMetrics()
        shown = metrics.elidedText(self._full, Qt.TextElideMode.ElideRight, self._room())
        if not self.isVisible() and not self.testAttribute(Qt.WidgetAttribute.WA_Resized):
            shown = self._full  # not laid out yet: its width means nothing
        QLabel.setText(self, shown)
        cut = shown != self._full
        tip = "\n".join(t for t in (self._full if cut else "", self._tip) if t)
        QLabel.setToolTip(self, tip)

    def sizeHint(self) -> QSize:
        hint = QLabel.sizeHint(self)
        extra = self.width() - self._room()
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + extra, hint.height())

    def minimumSizeHint(self) -> QSize:
        full = self.sizeHint()
        least = self.fontMetrics().averageCharWidth() * self._min_chars
        return QSize(min(full.width(), least), full.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()


def fit_combo(combo: QComboBox, min_chars: int = 14) -> QComboBox:
    """Let ``combo`` be as narrow as about ``min_chars`` characters (as wide as its longest
    item when there is room), and keep the current choice's whole text in its tooltip, above its own tooltip."""
    # As wide as its longest item where there is room (the size hint); a minimum width set
    # outright wins over the contents' minimum, so a layout may narrow it that far.
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    arrow = combo.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, combo)
    combo.setMinimumWidth(combo.fontMetrics().averageCharWidth() * min_chars + arrow + 12)
    combo.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
    if combo.property(COMBO_PROPERTY) is None:
        combo.setProperty(COMBO_PROPERTY, combo.toolTip())
        combo.currentTextChanged.connect(lambda _text: _combo_tip(combo))
        combo.installEventFilter(_elider())
        combo.setProperty("elidesText", True)  # the screen audit's word for it
    _combo_tip(combo)
    return combo


class _ComboElider(QObject):
    """Paints a combo box's closed text shortened with "…" where it does not fit (Qt would
    cut it mid-letter)."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.Paint or not isinstance(watched, QComboBox):
            return False
        if watched.isEditable():
            return False
        painter = QStylePainter(watched)
        option = QStyleOptionComboBox()
        watched.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        field = watched.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox,
            option,
            QStyle.SubControl.SC_ComboBoxEditField,
            watched,
        )
        room = field.width() - (0 if option.currentIcon.isNull() else option.iconSize.width() + 4)
        option.currentText = watched.fontMetrics().elidedText(
            option.currentText, Qt.TextElideMode.ElideRight, max(0, room)
        )
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)
        return True


_ELIDER: _ComboElider | None = None


def _elider() -> _ComboElider:
    global _ELIDER
    if _ELIDER is None:
        _ELIDER = _ComboElider()
    return _ELIDER


def _combo_tip(combo: QComboBox) -> None:
    own = str(combo.property(COMBO_PROPERTY) or "")
    combo.setToolTip("\n".join(t for t in (combo.currentText(), own) if t))


class VerticalScroll(QScrollArea):
    """A frameless area that scrolls a tall widget up and down, never sideways: the widget
    then fits a short window, its width follows the area's, and the area is never narrower
    than the widget's least width beside the scroll bar (so nothing is cut at the right)."""

    def __init__(self, widget: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(widget)

    def _beside_bar(self, width: int) -> int:
        return width + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        inner = self.widget()
        least = inner.minimumSizeHint().width() if inner is not None else 0
        return QSize(self._beside_bar(least), hint.height())

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        inner = self.widget()
        wanted = inner.sizeHint().width() if inner is not None else 0
        return QSize(self._beside_bar(wanted), hint.height())


def vertical_scroll(widget: QWidget) -> VerticalScroll:
    return VerticalScroll(widget)


class FillColumn(QObject):
    """Keeps one column of ``table`` as wide as the room the other columns leave, but never
    narrower than ``least`` pixels (then the table scrolls sideways): a question column
    that grows with the window and never collapses to a few letters."""

    def __init__(self, table: QTableView, column: int, least: int) -> None:
        super().__init__(table)
        self.table, self.column, self.least = table, column, least
        header = table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
        header.sectionResized.connect(self._on_section_resized)
        table.viewport().installEventFilter(self)
        self.fit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.fit()
        return False

    def _on_section_resized(self, logical: int, _old: int, _new: int) -> None:
        if logical != self.column:
            self.fit()

    def fit(self) -> None:
        header = self.table.horizontalHeader()
        others = sum(
            header.sectionSize(c)
            for c in range(header.count())
            if c != self.column and not header.isSectionHidden(c)
        )
        width = max(self.least, self.table.viewport().width() - others)
        if header.sectionSize(self.column) != width:
            header.resizeSection(self.column, width)
