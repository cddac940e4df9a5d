"""The GGUF models the user added (by dialog or drop), kept in QSettings for every tab."""

from __future__ import annotations

from PySide6.QtCore import QSettings

ADDED_MODELS_KEY = "models/added"


def added_models(settings: QSettings) -> list[str]:
    """The added model paths, oldest first (QSettings may hand back a str or a list)."""
    value = settings.value(ADDED_MODELS_KEY, [])
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []
