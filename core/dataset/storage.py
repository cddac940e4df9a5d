"""One folder per dataset under the data dir; examples appended atomically.

    datasets/<name>/dataset.json      what it was made from (knowledge base, teacher, seed…)
    datasets/<name>/examples.jsonl    one accepted example per line
    datasets/<name>/rejections.jsonl  one rejected candidate per line, with its reason

A line counts once its newline is on disk (written, flushed and fsynced in one
call), so a crash, a Cancel or a kill loses nothing already accepted; a torn last
line is cut off before the next append. A re-run skips every seed already decided.
Whole-file rewrites (edit, delete) go through a temp file and a rename, and keep the
previous file as ``examples.jsonl.bak`` so the last change can be undone.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import CotragError
from core.fileio import write_atomic
from core.names import check_name


class DatasetNotFound(CotragError, FileNotFoundError):
    pass


class DatasetExists(CotragError, FileExistsError):
    pass


class DamagedDataset(CotragError, ValueError):
    pass


@dataclass(frozen=True)
class DamagedLine:
    file: str
    line: int
    reason: str


@dataclass
class Dataset:
    name: str
    folder: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def examples_file(self) -> Path:
        return self.folder / "examples.jsonl"

    @property
    def rejections_file(self) -> Path:
        return self.folder / "rejections.jsonl"

    @property
    def meta_file(self) -> Path:
        return self.folder / "dataset.json"

    # -- reading --

    def examples(self) -> list[dict[str, Any]]:
        return [row for row, _ in _read_lines(self.examples_file)]

    def rejections(self) -> list[dict[str, Any]]:
        return [row for row, _ in _read_lines(self.rejections_file)]

    def damaged(self) -> list[DamagedLine]:
        out: list[DamagedLine] = []
        for path in (self.examples_file, self.rejections_file):
            out.extend(_damaged_lines(path))
        return out

    def decided_seeds(self) -> set[str]:
        """Seed keys already accepted or rejected: a re-run skips them."""
        keys = {str(e.get("seed_key", "")) for e in self.examples()}
        keys |= {str(r.get("seed_key", "")) for r in self.rejections()}
        keys.discard("")
        return keys

    # -- writing --

    def append_example(self, example: dict[str, Any]) -> None:
        _append(self.examples_file, example)

    def append_rejection(self, rejection: dict[str, Any]) -> None:
        _append(self.rejections_file, rejection)

    def save_meta(self) -> None:
        write_atomic(self.meta_file, json.dumps(self.meta, ensure_ascii=False, indent=1) + "\n")

    def rewrite_examples(self, examples: list[dict[str, Any]]) -> None:
        """Replace every example (after an edit or a delete); the old file becomes .bak."""
        if self.examples_file.exists():
            shutil.copy2(self.examples_file, self.folder / "examples.jsonl.bak")
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples)
        write_atomic(self.examples_file, text)

    @property
    def can_undo(self) -> bool:
        """An edit or a delete can be undone (the examples before it are kept)."""
        return (self.folder / "examples.jsonl.bak").exists()

    def undo(self) -> bool:
        """Bring back the examples as they were before the last edit or delete."""
        backup = self.folder / "examples.jsonl.bak"
        if not backup.exists():
            return False
        os.replace(backup, self.examples_file)
        return True


class DatasetStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        check_name(name, "dataset")
        return self.folder / name

    def names(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if (p / "dataset.json").exists())

    def exists(self, name: str) -> bool:
        return (self._path(name) / "dataset.json").exists()

    def create(self, name: str, meta: dict[str, Any]) -> Dataset:
        folder = self._path(name)
        if (folder / "dataset.json").exists():
            raise DatasetExists(f"A dataset named {name!r} exists already.")
        folder.mkdir(parents=True, exist_ok=True)
        dataset = Dataset(name, folder, dict(meta, name=name))
        dataset.save_meta()
        return dataset

    def open(self, name: str) -> Dataset:
        folder = self._path(name)
        meta_file = folder / "dataset.json"
        if not meta_file.exists():
            raise DatasetNotFound(
                f"No dataset named {name!r}; `cotrag dataset list` shows the datasets."
            )
        try:
            meta = json.loads(meta_file.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DamagedDataset(f"{meta_file} is damaged ({exc}); fix or delete it.") from exc
        if not isinstance(meta, dict):
            raise DamagedDataset(f"{meta_file} does not hold a JSON object; fix or delete it.")
        return Dataset(name, folder, meta)

    def open_or_create(self, name: str, meta: dict[str, Any]) -> tuple[Dataset, bool]:
        """The dataset (and False) when it exists, else a new one (and True)."""
        if self.exists(name):
            return self.open(name), False
        return self.create(name, meta), True

    def delete(self, name: str) -> None:
        folder = self._path(name)
        if not (folder / "dataset.json").exists():
            raise DatasetNotFound(f"No dataset named {name!r}.")
        shutil.rmtree(folder)


# -- lines ---------------------------------------------------------------------------


def _read_lines(path: Path) -> Iterator[tuple[dict[str, Any], int]]:
    """Valid lines with their numbers; damaged ones are skipped (``damaged`` lists them)."""
    if not path.exists():
        return
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                return  # a torn last line was never accepted
            try:
                row = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(row, dict):
                yield row, number


def _damaged_lines(path: Path) -> Iterator[DamagedLine]:
    if not path.exists():
        return
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                yield DamagedLine(path.name, number, "empty line")
                continue
            if not raw.endswith(b"\n"):
                yield DamagedLine(path.name, number, "cut short (no newline): ignored")
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield DamagedLine(path.name, number, "not UTF-8")
                continue
            except ValueError as exc:
                yield DamagedLine(path.name, number, f"not JSON ({exc.args[0]})")
                continue
            if not isinstance(row, dict):
                yield DamagedLine(path.name, number, "not a JSON object")


def _append(path: Path, row: dict[str, Any]) -> None:
    data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    _cut_torn_tail(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        if written != len(data):
            # A full disk: take the partial line back so the file stays whole.
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_END) - written)
            raise OSError(28, f"No space left to write {path.name}")
        os.fsync(fd)
    finally:
        os.close(fd)


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line without its newline (a write that a crash cut short)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)
