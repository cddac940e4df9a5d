"""The embedders a knowledge base can be built with: the bundled MiniLM and tuned ones.

    embedders/<name>/                a sentence-transformers folder (what ``Embedder`` loads)
    embedders/<name>/cotrag.json     where it came from: base, dataset, run, recall figures

A tuned embedder's name is its folder's name, which is also what a knowledge base
records (``Embedder.model_name``), so a knowledge base names the embedder that built
it and nothing else is needed to find it again. The bundled model is named by its
package folder (``model``), which knowledge bases made before tuning existed record.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import CotragError
from core.knowledge.embedder import bundled_model_path
from core.paths import DataLayout

INFO_FILE = "cotrag.json"
_NAME_RE = re.compile(r"^[\w][\w.-]{0,63}$", re.UNICODE)
_NEEDED = ("modules.json", "config.json", "tokenizer.json")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
BUNDLED_LABEL = "all-MiniLM-L6-v2 (bundled)"


class EmbedderMissing(CotragError, FileNotFoundError):
    """An embedder a knowledge base or a run names is not (or no longer) on disk."""


class EmbedderExists(CotragError, FileExistsError):
    pass


@dataclass(frozen=True)
class EmbedderEntry:
    name: str
    path: Path
    bundled: bool
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return BUNDLED_LABEL if self.bundled else self.name


def bundled_name() -> str:
    return bundled_model_path().name


def embedders_dir(layout: DataLayout) -> Path:
    path = layout.root / "embedders"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_new_name(layout: DataLayout, name: str) -> None:
    if not _NAME_RE.match(name):
        raise CotragError(
            f"{name!r} cannot name an embedder: use letters, digits, '.', '-' or '_' "
            "(up to 64, no spaces)."
        )
    if name == bundled_name():
        raise EmbedderExists(f"{name!r} is the bundled embedder's name: choose another.")
    if (embedders_dir(layout) / name).exists():
        raise EmbedderExists(f"An embedder named {name!r} exists: choose another name.")


def missing_files(folder: Path) -> list[str]:
    """What a sentence-transformers folder lacks to load (empty when it is complete)."""
    if not folder.is_dir():
        return [str(folder)]
    gone = [n for n in _NEEDED if not (folder / n).is_file()]
    if not any((folder / n).is_file() for n in _WEIGHTS):
        gone.append(_WEIGHTS[0])
    return gone


def list_embedders(layout: DataLayout) -> list[EmbedderEntry]:
    out = [EmbedderEntry(bundled_name(), bundled_model_path(), True, {"label": BUNDLED_LABEL})]
    for folder in sorted(embedders_dir(layout).iterdir()):
        if folder.is_dir() and not folder.name.startswith(".") and not missing_files(folder):
            out.append(EmbedderEntry(folder.name, folder, False, read_info(folder)))
    return out


def read_info(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / INFO_FILE).read_text("utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def resolve(layout: DataLayout, name: str, *, needed_by: str = "") -> Path:
    """The folder of embedder ``name``, checked complete; else a sentence naming the fix."""
    if name in ("", "default") or name == bundled_name():
        return bundled_model_path()
    folder = embedders_dir(layout) / name
    gone = missing_files(folder)
    if gone:
        who = f"Knowledge base {needed_by!r} was built with" if needed_by else "The"
        raise EmbedderMissing(
            f"{who} embedder {name!r}, whose files are missing ({', '.join(gone)} under "
            f"{folder}). Switch the knowledge base to a version it still has "
            "(`cotrag kb versions`), or re-embed it with an embedder that exists "
            "(`cotrag kb reembed KB --embedder NAME`)."
        )
    return folder


def install(layout: DataLayout, staged: Path, name: str, info: dict[str, Any]) -> Path:
    """Move a finished sentence-transformers folder into place under ``name`` (atomic)."""
    check_new_name(layout, name)
    gone = missing_files(staged)
    if gone:
        raise EmbedderMissing(f"The tuned embedder in {staged} is incomplete: {', '.join(gone)}.")
    (staged / INFO_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    final = embedders_dir(layout) / name
    os.replace(staged, final)
    return final


def delete(layout: DataLayout, name: str) -> None:
    if name == bundled_name():
        raise CotragError("The bundled embedder cannot be deleted.")
    folder = embedders_dir(layout) / name
    if not folder.is_dir():
        raise EmbedderMissing(f"No embedder named {name!r}.")
    shutil.rmtree(folder)
