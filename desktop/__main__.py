"""Start CoT-RAG Studio: ``cotrag-studio`` or ``python -m desktop``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication, QWidget

_STARTED = time.perf_counter()
log = logging.getLogger("desktop")
DESKTOP_FILE = "cotrag-studio"
"""The launcher's name (packaging/linux/cotrag-studio.desktop): the window says it is that app."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cotrag-studio", description=__doc__)
    parser.add_argument("--data-dir", help="use this data folder (default: the one in settings)")
    parser.add_argument(
        "--screenshots",
        metavar="DIR",
        help="render each tab with a small sample knowledge base and save PNGs into DIR",
    )
    parser.add_argument(
        "--quit-after-paint",
        action="store_true",
        help="exit once the window has painted; prints the startup time (for bench/startup.py)",
    )
    parser.add_argument(
        "--grab",
        metavar="PNG",
        help="once the window has painted, save a picture of the whole screen to PNG and "
        "exit (checks a launcher under Xvfb: packaging/smoke.py)",
    )
    return parser.parse_args(argv)


def _install_excepthook() -> None:
    """An exception in a slot becomes a logged traceback and a sentence, not a crash."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, exc, tb)
            return
        log.error("Unhandled error:\n%s", "".join(traceback.format_exception(kind, exc, tb)))
        from PySide6.QtWidgets import QApplication

        from desktop.tasks import user_message

        for widget in QApplication.topLevelWidgets():
            show = getattr(widget, "show_error", None)
            if callable(show):
                show(user_message(exc))
                break

    sys.excepthook = hook


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.screenshots:
        # Rendering to files needs no screen; this also works on a headless machine.
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication, QMessageBox

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setOrganizationName("cotrag")
    app.setApplicationName("CoT-RAG Studio")  # the window's WM_CLASS: the launcher's StartupWMClass
    app.setDesktopFileName(DESKTOP_FILE)  # Wayland's app id: the launcher's file name
    from core.errors import CotragError
    from core.workspace import Workspace, setup_logging
    from desktop.settings_dialog import DATA_DIR_KEY
    from desktop.style import stylesheet

    app.setStyleSheet(stylesheet())

    if args.screenshots:
        from desktop.screenshots import render_screenshots

        for path in render_screenshots(Path(args.screenshots)):
            print(path)
        return 0

    settings = QSettings()
    data_dir = args.data_dir or settings.value(DATA_DIR_KEY) or None
    try:
        workspace = Workspace(str(data_dir) if data_dir else None)
    except CotragError as exc:
        QMessageBox.critical(None, "CoT-RAG Studio", str(exc))
        return 2
    log_file = setup_logging(workspace.layout)
    _install_excepthook()

    from desktop.window import MainWindow

    window = MainWindow(workspace, settings, log_file)
    if args.quit_after_paint:
        from desktop.startup_probe import quit_after_first_paint

        quit_after_first_paint(window, _STARTED)
    if args.grab:
        from desktop.startup_probe import grab_after_first_paint

        grab_after_first_paint(window, Path(args.grab))
    window.show()
    paint_first(window)
    if not window.isVisible():  # closed before it painted (or by --quit-after-paint)
        return 0
    return run_event_loop(app)


def paint_first(window: QWidget, timeout_ms: int = 3000) -> None:
    """Run Qt's own loop until the window has painted once: asyncio and qasync, which
    painting does not need, are imported after that."""
    from PySide6.QtCore import QEventLoop, QTimer

    from desktop.first_paint import on_first_paint

    loop = QEventLoop()
    on_first_paint(window, loop.quit)
    QTimer.singleShot(timeout_ms, loop.quit)  # a window that is never exposed
    loop.exec()


def run_event_loop(app: QApplication) -> int:
    """Run Qt under qasync so asyncio code and Qt share one loop on the main thread."""
    import asyncio

    import qasync

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)
    with loop:
        loop.run_until_complete(closed.wait())
    return 0


if __name__ == "__main__":
    sys.exit(main())
