"""The download journal: one small JSON per download started and not finished, so after
a restart the app lists "paused: 412 of 900 MB" and offers to resume it."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.fileio import write_json_atomic
from core.models.hub import HubClient
from core.models.hub_cache import Blob, file_size
from core.models.transfer import Remote

log = logging.getLogger(__name__)


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


def pending_downloads(journal_dir: Path, cache_dir: Path) -> list[PendingDownload]:
    """Downloads started and not finished, oldest first, with the bytes already on disk.

    An entry whose file has been completed meanwhile (by another tool, say) is
    dropped from the journal here, so the list never offers to resume a done file.
    """
    pending = []
    for path in sorted(Path(journal_dir).glob("*.json")) if Path(journal_dir).is_dir() else []:
        entry = read_journal(path)
        if entry is None:
            continue
        blob = Blob.of(Path(cache_dir), entry["repo_id"], entry["etag"])
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
                done=file_size(blob.partial) or 0,
                journal=path,
            )
        )
    return sorted(pending, key=lambda p: p.started)


def journal_path(journal_dir: Path, repo_id: str, filename: str, revision: str) -> Path:
    key = hashlib.sha256(f"{repo_id}\n{filename}\n{revision}".encode()).hexdigest()[:24]
    return Path(journal_dir) / f"{key}.json"


def write_journal(
    path: Path, client: HubClient, repo_id: str, filename: str, revision: str, remote: Remote
) -> None:
    old = read_journal(path)
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
    write_json_atomic(path, entry)


_JOURNAL_KEYS = ("repo_id", "filename", "revision", "commit", "etag", "size", "started")


def read_journal(path: Path) -> dict[str, Any] | None:
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
