"""Measure process start → first painted window, for ``bench/startup.py``; or save a
picture of the screen once the window has painted, for ``packaging/smoke.py``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget

from desktop.first_paint import on_first_paint


def quit_after_first_paint(window: QWidget, started: float) -> None:
    def report() -> None:
        # Wall-clock stamp too, so a parent process can measure from its own spawn time.
        print(f"first-paint-at {time.time():.4f}", flush=True)
        print(f"first-paint-in-process-s {time.perf_counter() - started:.3f}", flush=True)
        _close_all()

    on_first_paint(window, report)


def _close_all() -> None:
    app = QApplication.instance()
    for widget in QApplication.topLevelWidgets():
        widget.close()
    if app is not None:
        app.quit()


def grab_after_first_paint(window: QWidget, path: Path, settle_ms: int = 1500) -> None:
    """Save the whole screen as the display server shows it (not the widget rendering
    itself) a moment after the first paint, then quit."""

    def grab() -> None:
        screen = window.screen()
        picture = screen.grabWindow(0)
        path.parent.mkdir(parents=True, exist_ok=True)
        if picture.isNull() or not picture.save(str(path), "PNG"):
            print(f"could not save a picture of the screen to {path}", file=sys.stderr, flush=True)
        else:
            print(f"grabbed {path} ({picture.width()}x{picture.height()})", flush=True)
        _close_all()

    on_first_paint(window, lambda: QTimer.singleShot(settle_ms, grab))
