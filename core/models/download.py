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

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from core.errors import DiskFull, DownloadCorrupt, HubError
from core.models.hub import HubClient, free_disk, gb, hub_errors
from core.models.hub_cache import Blob, check_filename, file_size, link, locked
from core.models.journal import (
    journal_path,
    read_journal,
    write_journal,
)
from core.models.transfer import (
    Checksum,
    DownloadProgress,
    Remote,
    Reporter,
    transfer,
)

log = logging.getLogger(__name__)


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
    check_filename(filename)
    remote = _resolve(client, repo_id, filename, revision)
    blob = Blob.of(client.cache_dir, repo_id, remote.etag)
    pointer = blob.pointer(remote.commit, filename)
    journal = journal_path(journal_dir, repo_id, filename, revision) if journal_dir else None
    if not blob.complete(remote.size):
        with locked(blob.lock, cancel, filename):
            if not blob.complete(remote.size):
                if journal is not None:
                    write_journal(journal, client, repo_id, filename, revision, remote)
                try:
                    _fetch(client, remote, blob, repo_id, filename, progress, cancel)
                except DownloadCorrupt:
                    # Nothing is left to resume: the damaged partial is gone.
                    if journal is not None:
                        journal.unlink(missing_ok=True)
                    raise
    link(blob, pointer, revision, remote.commit)
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
    journal = journal_path(journal_dir, repo_id, filename, revision) if journal_dir else None
    entry = read_journal(journal) if journal is not None else None
    etag = entry["etag"] if entry else _resolve(client, repo_id, filename, revision).etag
    blob = Blob.of(client.cache_dir, repo_id, etag)
    with locked(blob.lock, None, filename, wait_s=2.0):
        existed = blob.partial.exists()
        blob.partial.unlink(missing_ok=True)
    if journal is not None:
        journal.unlink(missing_ok=True)
    return existed


def _resolve(client: HubClient, repo_id: str, filename: str, revision: str) -> Remote:
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
    return Remote(meta.commit_hash, meta.etag, int(meta.size), meta.location or url)


def _fetch(
    client: HubClient,
    remote: Remote,
    blob: Blob,
    repo_id: str,
    filename: str,
    progress: Callable[[DownloadProgress], None] | None,
    cancel: threading.Event | None,
) -> None:
    """Bring ``blob.partial`` to the full file, check it, and rename it to the blob."""
    blob.path.parent.mkdir(parents=True, exist_ok=True)
    have = file_size(blob.partial) or 0
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
    reporter = Reporter(repo_id, filename, remote.size, have, progress)
    for attempt in (1, 2):
        check = Checksum(remote.etag, remote.size)
        if have:
            # A hash state cannot outlive the process, so a partial from an earlier run is
            # read once here; a retry within this run keeps hashing where it stopped.
            check.feed_file(blob.partial, cancel)
            log.info("%s: re-read %d bytes of the partial to resume its checksum", filename, have)
        have = transfer(client, remote, blob.partial, have, check, reporter, cancel, filename)
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
