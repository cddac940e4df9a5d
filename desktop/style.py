"""The stylesheet and icons, read from ``resources/`` (source checkout or frozen bundle)."""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QIcon

from core.resources import read_text, resource_path


@cache
def stylesheet() -> str:
    # QSS urls are resolved against the working directory, so give the icons' full path.
    icons = resource_path("icons").as_posix()
    return read_text("styles", "app.qss").replace("@ICONS@", icons)


def icon(name: str) -> QIcon:
    try:
        return QIcon(str(resource_path("icons", f"{name}.svg")))
    except FileNotFoundError:
        return QIcon()
