"""Measure process start → first painted window, for ``bench/startup.py``."""

from __future__ import annotations

import time

from PySide6.QtWidgets import QApplication, QWidget

from desktop.first_paint import on_first_paint


def quit_after_first_paint(window: QWidget, started: float) -> None:
    def report() -> None:
        # Wall-clock stamp too, so a parent process can measure from its own spawn time.
        print(f"first-paint-at {time.time():.4f}", flush=True)
        print(f"first-paint-in-process-s {time.perf_counter() - started:.3f}", flush=True)
        app = QApplication.instance()
        for widget in QApplication.topLevelWidgets():
            widget.close()
        if app is not None:
            app.quit()

    on_first_paint(window, report)
