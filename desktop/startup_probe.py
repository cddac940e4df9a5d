"""Measure process start → first painted window, for ``bench/startup.py``."""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget


class _FirstPaint(QObject):
    def __init__(self, started: float, parent: QObject) -> None:
        super().__init__(parent)
        self.started = started
        self.seen = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and not self.seen:
            self.seen = True
            # Report after this paint has completed, then leave.
            QTimer.singleShot(0, self.report)
        return False

    def report(self) -> None:
        # Wall-clock stamp too, so a parent process can measure from its own spawn time.
        print(f"first-paint-at {time.time():.4f}", flush=True)
        print(f"first-paint-in-process-s {time.perf_counter() - self.started:.3f}", flush=True)
        app = QApplication.instance()
        for widget in QApplication.topLevelWidgets():
            widget.close()
        if app is not None:
            app.quit()


def quit_after_first_paint(window: QWidget, started: float) -> None:
    probe = _FirstPaint(started, window)
    window.installEventFilter(probe)
