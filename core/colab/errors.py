"""The errors of a Colab run, each a sentence that says what to do."""

from __future__ import annotations

from core.errors import CotragError


class ColabError(CotragError, RuntimeError):
    pass


class UnknownGpu(ColabError, ValueError):
    pass


class DamagedResults(ColabError, ValueError):
    """A results archive or a pushed run does not match its manifest."""


class NotebookError(CotragError, ValueError):
    """The job cannot be turned into a notebook (the message says why and what to do)."""
