"""The model files once added by hand and kept in the window settings (QSettings), and
their move into the registry, where the CLI and every tab see them."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from core.errors import CotragError
from core.models import service
from core.workspace import Workspace

ADDED_MODELS_KEY = "models/added"


def added_models(settings: QSettings) -> list[str]:
    """The added model paths, oldest first (QSettings may hand back a str or a list)."""
    value = settings.value(ADDED_MODELS_KEY, [])
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


def migrate_added_models(settings: QSettings, ws: Workspace) -> list[str]:
    """Register each model file kept in ``settings`` and forget the setting. Returns the
    problems, one per file."""
    problems = []
    for raw in added_models(settings):
        try:
            service.add_local(ws, Path(raw))
        except CotragError as exc:
            problems.append(str(exc))
    settings.remove(ADDED_MODELS_KEY)
    return problems
