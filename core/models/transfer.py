"""The bytes of one file from the hub into a partial file: ranged GETs that resume, retry a
dropped connection, follow the CDN redirect without the token, hash as they write, and
report progress a few times a second."""

from __future__ import annotations

import errno
import hashlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from core.errors import DiskFull, DownloadCancelled, HubError, HubUnreachable
from core.models.hub import HubClient, gb, hub_errors

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


@dataclass(frozen=True)
class Remote:
    """What the hub says about one file at one revision (from a HEAD on its resolve URL)."""

    commit: str
    etag: str
    size: int
    url: str


def transfer(
    client: HubClient,
    remote: Remote,
    partial: Path,
    have: int,
    check: Checksum,
    reporter: Reporter,
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
            raise_if_cancelled(cancel, filename, have, remote.size)
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
                        if cancelled(cancel):
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
                if have == before and have < remote.size and not cancelled(cancel):
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
    raise_if_cancelled(cancel, filename, have, remote.size)
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


def cancelled(cancel: threading.Event | None) -> bool:
    return cancel is not None and cancel.is_set()


def raise_if_cancelled(
    cancel: threading.Event | None, filename: str, done: int, total: int
) -> None:
    if cancelled(cancel):
        raise DownloadCancelled(
            f"Paused {filename} at {gb(done)} of {gb(total)}: resume to continue, "
            "or cancel to delete the part downloaded."
        )


class Checksum:
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


class Reporter:
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


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default
