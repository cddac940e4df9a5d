"""Resumable downloads into the standard Hugging Face cache.

``huggingface_hub`` writes each download to a fresh temporary name and deletes it
on failure, so a 5 GB model interrupted at 90% (app closed, laptop asleep) starts
over. Here the partial lives at a fixed place next to the blob,
``<cache>/models--org--name/blobs/<etag>.incomplete``, and the next attempt asks for
``Range: bytes=<what we have>-``. The finished file lands exactly where the hub's
own client would put it (blob, ``snapshots/<commit>/<path>`` symlink, ``refs/``), so
``hf_hub_download(local_files_only=True)``, transformers and llama.cpp find it.

A journal (one small JSON per download in ``journal_dir``) remembers what was being
fetched, so after a restart the app lists "paused: 412 of 900 MB" and offers Resume
(:func:`pending_downloads`). Pausing is cancelling with the partial kept
(:class:`~core.errors.DownloadCancelled`); :func:`discard_partial` is "Cancel".
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from core.errors import (
    DiskFull,
    DownloadBusy,
    DownloadCancelled,
    DownloadCorrupt,
    HubError,
    HubUnreachable,
)
from core.models.hub import HubClient, free_disk, gb, hub_errors

if TYPE_CHECKING:
    import httpx2

log = logging.getLogger(__name__)

MAX_RETRIES = 5
"""Dropped connections in a row (without a byte between them) before giving up."""
PROGRESS_INTERVAL = 0.1
"""Seconds between progress callbacks: ~10 a second is smooth and costs nothing."""
_RATE_WINDOW = 3.0
_NO_SPACE = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")


@dataclass
class DownloadProgress:
    repo_id: str
    filename: str
    done: int
    """Bytes of the file on disk, including those from an earlier attempt."""
    total: int
    bytes_per_s: float
    """Over the last few seconds, so a resume does not look infinitely fast."""
    eta_s: float | None
    resumed_from: int = 0
    """Bytes already on disk when this attempt started (0 for a fresh download)."""


@dataclass
class PendingDownload:
    """A download that was started and not finished: what the app offers to resume."""

    repo_id: str
    filename: str
    revision: str
    commit: str
    etag: str
    size: int
    started: str
    """ISO 8601 time of the first attempt."""
    done: int
    """Bytes of the partial file on disk now."""
    journal: Path

    @property
    def fraction(self) -> float:
        return self.done / self.size if self.size else 0.0


@dataclass(frozen=True)
class _Remote:
    """What the hub says about one file at one revision (from a HEAD on its resolve URL)."""

    commit: str
    etag: str
    size: int
    url: str


@dataclass(frozen=True)
class _Blob:
    """Where one blob of one repository lives in the cache (the hub library's layout)."""

    storage: Path
    etag: str
    lock: Path

    @classmethod
    def of(cls, cache_dir: Path, repo_id: str, etag: str) -> _Blob:
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
        return _size(self.path) == size


def download_file(
    client: HubClient,
    repo_id: str,
    filename: str,
    *,
    revision: str = "main",
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    journal_dir: Path | None = None,
) -> Path:
    """Download ``filename`` of ``repo_id`` into the hub cache and return its snapshot path.

    Resumes from a partial left by an earlier attempt (this process or another), checks
    the size and checksum, and returns at once when the file is already cached. Raises
    :class:`~core.errors.DownloadCancelled` when ``cancel`` is set (partial kept),
    :class:`~core.errors.DiskFull`, :class:`~core.errors.DownloadCorrupt`, or a
    :class:`~core.errors.HubError` saying what the hub refused.
    """
    _check_filename(filename)
    remote = _resolve(client, repo_id, filename, revision)
    blob = _Blob.of(client.cache_dir, repo_id, remote.etag)
    pointer = blob.pointer(remote.commit, filename)
    journal = _journal_path(journal_dir, repo_id, filename, revision) if journal_dir else None
    if not blob.complete(remote.size):
        with _locked(blob.lock, cancel, filename):
            if not blob.complete(remote.size):
                if journal is not None:
                    _write_journal(journal, client, repo_id, filename, revision, remote)
                try:
                    _fetch(client, remote, blob, repo_id, filename, progress, cancel)
                except DownloadCorrupt:
                    # Nothing is left to resume: the damaged partial is gone.
                    if journal is not None:
                        journal.unlink(missing_ok=True)
                    raise
    _link(blob, pointer, revision, remote.commit)
    if journal is not None:
        journal.unlink(missing_ok=True)
    return pointer


def discard_partial(
    client: HubClient,
    repo_id: str,
    filename: str,
    revision: str = "main",
    *,
    journal_dir: Path | None = None,
) -> bool:
    """Delete a paused download's partial file and journal entry; False when there was none.

    The journal knows the blob's etag, so this works offline; without a journal entry
    the hub is asked which blob ``filename`` is.
    """
    journal = _journal_path(journal_dir, repo_id, filename, revision) if journal_dir else None
    entry = _read_journal(journal) if journal is not None else None
    etag = entry["etag"] if entry else _resolve(client, repo_id, filename, revision).etag
    blob = _Blob.of(client.cache_dir, repo_id, etag)
    with _locked(blob.lock, None, filename, wait_s=2.0):
        existed = blob.partial.exists()
        blob.partial.unlink(missing_ok=True)
    if journal is not None:
        journal.unlink(missing_ok=True)
    return existed


def pending_downloads(journal_dir: Path, cache_dir: Path) -> list[PendingDownload]:
    """Downloads started and not finished, oldest first, with the bytes already on disk.

    An entry whose file has been completed meanwhile (by another tool, say) is
    dropped from the journal here, so the list never offers to resume a done file.
    """
    pending = []
    for path in sorted(Path(journal_dir).glob("*.json")) if Path(journal_dir).is_dir() else []:
        entry = _read_journal(path)
        if entry is None:
            continue
        blob = _Blob.of(Path(cache_dir), entry["repo_id"], entry["etag"])
        if blob.complete(int(entry["size"])):
            path.unlink(missing_ok=True)
            continue
        pending.append(
            PendingDownload(
                repo_id=entry["repo_id"],
                filename=entry["filename"],
                revision=entry["revision"],
                commit=entry["commit"],
                etag=entry["etag"],
                size=int(entry["size"]),
                started=entry["started"],
                done=_size(blob.partial) or 0,
                journal=path,
            )
        )
    return sorted(pending, key=lambda p: p.started)


def _resolve(client: HubClient, repo_id: str, filename: str, revision: str) -> _Remote:
    """Commit, etag, size and download URL from a HEAD on the resolve URL (as the hub lib does)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=client.endpoint)
    with hub_errors(client, repo_id, filename=filename, revision=revision):
        meta = get_hf_file_metadata(url, token=client.auth, endpoint=client.endpoint)
    if not meta.commit_hash or not meta.etag or meta.size is None:
        raise HubError(
            f"The server at {client.endpoint} did not say the commit, checksum and size of "
            f"{filename}: check that HF_ENDPOINT points to a Hugging Face hub."
        )
    return _Remote(meta.commit_hash, meta.etag, int(meta.size), meta.location or url)


def _fetch(
    client: HubClient,
    remote: _Remote,
    blob: _Blob,
    repo_id: str,
    filename: str,
    progress: Callable[[DownloadProgress], None] | None,
    cancel: threading.Event | None,
) -> None:
    """Bring ``blob.partial`` to the full file, check it, and rename it to the blob."""
    blob.path.parent.mkdir(parents=True, exist_ok=True)
    have = _size(blob.partial) or 0
    if have > remote.size:
        blob.partial.unlink()
        have = 0
    needed = remote.size - have
    free = free_disk(blob.path.parent)
    if free is not None and free < needed:
        raise DiskFull(
            f"{filename} needs {gb(needed)} more in {blob.path.parent}, which has only "
            f"{gb(free)} free: free some space or pick a smaller file."
        )
    reporter = _Reporter(repo_id, filename, remote.size, have, progress)
    for attempt in (1, 2):
        check = _Checksum(remote.etag, remote.size)
        if have:
            # A hash state cannot outlive the process, so a partial from an earlier run is
            # read once here; a retry within this run keeps hashing where it stopped.
            check.feed_file(blob.partial, cancel)
            log.info("%s: re-read %d bytes of the partial to resume its checksum", filename, have)
        have = _transfer(client, remote, blob.partial, have, check, reporter, cancel, filename)
        if have == remote.size and check.matches():
            os.replace(blob.partial, blob.path)
            reporter.update(have, force=True)
            return
        log.warning(
            "%s: %d of %d bytes, %s mismatch (attempt %d)",
            filename,
            have,
            remote.size,
            check.kind,
            attempt,
        )
        blob.partial.unlink(missing_ok=True)
        have = 0
        reporter.restart()
    raise DownloadCorrupt(
        f"{filename} from {repo_id} arrived damaged twice (its {check.kind} does not match "
        "the hub's): try again later or from another network."
    )


def _transfer(
    client: HubClient,
    remote: _Remote,
    partial: Path,
    have: int,
    check: _Checksum,
    reporter: _Reporter,
    cancel: threading.Event | None,
    filename: str,
) -> int:
    """Append the rest of the file to ``partial``, retrying dropped connections; bytes on disk."""
    import httpx2
    from huggingface_hub.utils import hf_raise_for_status

    failures = 0
    reporter.update(have, force=True)
    # Unbuffered: every byte counted (and hashed) is on disk, so a kill loses nothing counted.
    with (
        httpx2.Client(timeout=httpx2.Timeout(30.0, connect=10.0)) as http,
        open(partial, "ab", buffering=0) as out,
    ):
        while have < remote.size:
            _raise_if_cancelled(cancel, filename, have, remote.size)
            try:
                with _stream(http, client, remote.url, have) as response:
                    start = _range_start(response)
                    if response.status_code == 416 or (
                        response.status_code < 300 and start != have
                    ):
                        # The server ignored our Range (200) or answered another one: start over.
                        out.truncate(0)
                        check.reset()
                        have = 0
                        reporter.restart()
                        if response.status_code != 200:
                            continue
                    with hub_errors(client, reporter.repo_id, filename=filename):
                        hf_raise_for_status(response)
                    before = have
                    for chunk in response.iter_raw():
                        if _cancelled(cancel):
                            break
                        view = memoryview(chunk)[: remote.size - have]
                        while view:
                            written = _write(out, view, partial, filename, remote.size - have)
                            check.update(view[:written])
                            have += written
                            view = view[written:]
                        failures = 0
                        reporter.update(have)
                        if have >= remote.size:
                            break
                if have == before and have < remote.size and not _cancelled(cancel):
                    # A body that ended early without an error (no Content-Length).
                    raise httpx2.RemoteProtocolError("the response ended before the file did")
            except httpx2.TransportError as e:
                failures += 1
                if failures > MAX_RETRIES:
                    host = urlsplit(remote.url).netloc
                    raise HubUnreachable(
                        f"The connection to {host} kept dropping while downloading {filename} "
                        f"({gb(have)} of {gb(remote.size)}): check the connection and resume; "
                        "the part downloaded is kept."
                    ) from e
                wait = min(0.5 * 2 ** (failures - 1), 8.0)
                log.info("%s: %s at %d bytes; retrying in %.1fs", filename, e, have, wait)
                if cancel is not None:
                    cancel.wait(wait)
                else:
                    time.sleep(wait)
    _raise_if_cancelled(cancel, filename, have, remote.size)
    return have


@contextmanager
def _stream(
    http: httpx2.Client, client: HubClient, url: str, start: int
) -> Iterator[httpx2.Response]:
    """GET ``url`` from byte ``start``, following redirects; the token never leaves the hub.

    The real hub redirects large files to a CDN with a signed URL: the Authorization
    header is sent to the hub's own origin only.
    """
    from huggingface_hub.utils import build_hf_headers

    hub = _origin(client.endpoint)
    for _ in range(10):
        headers = build_hf_headers(
            token=client.auth if _origin(url) == hub else False, library_name="cotrag-studio"
        )
        headers["Accept-Encoding"] = "identity"  # the bytes on disk are the bytes counted
        if start:
            headers["Range"] = f"bytes={start}-"
        response = http.send(
            http.build_request("GET", url, headers=headers), stream=True, follow_redirects=False
        )
        if response.has_redirect_location:
            url = urljoin(url, response.headers["Location"])
            response.close()
            continue
        try:
            yield response
        finally:
            response.close()
        return
    raise HubError(f"Too many redirects while downloading from {client.endpoint}: try again later.")


def _range_start(response: httpx2.Response) -> int:
    if response.status_code != 206:
        return 0
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else -1


def _write(out: Any, view: memoryview, partial: Path, filename: str, remaining: int) -> int:
    try:
        written = out.write(view)
    except OSError as e:
        if e.errno in _NO_SPACE:
            raise DiskFull(
                f"The disk holding {partial.parent} is full: {filename} needs {gb(remaining)} "
                "more. Free some space and resume; the part downloaded is kept."
            ) from e
        raise
    return int(written or 0)


def _cancelled(cancel: threading.Event | None) -> bool:
    return cancel is not None and cancel.is_set()


def _raise_if_cancelled(
    cancel: threading.Event | None, filename: str, done: int, total: int
) -> None:
    if _cancelled(cancel):
        raise DownloadCancelled(
            f"Paused {filename} at {gb(done)} of {gb(total)}: resume to continue, "
            "or cancel to delete the part downloaded."
        )


class _Checksum:
    """The hub's own identity of the file: sha256 for LFS blobs, git's blob sha1 otherwise.

    The etag is one or the other; anything else (a non-hub server) is checked by size only.
    """

    def __init__(self, etag: str, size: int) -> None:
        self.etag = etag
        self.size = size
        self.kind = (
            "sha256" if _SHA256.fullmatch(etag) else "sha1" if _GIT_SHA1.fullmatch(etag) else "size"
        )
        self.reset()

    def reset(self) -> None:
        self._hash: Any = None
        if self.kind == "sha256":
            self._hash = hashlib.sha256()
        elif self.kind == "sha1":
            self._hash = hashlib.sha1(f"blob {self.size}\0".encode(), usedforsecurity=False)

    def update(self, data: memoryview | bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)

    def feed_file(self, path: Path, cancel: threading.Event | None) -> None:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelled(
                        f"Paused while checking {path.name}: resume to continue."
                    )
                self.update(block)

    def matches(self) -> bool:
        return self._hash is None or self._hash.hexdigest() == self.etag


class _Reporter:
    """Progress callbacks, at most every PROGRESS_INTERVAL (the first and last at once)."""

    def __init__(
        self,
        repo_id: str,
        filename: str,
        total: int,
        start: int,
        callback: Callable[[DownloadProgress], None] | None,
    ) -> None:
        self.repo_id, self.filename, self.total = repo_id, filename, total
        self.start = start
        self.callback = callback
        self._last = float("-inf")
        self._window: deque[tuple[float, int]] = deque()

    def restart(self) -> None:
        self.start = 0
        self._window.clear()

    def update(self, done: int, *, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        self._window.append((now, done))
        while len(self._window) > 2 and now - self._window[0][0] > _RATE_WINDOW:
            self._window.popleft()
        t0, d0 = self._window[0]
        rate = (done - d0) / (now - t0) if now > t0 and done >= d0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else None
        self.callback(
            DownloadProgress(
                self.repo_id, self.filename, done, self.total, rate, eta, resumed_from=self.start
            )
        )


@contextmanager
def _locked(
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
            _raise_if_cancelled(cancel, filename, 0, 0)
            if deadline is not None and time.monotonic() > deadline:
                raise DownloadBusy(
                    f"{filename} is being downloaded by another program right now: "
                    "try again when it is done."
                ) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def _link(blob: _Blob, pointer: Path, revision: str, commit: str) -> None:
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
            tmp = pointer.with_name(f".{pointer.name}.{uuid.uuid4().hex[:8]}.tmp")
            shutil.copyfile(blob.path, tmp)
            os.replace(tmp, pointer)
    if revision != commit:
        ref = blob.storage / "refs" / revision
        if not ref.is_file() or ref.read_text() != commit:
            ref.parent.mkdir(parents=True, exist_ok=True)
            tmp = ref.with_name(f".{ref.name}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_text(commit)
            os.replace(tmp, ref)


def _journal_path(journal_dir: Path, repo_id: str, filename: str, revision: str) -> Path:
    key = hashlib.sha256(f"{repo_id}\n{filename}\n{revision}".encode()).hexdigest()[:24]
    return Path(journal_dir) / f"{key}.json"


def _write_journal(
    path: Path, client: HubClient, repo_id: str, filename: str, revision: str, remote: _Remote
) -> None:
    old = _read_journal(path)
    started = (
        old["started"]
        if old and old.get("etag") == remote.etag
        else datetime.now(UTC).isoformat(timespec="seconds")
    )
    entry = {
        "repo_id": repo_id,
        "filename": filename,
        "revision": revision,
        "commit": remote.commit,
        "etag": remote.etag,
        "size": remote.size,
        "started": started,
        "endpoint": client.endpoint,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(entry, indent=1), encoding="utf-8")
    os.replace(tmp, path)


_JOURNAL_KEYS = ("repo_id", "filename", "revision", "commit", "etag", "size", "started")


def _read_journal(path: Path) -> dict[str, Any] | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable download journal %s: %s", path, e)
        return None
    if not isinstance(entry, dict) or any(k not in entry for k in _JOURNAL_KEYS):
        log.warning("ignoring download journal %s: fields missing", path)
        return None
    return entry


def _check_filename(filename: str) -> None:
    parts = PurePosixPath(filename).parts
    if not parts or filename.startswith("/") or ".." in parts or "\\" in filename:
        raise ValueError(f"{filename!r} is not a file path inside a repository.")


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default
