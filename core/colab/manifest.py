"""The results manifest: what a remote run's results hold, with every file's sha256.

``cotrag-manifest.json`` (``{"model": name, "files": {path: {size, sha256}}}``) travels
inside the results tar and, for a pushed run, as the last file of its hub commit. The
notebook's package cell writes it; the app checks every file it receives against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.fileio import file_sha256

MANIFEST_NAME = "cotrag-manifest.json"


def make_manifest(model_dir: Path, model: str | None = None) -> dict[str, Any]:
    """``{"model", "files": {rel: {size, sha256}}}`` for ``model_dir``, as the notebook writes."""
    files = {
        p.relative_to(model_dir).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(model_dir.rglob("*"))
        if p.is_file()
    }
    return {"model": model or model_dir.name, "files": files}
