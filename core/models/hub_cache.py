"""Where a downloaded file lives in the standard Hugging Face cache: the blob named by its
etag, the partial next to it, the hub library's own lock, the snapshot link and the ref.

Laid out exactly as ``huggingface_hub`` lays it out, so ``hf_hub_download`` (with
``local_files_only``), transformers and llama.cpp find what was downloaded here.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core.errors import DownloadBusy
from core.fileio import temp_path, write_atomic
from core.models.transfer import raise_if_cancelled


@dataclass(frozen=True)
class Blob:
    """Where one blob of one repository lives in the cache (the hub library's layout)."""

    storage: Path
    etag: str
    lock: Path

    @classmethod
    def of(cls, cache_dir: Path, repo_id: str, etag: str) -> Blob:
        from huggingface_hub.file_download import repo_folder_name

        folder = repo_folder_name(repo_id=repo_id, repo_type="model")
        # The same lock the hub library takes, so hf_hub_download of the same blob waits for us.
        return cls(cache_dir / folder, etag, cache_dir / ".locks" / folder / f"{etag}.lock")

    @property
    def path(self) -> Path:
        return self.storage / "blobs" / self.etag

    @property
    def partial(self) -> Path:
        return self.storage / "blobs" / f"{self.etag}.incomplete"

    def pointer(self, commit: str, filename: str) -> Path:
        return self.storage / "snapshots" / commit / Path(*PurePosixPath(filename).parts)

    def complete(self, size: int) -> bool:
        return file_size(self.path) == size


@contextmanager
def locked(
    path: Path, cancel: threading.Event | None, filename: str, wait_s: float | None = None
) -> Iterator[None]:
    """Hold the hub library's lock for one blob, giving up on cancel (or after ``wait_s``)."""
    from filelock import Timeout
    from huggingface_hub.utils import WeakFileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while True:
        lock = WeakFileLock(path, timeout=0.5)
        try:
            lock.__enter__()
            break
        except Timeout:
            raise_if_cancelled(cancel, filename, 0, 0)
            if deadline is not None and time.monotonic() > deadline:
                raise DownloadBusy(
                    f"{filename} is being downloaded by another program right now: "
                    "try again when it is done."
                ) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def link(blob: Blob, pointer: Path, revision: str, commit: str) -> None:
    """The snapshot entry (relative symlink, or a copy where symlinks fail) and the ref."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if not pointer.exists():
        if pointer.is_symlink():
            pointer.unlink()  # dangling: its blob was deleted
        try:
            os.symlink(os.path.relpath(blob.path, pointer.parent), pointer)
        except FileExistsError:
            pass  # another process linked it meanwhile
        except OSError:
            # Windows without developer mode: a copy works for every reader of the cache.
            tmp = temp_path(pointer)
            try:
                shutil.copyfile(blob.path, tmp)
                os.replace(tmp, pointer)
            finally:
                tmp.unlink(missing_ok=True)
    if revision != commit:
        ref = blob.storage / "refs" / revision
        if not ref.is_file() or ref.read_text() != commit:
            write_atomic(ref, commit)


def check_filename(filename: str) -> None:
    parts = PurePosixPath(filename).parts
    if not parts or filename.startswith("/") or ".." in parts or "\\" in filename:
        raise ValueError(f"{filename!r} is not a file path inside a repository.")


def file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
