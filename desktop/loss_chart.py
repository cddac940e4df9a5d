"""A live loss curve: training loss per step and validation loss at its steps."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

TRAIN = QColor("#3b82f6")
EVAL = QColor("#f97316")
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 46.0, 12.0, 26.0, 24.0


class LossChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.train: list[tuple[int, float]] = []
        self.eval: list[tuple[int, float]] = []
        self.total = 0
        self.setMinimumHeight(180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(480, 240)

    def clear(self, total: int = 0) -> None:
        self.train, self.eval, self.total = [], [], total
        self.update()

    def add_step(self, step: int, loss: float, total: int = 0) -> None:
        self.train = [p for p in self.train if p[0] < step]  # a resumed run redraws its tail
        self.train.append((step, loss))
        self.total = max(self.total, total)
        self.update()

    def add_eval(self, step: int, loss: float) -> None:
        self.eval = [p for p in self.eval if p[0] != step]
        self.eval.append((step, loss))
        self.eval.sort()
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("#ffffff"))
        plot = QRectF(
            MARGIN_L,
            MARGIN_T,
            max(10.0, self.width() - MARGIN_L - MARGIN_R),
            max(10.0, self.height() - MARGIN_T - MARGIN_B),
        )
        painter.setPen(QColor("#e5e7eb"))
        painter.drawRect(plot)
        self._legend(painter)
        points = self.train + self.eval
        if not points:
            painter.setPen(QColor("#9ca3af"))
            painter.drawText(
                plot, Qt.AlignmentFlag.AlignCenter, "The loss appears here as it trains"
            )
            return
        last_step = max(self.total, max(s for s, _ in points), 1)
        low = min(v for _, v in points)
        high = max(v for _, v in points)
        if high - low < 1e-6:
            high, low = high + 0.5, max(0.0, low - 0.5)
        pad = (high - low) * 0.08
        low, high = max(0.0, low - pad), high + pad

        def at(step: int, value: float) -> QPointF:
            x = plot.left() + plot.width() * (step / last_step)
            y = plot.bottom() - plot.height() * ((value - low) / (high - low))
            return QPointF(x, y)

        painter.setPen(QColor("#6b7280"))
        for i in range(5):
            value = low + (high - low) * i / 4
            y = plot.bottom() - plot.height() * i / 4
            painter.drawText(
                QRectF(0, y - 8, MARGIN_L - 6, 16),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                f"{value:.2f}",
            )
            painter.setPen(QColor("#f3f4f6"))
            painter.drawLine(QPointF(plot.left() + 1, y), QPointF(plot.right() - 1, y))
            painter.setPen(QColor("#6b7280"))
        painter.drawText(
            QRectF(plot.left(), plot.bottom() + 4, plot.width(), 18),
            Qt.AlignmentFlag.AlignRight,
            f"step {last_step}",
        )
        painter.drawText(
            QRectF(plot.left(), plot.bottom() + 4, 60, 18), Qt.AlignmentFlag.AlignLeft, "0"
        )
        for series, colour in ((self.train, TRAIN), (self.eval, EVAL)):
            if not series:
                continue
            path = QPainterPath(at(*series[0]))
            for step, value in series[1:]:
                path.lineTo(at(step, value))
            painter.setPen(QPen(colour, 2))
            painter.drawPath(path)
            if colour == EVAL or len(series) == 1:
                painter.setBrush(colour)
                for step, value in series:
                    painter.drawEllipse(at(step, value), 3, 3)
                painter.setBrush(Qt.BrushStyle.NoBrush)

    def _legend(self, painter: QPainter) -> None:
        x = MARGIN_L
        for label, colour in (("training loss", TRAIN), ("validation loss", EVAL)):
            painter.setPen(QPen(colour, 3))
            painter.drawLine(QPointF(x, 13), QPointF(x + 18, 13))
            painter.setPen(QColor("#374151"))
            painter.drawText(QRectF(x + 22, 4, 120, 18), Qt.AlignmentFlag.AlignVCenter, label)
            x += 140
