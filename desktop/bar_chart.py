"""A small horizontal bar chart: one labelled bar per category (the dataset report)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QHelpEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

ROW = 20


class BarChart(QWidget):
    def __init__(self, title: str, colour: str = "#3b82f6", parent: QWidget | None = None):
        super().__init__(parent)
        self.title = title
        self.colour = QColor(colour)
        self.values: list[tuple[str, int]] = []
        self.tips: list[str] = []
        """What each bar's label stands for in full (its tooltip; "" for the label itself)."""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._resize()

    def set_values(
        self, values: dict[str, int] | list[tuple[str, int]], tips: list[str] | None = None
    ) -> None:
        items = list(values.items()) if isinstance(values, dict) else list(values)
        self.values = [(str(k), int(v)) for k, v in items]
        self.tips = list(tips or [])
        self._resize()
        self.update()

    def tip_at(self, y: float) -> str:
        """The tooltip of the bar at height ``y``: its full text, then its label."""
        row = int(y // ROW) - 1
        if not 0 <= row < len(self.values):
            return ""
        label = self.values[row][0]
        tip = self.tips[row] if row < len(self.tips) else ""
        return f"{label}: {tip}" if tip else label

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            tip = self.tip_at(event.pos().y())
            if tip:
                QToolTip.showText(event.globalPos(), tip, self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)

    def _resize(self) -> None:
        self.setFixedHeight(ROW * (len(self.values) or 1) + ROW + 6)

    def sizeHint(self) -> QSize:
        return QSize(280, self.height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QColor("#374151"))
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(QRectF(0, 0, self.width(), ROW), Qt.AlignmentFlag.AlignVCenter, self.title)
        font.setBold(False)
        painter.setFont(font)
        if not self.values:
            painter.setPen(QColor("#9ca3af"))
            painter.drawText(
                QRectF(0, ROW, self.width(), ROW), Qt.AlignmentFlag.AlignVCenter, "nothing yet"
            )
            return
        label_w = min(150.0, self.width() * 0.4)
        number_w = 44.0
        most = max(v for _, v in self.values) or 1
        for i, (label, value) in enumerate(self.values):
            y = ROW + i * ROW
            painter.setPen(QColor("#4b5563"))
            painter.drawText(
                QRectF(0, y, label_w - 6, ROW),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                painter.fontMetrics().elidedText(
                    label, Qt.TextElideMode.ElideRight, int(label_w - 6)
                ),
            )
            span = max(0.0, self.width() - label_w - number_w)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self.colour)
            painter.drawRoundedRect(QRectF(label_w, y + 4, span * value / most, ROW - 8), 3, 3)
            painter.setPen(QColor("#111827"))
            painter.drawText(
                QRectF(label_w + span * value / most + 4, y, number_w, ROW),
                Qt.AlignmentFlag.AlignVCenter,
                str(value),
            )
