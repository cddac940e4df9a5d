"""CoT-RAG Studio desktop app (PySide6). All real work happens in ``core``."""
