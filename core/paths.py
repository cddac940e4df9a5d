"""Where everything the app writes lives: one data dir.

Resolution order: an explicit override (``--data-dir``), then the
``COTRAG_DATA_DIR`` environment variable, then ``platformdirs.user_data_dir``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "cotrag-studio"
ENV_DATA_DIR = "COTRAG_DATA_DIR"


def resolve_data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Return the data dir (created if missing)."""
    if override:
        root = Path(override)
    elif os.environ.get(ENV_DATA_DIR):
        root = Path(os.environ[ENV_DATA_DIR])
    else:
        import platformdirs

        root = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    root = root.expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class DataLayout:
    """The folders under one data dir. Each property creates its folder on first use."""

    root: Path

    @classmethod
    def at(cls, override: str | os.PathLike[str] | None = None) -> DataLayout:
        return cls(resolve_data_dir(override))

    def _sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def chroma(self) -> Path:
        """ChromaDB PersistentClient folder (all knowledge bases)."""
        return self._sub("chroma")

    @property
    def kb_state(self) -> Path:
        """Per-knowledge-base manifests (what is indexed, by content hash) and BM25 caches."""
        return self._sub("kb")

    @property
    def conversations(self) -> Path:
        return self._sub("conversations")

    @property
    def datasets(self) -> Path:
        """One folder per dataset (examples, rejections, what it was made from)."""
        return self._sub("datasets")

    @property
    def logs(self) -> Path:
        return self._sub("logs")

    @property
    def models(self) -> Path:
        return self._sub("models")

    @property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    @property
    def write_lock(self) -> Path:
        """Inter-process lock held by whoever writes to the Chroma folder."""
        return self.root / "chroma.write.lock"
