"""CoT-RAG Studio core: everything that works headless (no Qt, ever)."""

from __future__ import annotations

__version__ = "0.1.0"
