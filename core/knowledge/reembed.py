"""Re-embed a knowledge base with another embedder into a new version, then switch to it.

The new version is filled in the background from the serving version's committed
chunks (same ids, texts and metadata; new vectors), without the write lock, so
searches and indexing go on. Then, under the write lock, whatever changed meanwhile
is brought over (new chunks embedded, chunks of removed documents deleted), the new
version is checked (every committed chunk present; a sample of chunks, embedded
afresh, finds itself first) and ``versions.json`` is rewritten to make it serve: one
atomic rename. The old version keeps its vectors until the user removes it, so
switching back restores its results exactly.

A kill at any point leaves the old version serving; the new one is ``building`` and
the next ``reembed`` with the same embedder continues from the chunks it already has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from core.errors import CotragError, KnowledgeBaseBusy
from core.knowledge.records import chunk_metadata_text
from core.knowledge.versions import Version, now

if TYPE_CHECKING:
    from core.knowledge.embedder import Embedder
    from core.knowledge.knowledge_base import KnowledgeBase

log = logging.getLogger(__name__)

BATCH = 64
"""Chunks embedded and written per step (progress and Cancel are checked between)."""
CHECK_SAMPLES = 8
LOCK_WAIT_S = 600.0
"""How long the switch waits for an indexing run to release the write lock."""


class ReembedFailed(CotragError, RuntimeError):
    pass


@dataclass(frozen=True)
class ReembedProgress:
    stage: str
    """``embedding``, ``waiting`` (for the write lock), ``catching up``, ``checking``."""
    done: int
    total: int


@dataclass(frozen=True)
class ReembedResult:
    version: Version
    switched: bool
    cancelled: bool
    embedded: int
    """Chunks embedded by this call (less than the total after a resume)."""
    seconds: float


OnProgress = Callable[[ReembedProgress], None]


def versions(kb: KnowledgeBase) -> list[Version]:
    return kb.versions_file.read().versions


def reembed(
    kb: KnowledgeBase,
    embedder_name: str,
    *,
    on_progress: OnProgress | None = None,
    cancel: threading.Event | None = None,
    switch: bool = True,
) -> ReembedResult:
    """Build (or resume) a version of ``kb`` embedded with ``embedder_name``; switch to it."""
    started = time.monotonic()
    cancel = cancel or threading.Event()
    report = on_progress or (lambda p: None)
    embedder = kb.store.embedder_for(embedder_name)  # a missing embedder fails here, early
    name = embedder.model_name
    if kb.embedder_name == name:
        raise ReembedFailed(
            f"Knowledge base {kb.name!r} is already served by {name}: nothing to re-embed."
        )
    version = _building_version(kb, name)
    embedder.load()
    embedded = _fill(kb, version, embedder, report, cancel, "embedding")
    if cancel.is_set():
        return ReembedResult(version, False, True, embedded, time.monotonic() - started)
    with _write_lock(kb, report, cancel):
        if cancel.is_set():
            return ReembedResult(version, False, True, embedded, time.monotonic() - started)
        embedded += _fill(kb, version, embedder, report, cancel, "catching up")
        if cancel.is_set():
            return ReembedResult(version, False, True, embedded, time.monotonic() - started)
        # Without ``switch`` the version is checked and marked ready; switch_to serves it.
        version = _activate(kb, version, embedder, report, make_active=switch)
    return ReembedResult(version, switch, False, embedded, time.monotonic() - started)


def switch_to(
    kb: KnowledgeBase,
    number: int,
    *,
    on_progress: OnProgress | None = None,
    cancel: threading.Event | None = None,
) -> Version:
    """Make version ``number`` serve again (undo of a switch), after bringing it up to date."""
    report = on_progress or (lambda p: None)
    cancel = cancel or threading.Event()
    found = kb.versions_file.read().get(number)
    if found is None:
        raise ReembedFailed(f"Knowledge base {kb.name!r} has no version {number}.")
    if found.state != "ready":
        what = "is still being built" if found.state == "building" else "was removed"
        raise ReembedFailed(
            f"Version {number} of {kb.name!r} {what}: it cannot serve. "
            + ("Finish it with `cotrag kb reembed`." if found.state == "building" else "")
        )
    if kb.versions_file.read().active == number:
        return found
    embedder = kb.embedder_of(found)
    with _write_lock(kb, report, cancel):
        if cancel.is_set():
            raise ReembedFailed("Switching was cancelled; the serving version did not change.")
        _fill(kb, found, embedder, report, cancel, "catching up")
        if cancel.is_set():
            raise ReembedFailed("Switching was cancelled; the serving version did not change.")
        return _activate(kb, found, embedder, report)


def remove_version(kb: KnowledgeBase, number: int) -> Version:
    """Delete a version's vectors (not the serving one). Its record stays, marked removed."""
    with kb.store.writing():
        current = kb.versions_file.read()
        found = current.get(number)
        if found is None:
            raise ReembedFailed(f"Knowledge base {kb.name!r} has no version {number}.")
        if current.active == number:
            raise ReembedFailed(
                f"Version {number} serves {kb.name!r}: switch to another version first."
            )
        if found.state == "removed":
            return found
        if found.collection == kb.id:
            # Version 1's collection also names the knowledge base: empty it, keep it.
            collection = kb.version_collection(found)
            ids = collection.get(include=[])["ids"]
            limit = kb.max_batch_size()
            for lo in range(0, len(ids), limit):
                collection.delete(ids=ids[lo : lo + limit])
        else:
            try:
                kb.store.client.delete_collection(found.collection)
            except Exception as exc:  # already gone: nothing left to free
                log.info("Collection %s was already gone: %s", found.collection, exc)
            kb.forget_collection(found.collection)
        kb.versions_file.update(number, state="removed", done=0)
        return replace(found, state="removed", done=0)


# -- steps ------------------------------------------------------------------------------


def _building_version(kb: KnowledgeBase, embedder_name: str) -> Version:
    with kb.store.writing():
        current = kb.versions_file.read()
        found = current.building(embedder_name)
        if found is None:
            number = current.next_number()
            found = Version(number, f"{kb.id}-v{number}", embedder_name, "building", created=now())
            # Recorded before the collection exists: a kill in between leaves a record
            # whose collection get_or_create makes on the resume.
            current.put(found)
            kb.versions_file.write(current)
        kb.version_collection(found, create=True)
        return found


def _target_ids(collection: Any, page: int = 5000) -> set[str]:
    ids: set[str] = set()
    offset = 0
    while True:
        got = collection.get(include=[], limit=page, offset=offset)
        if not got["ids"]:
            return ids
        ids.update(got["ids"])
        offset += len(got["ids"])


def _fill(
    kb: KnowledgeBase,
    version: Version,
    embedder: Embedder,
    report: OnProgress,
    cancel: threading.Event,
    stage: str,
) -> int:
    """Embed the serving version's committed chunks that ``version`` lacks; delete the ones it
    holds that are no longer committed. Returns how many were embedded."""
    target = kb.version_collection(version, create=True)
    have = _target_ids(target)
    total = sum(d.chunks for d in kb.manifest().documents.values())
    done = len(have)
    report(ReembedProgress(stage, min(done, total), total))
    committed: set[str] = set()
    embedded = 0
    batch: list[tuple[str, str, dict[str, Any]]] = []
    # versions.json is only written under the write lock (a read-modify-write here could
    # undo a switch made meanwhile): a build's progress is its collection's count.

    def flush() -> None:
        nonlocal embedded, done
        vectors = embedder.embed([chunk_metadata_text(text, meta) for _, text, meta in batch])
        limit = kb.max_batch_size()
        for lo in range(0, len(batch), limit):
            part = batch[lo : lo + limit]
            target.upsert(
                ids=[cid for cid, _, _ in part],
                documents=[text for _, text, _ in part],
                metadatas=[meta for _, _, meta in part],
                embeddings=vectors[lo : lo + limit],
            )
        embedded += len(batch)
        done += len(batch)
        batch.clear()

    for cid, text, meta in _serving_chunks(kb):
        committed.add(cid)
        if cid in have:
            continue
        batch.append((cid, text, meta))
        if len(batch) >= BATCH:
            flush()
            report(ReembedProgress(stage, min(done, total), total))
            if cancel.is_set():
                return embedded
    if batch:
        flush()
    stale = sorted(have - committed)
    limit = kb.max_batch_size()
    for lo in range(0, len(stale), limit):
        target.delete(ids=stale[lo : lo + limit])
    report(ReembedProgress(stage, len(committed), len(committed)))
    return embedded


def _serving_chunks(kb: KnowledgeBase) -> Iterator[tuple[str, str, dict[str, Any]]]:
    return kb.iter_chunks()


def _activate(
    kb: KnowledgeBase,
    version: Version,
    embedder: Embedder,
    report: OnProgress,
    *,
    make_active: bool = True,
) -> Version:
    """Check ``version`` against the committed chunks, then mark it ready and (``make_active``)
    make it serve. The caller holds the write lock."""
    expected = sum(d.chunks for d in kb.manifest().documents.values())
    step = max(1, expected // CHECK_SAMPLES)
    target = kb.version_collection(version)
    report(ReembedProgress("checking", 0, expected))
    have = _target_ids(target)
    # One pass, keeping only ids and a few samples: a big knowledge base's texts stay on disk.
    count = lacking = 0
    sample: list[tuple[str, str, dict[str, Any]]] = []
    for cid, text, meta in _serving_chunks(kb):
        if count % step == 0 and len(sample) < CHECK_SAMPLES:
            sample.append((cid, text, meta))
        count += 1
        lacking += cid not in have
    if lacking:
        raise ReembedFailed(
            f"Version {version.number} lacks {lacking} of {count} chunks after "
            "re-embedding; it was not switched to. Run the re-embed again to finish it."
        )
    if sample:
        vectors = embedder.embed([chunk_metadata_text(text, meta) for _, text, meta in sample])
        got = target.query(
            query_embeddings=vectors, n_results=min(3, len(have)), include=["documents"]
        )
        for (cid, text, _), ids, docs in zip(sample, got["ids"], got["documents"], strict=True):
            # A chunk whose text occurs twice may tie with its twin; either counts.
            if not ids or (ids[0] != cid and docs[0] != text):
                raise ReembedFailed(
                    f"Version {version.number}'s vectors do not match {version.embedder}: "
                    f"chunk {cid} does not find itself. It was not switched to; remove it "
                    "and re-embed again."
                )
    current = kb.versions_file.read()
    previous = current.current
    if make_active and previous.state == "ready" and previous.number != version.number:
        # It served every committed chunk until now: its count is known (version 1 has none
        # recorded until the first switch away from it).
        current.put(replace(previous, chunks=count))
    ready = replace(version, state="ready", chunks=count, done=count)
    current.put(ready)
    if make_active:
        current.active = version.number
        log.info("%s now served by version %d (%s).", kb.name, version.number, version.embedder)
    kb.versions_file.write(current)
    return ready


class _write_lock:
    """The data dir's write lock, waited for (an indexing run may hold it for minutes)."""

    def __init__(self, kb: KnowledgeBase, report: OnProgress, cancel: threading.Event) -> None:
        self.kb, self.report, self.cancel = kb, report, cancel
        self._held: Any = None

    def __enter__(self) -> None:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            held = self.kb.store.writing()
            try:
                held.__enter__()
            except KnowledgeBaseBusy:
                if self.cancel.is_set():
                    return
                if time.monotonic() > deadline:
                    raise ReembedFailed(
                        "Another process kept the knowledge base busy for "
                        f"{LOCK_WAIT_S / 60:.0f} minutes; the new version is complete but "
                        "not switched to. Run the re-embed again to switch."
                    ) from None
                self.report(ReembedProgress("waiting", 0, 0))
                time.sleep(1.0)
                continue
            self._held = held
            return

    def __exit__(self, *exc: object) -> None:
        if self._held is not None:
            self._held.__exit__(None, None, None)
