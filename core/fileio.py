"""Crash-safe file writes for the whole project: one atomic writer, one cached JSON file.

A write goes to a temp file with a name of its own (pid, thread, random) in the same
folder, is fsynced, then renamed over the target: a crash leaves the old file or the
new one, never half of one, and two writers never share a temp file. Imports nothing
from the rest of ``core`` so every layer can use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def temp_path(path: Path) -> Path:
    """A sibling of ``path`` that no other writer (process or thread) will pick."""
    tag = f"{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex[:8]}"
    return path.with_name(f".{path.name}.{tag}.tmp")


def write_atomic(path: Path, data: str | bytes, *, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    payload = data.encode(encoding) if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any, *, indent: int | None = 1) -> None:
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=indent))


FileStamp = tuple[int, int, int]


def file_stamp(path: Path) -> FileStamp | None:
    """What changes when the file is rewritten: the inode changes with every rename into
    place, even within one mtime tick and at the same size."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class CachedJsonFile(Generic[T]):
    """One JSON file read through a cache keyed on its stamp, written atomically.

    ``parse`` turns the JSON into a value (``None`` when the file is missing), ``dump``
    turns a value back into JSON, ``copy`` keeps callers from mutating the cached value.
    ``damaged``, when given, turns the error of a file that cannot be parsed (``ValueError``,
    ``KeyError``, ``TypeError``) into the value to use instead, cached like a good one until
    the file changes; without it, that error propagates.
    """

    def __init__(
        self,
        path: Path,
        parse: Callable[[Any | None], T],
        dump: Callable[[T], Any],
        copy: Callable[[T], T],
        damaged: Callable[[Exception], T] | None = None,
    ) -> None:
        self.path = path
        self._parse = parse
        self._dump = dump
        self._copy = copy
        self._damaged = damaged
        self._cached: T | None = None
        self._stamp: FileStamp | None = None
        self._lock = threading.Lock()

    def read(self) -> T:
        """The file's value; a damaged file raises what ``parse`` or ``json`` raises."""
        with self._lock:
            stamp = file_stamp(self.path)
            if self._cached is None or stamp != self._stamp:
                self._cached, self._stamp = self._load(stamp), stamp
            return self._copy(self._cached)

    def _load(self, stamp: FileStamp | None) -> T:
        try:
            raw = None if stamp is None else json.loads(self.path.read_text("utf-8"))
            return self._parse(raw)
        except (ValueError, KeyError, TypeError) as exc:
            if self._damaged is None:
                raise
            return self._damaged(exc)

    def write(self, value: T) -> None:
        with self._lock:
            write_json_atomic(self.path, self._dump(value))
            self._cached, self._stamp = self._copy(value), file_stamp(self.path)

    def forget(self) -> None:
        """Drop the cache (the next read goes to disk)."""
        with self._lock:
            self._cached, self._stamp = None, None
