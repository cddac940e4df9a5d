"""Index files into a knowledge base, idempotently, reporting progress as events.

A file is keyed by its path and the sha256 of its bytes, and its chunks by the
pipeline that made them (``core.knowledge.chunking.pipeline_fingerprint``: the
cleaning/chunking code's version and the chunk settings). A file whose bytes and
pipeline both match what is committed is skipped; a changed one, or an unchanged one
whose pipeline differs (new chunk settings, a cleaner recipe, a knowledge base from
before pipelines), is re-chunked and replaced: its new chunks, under new ids, become
visible at the moment the old ones go. A file that vanished from a folder being
re-indexed is removed. Each document is committed all-or-nothing (see
``core.knowledge.knowledge_base``), so a run killed at any point leaves each document's old
chunks or its new ones visible, never a mix.

Documents are processed in groups of about ``_GROUP_CHUNKS`` chunks: the group is
announced in one manifest write, its texts are embedded together (sorted by length,
so batches pad little) in sub-batches of ``SUB_BATCH_CHUNKS``, and it is committed in
one manifest write. The first groups are smaller (1, 2, 4, ... chunks) so the first
files finish, and can be reported, as soon as possible.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from core.config import ChunkingConfig
from core.errors import CotragError, DocumentError
from core.fileio import file_sha256
from core.knowledge.chunking import chunk_document, pipeline_fingerprint
from core.knowledge.loaders import iter_files, load_document
from core.knowledge.records import embedding_text
from core.knowledge.types import DocChunk

if TYPE_CHECKING:
    from core.knowledge.embedder import Embedder
    from core.knowledge.knowledge_base import KnowledgeBase

log = logging.getLogger(__name__)

FileStatus = Literal["indexed", "unchanged", "failed", "removed"]
# Hashing is cheap next to embedding, but a huge folder still deserves a live count.
_HASH_PROGRESS_EVERY_S = 0.25
# Chunks per group: one manifest write announces a group and one commits it, and the
# group's texts are embedded together. A single larger document is a group by itself.
_GROUP_CHUNKS = 256
SUB_BATCH_CHUNKS = 64
"""Chunks per embedding call: Progress (and a chance to cancel) comes after each one."""
# Files loaded and chunked (on a second thread) ahead of the one being embedded.
_LOOKAHEAD_FILES = 4
RECHUNK_REASON = "re-chunked: the cleaning or chunk settings changed"


class EmbedderMismatch(CotragError, ValueError):
    """Indexing with another embedder than the one whose vectors serve the knowledge base."""


@dataclass(frozen=True)
class FileDone:
    path: str
    status: FileStatus
    chunks: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Progress:
    files_done: int
    files_total: int
    chunks_done: int
    chunks_per_s: float
    eta_s: float | None
    """Seconds left, estimated from the bytes still to embed; None before any measure."""
    current: str
    """The file being indexed ("" while the embedding model loads)."""
    stage: str = ""
    """``loading`` (the embedding model), ``preparing`` (loading it for the first time on
    this machine: it is exported for a fast runtime first), ``""`` while embedding."""


@dataclass(frozen=True)
class IndexSummary:
    indexed: int
    unchanged: int
    failed: int
    removed: int
    chunks: int
    """Chunks added by this run."""
    seconds: float
    cancelled: bool
    failures: list[tuple[str, str]] = field(default_factory=list)


IndexEvent = FileDone | Progress | IndexSummary


def source_key(path: Path) -> str:
    """How a file is named in the knowledge base: its absolute path."""
    return str(path.expanduser().resolve())


def _unreadable_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "the file was not found (moved or deleted?)"
    if isinstance(exc, PermissionError):
        return "permission denied; check the file's permissions"
    if isinstance(exc, IsADirectoryError):
        return "this is a folder, not a file"
    return f"the file could not be read ({exc.strerror or exc})"


@dataclass
class _Todo:
    path: Path
    source: str
    doc_hash: str
    size: int
    reason: str = ""
    """Why an already indexed file is indexed again ("" for a new or changed file)."""


@dataclass
class _Loaded:
    item: _Todo
    chunks: list[DocChunk]


@dataclass
class _Meter:
    """Progress and ETA of the embedding phase; consumer time between events is not counted."""

    files_total: int
    bytes_total: int
    bytes_done: float = 0.0
    work_s: float = 0.0
    chunks_done: int = 0

    def progress(self, n: _Counters, current: str, in_flight_bytes: float = 0.0) -> Progress:
        done = self.bytes_done + in_flight_bytes
        rate = self.chunks_done / self.work_s if self.work_s > 0 else 0.0
        eta = (
            max(0.0, self.work_s / done * (self.bytes_total - done))
            if done > 0 and self.work_s > 0
            else None
        )
        return Progress(n.files_done, self.files_total, self.chunks_done, rate, eta, current)


@dataclass
class _Counters:
    indexed: int = 0
    unchanged: int = 0
    failed: int = 0
    removed: int = 0
    chunks: int = 0
    files_done: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, source: str, reason: str) -> FileDone:
        self.failed += 1
        self.files_done += 1
        self.failures.append((source, reason))
        return FileDone(source, "failed", 0, reason)


class Indexer:
    """Brings a knowledge base in line with files on disk. One run at a time per data dir."""

    def __init__(
        self,
        kb: KnowledgeBase,
        embedder: Embedder | None = None,
        chunking: ChunkingConfig | None = None,
    ) -> None:
        """``embedder`` None: the one the knowledge base's serving version was built with."""
        self.kb = kb
        self._explicit = embedder is not None
        self.embedder = embedder or kb.embedder
        self.chunking = chunking or ChunkingConfig()
        self.pipeline = pipeline_fingerprint(self.chunking)
        self._check_embedder()

    def _check_embedder(self) -> None:
        if not self._explicit:
            self.embedder = self.kb.embedder  # a switch since construction is followed
        elif self.kb.embedder_name and self.embedder.model_name != self.kb.embedder_name:
            raise EmbedderMismatch(
                f"Knowledge base {self.kb.name!r} holds {self.kb.embedder_name} embeddings; "
                f"indexing with {self.embedder.model_name} would mix two vector spaces. "
                "Use a new knowledge base, or re-embed it first (`cotrag kb reembed`)."
            )

    def run(
        self,
        paths: Sequence[Path],
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        cancel: threading.Event | None = None,
    ) -> Iterator[IndexEvent]:
        """Index ``paths`` (files or folders). Ends with an IndexSummary.

        Takes the data dir's write lock when iteration starts, so a second writer
        gets KnowledgeBaseBusy from its first ``next()``. The lock belongs to the
        iterating thread: drive the whole run from one (worker) thread.

        Per-file problems become ``FileDone(status="failed")``; only KeyboardInterrupt
        and the like stop a run, and even then the half-added document is deleted on
        the way out (or, after a hard kill, when the knowledge base is next opened).
        """
        cancel = cancel or threading.Event()
        started = time.monotonic()
        n = _Counters()
        with self.kb.store.writing():
            # Under the lock no version switch can happen until this run ends.
            self._check_embedder()
            self.kb.reconcile()
            roots = [Path(p).expanduser().resolve() for p in paths]
            files = list(iter_files(roots, include, exclude))
            total = len(files)

            todo: list[_Todo] = []
            last_report = time.monotonic()
            manifest = self.kb.manifest()
            for path in files:
                if cancel.is_set():
                    break
                source = source_key(path)
                try:
                    size = path.stat().st_size
                    doc_hash = file_sha256(path)
                except OSError as exc:
                    yield n.fail(source, _unreadable_reason(exc))
                    continue
                committed = manifest.documents.get(source)
                same_bytes = committed is not None and committed.doc_hash == doc_hash
                if committed is not None and same_bytes and committed.pipeline == self.pipeline:
                    n.unchanged += 1
                    n.files_done += 1
                    yield FileDone(source, "unchanged", committed.chunks)
                else:
                    reason = RECHUNK_REASON if same_bytes else ""
                    todo.append(_Todo(path, source, doc_hash, size, reason))
                if time.monotonic() - last_report > _HASH_PROGRESS_EVERY_S:
                    last_report = time.monotonic()
                    yield Progress(n.files_done, total, 0, 0.0, None, source)

            if not cancel.is_set():
                seen = {source_key(p) for p in files}
                yield from self._remove_vanished(roots, seen, n)

            yield from self._index_all(todo, total, n, cancel)

        yield IndexSummary(
            indexed=n.indexed,
            unchanged=n.unchanged,
            failed=n.failed,
            removed=n.removed,
            chunks=n.chunks,
            seconds=time.monotonic() - started,
            cancelled=cancel.is_set(),
            failures=n.failures,
        )

    def _remove_vanished(
        self, roots: Sequence[Path], seen: set[str], n: _Counters
    ) -> Iterator[FileDone]:
        # Only files under a folder being re-indexed, and only those gone from disk:
        # a file merely excluded by a pattern this time keeps its place.
        folders = [r for r in roots if r.is_dir()]
        for source in list(self.kb.manifest().documents):
            if source in seen or Path(source).exists():
                continue
            if any(Path(source).is_relative_to(folder) for folder in folders):
                self.kb.remove_document(source)
                n.removed += 1
                yield FileDone(source, "removed", 0, "the file no longer exists")

    def _index_all(
        self, todo: list[_Todo], total: int, n: _Counters, cancel: threading.Event
    ) -> Iterator[IndexEvent]:
        meter = _Meter(total, sum(t.size for t in todo) or 1)
        if todo and not cancel.is_set():
            # Loading the model takes seconds: keep it out of the measured embedding rate.
            stage = "preparing" if self.embedder.will_prepare() else "loading"
            yield Progress(n.files_done, total, 0, 0.0, None, "", stage)
            self.embedder.load()
        pos = 0
        target = 1  # grows to _GROUP_CHUNKS: the first files are done (and shown) quickly
        carry: _Loaded | None = None
        # One thread loads and chunks the next files while this one embeds (the runtimes
        # release the GIL in their matrix products, so the two overlap).
        pool = ThreadPoolExecutor(1, thread_name_prefix="cotrag-load")
        ahead: dict[int, Future[list[DocChunk]]] = {}

        def prefetch(start: int) -> None:
            for i in range(start, min(len(todo), start + _LOOKAHEAD_FILES)):
                if i not in ahead:
                    ahead[i] = pool.submit(self._chunks, todo[i])

        try:
            while (pos < len(todo) or carry is not None) and not cancel.is_set():
                group: list[_Loaded] = []
                count = 0
                if carry is not None:
                    group.append(carry)
                    count += len(carry.chunks)
                    carry = None
                while pos < len(todo) and count < target:
                    if cancel.is_set():
                        return
                    item = todo[pos]
                    prefetch(pos)
                    future = ahead.pop(pos)
                    pos += 1
                    yield meter.progress(n, item.source)
                    t0 = time.monotonic()
                    failed: FileDone | None = None
                    try:
                        loaded = _Loaded(item, future.result())
                    except DocumentError as exc:
                        failed = n.fail(item.source, exc.reason)
                    except Exception as exc:
                        log.exception("Indexing %s failed", item.source)
                        failed = n.fail(
                            item.source, f"Unexpected error: {type(exc).__name__}: {exc}"
                        )
                    meter.work_s += time.monotonic() - t0
                    if failed is not None:
                        meter.bytes_done += item.size
                        yield failed
                        continue
                    if group and count + len(loaded.chunks) > _GROUP_CHUNKS:
                        carry = loaded  # a big document starts the next group (or is one)
                        break
                    group.append(loaded)
                    count += len(loaded.chunks)
                if cancel.is_set():
                    return
                if group:
                    prefetch(pos)  # the next files load while this group embeds
                    yield from self._index_group(group, meter, n, cancel)
                target = min(_GROUP_CHUNKS, target * 2)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _index_group(
        self, group: list[_Loaded], meter: _Meter, n: _Counters, cancel: threading.Event
    ) -> Iterator[IndexEvent]:
        """Embed, store and commit a group of loaded documents, all of them or none."""
        chunks = [c for g in group for c in g.chunks]
        hashes = [g.item.doc_hash for g in group for _ in g.chunks]
        texts = [embedding_text(c) for c in chunks]
        # One length order across the whole group: each batch holds texts of similar length.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        step = max(SUB_BATCH_CHUNKS, self.embedder.batch_size)
        group_bytes = sum(g.item.size for g in group)
        pairs = [(g.item.source, g.item.doc_hash) for g in group]
        t0 = time.monotonic()
        self.kb.begin_documents(pairs, pipeline=self.pipeline)
        committed = False
        failure = ""
        try:
            embedded = 0
            for lo in range(0, len(order), step):
                if cancel.is_set():
                    return
                part = order[lo : lo + step]
                vectors = self.embedder.embed([texts[i] for i in part])
                self.kb.add_records(
                    [hashes[i] for i in part],
                    [chunks[i] for i in part],
                    vectors,
                    pipeline=self.pipeline,
                )
                embedded += len(part)
                meter.chunks_done += len(part)
                meter.work_s += time.monotonic() - t0
                current = chunks[part[-1]].source
                yield meter.progress(n, current, group_bytes * embedded / len(order))
                # The consumer's time between events is not embedding time.
                t0 = time.monotonic()
            if cancel.is_set():
                return
            self.kb.commit_documents(
                [(g.item.source, g.item.doc_hash, len(g.chunks)) for g in group],
                pipeline=self.pipeline,
            )
            committed = True
        except Exception as exc:
            log.exception("Indexing %s failed", ", ".join(s for s, _ in pairs))
            failure = f"Unexpected error: {type(exc).__name__}: {exc}"
        finally:
            meter.work_s += time.monotonic() - t0
            if not committed:
                self._abort(pairs)
        meter.bytes_done += group_bytes
        for g in group:
            if committed:
                n.indexed += 1
                n.chunks += len(g.chunks)
                n.files_done += 1
            else:
                n.fail(g.item.source, failure)
        for g in group:
            if committed:
                yield FileDone(g.item.source, "indexed", len(g.chunks), g.item.reason)
            else:
                yield FileDone(g.item.source, "failed", 0, failure)

    def _chunks(self, item: _Todo) -> list[DocChunk]:
        doc = load_document(item.path)
        chunks = chunk_document(doc, self.chunking)
        if not chunks:
            raise DocumentError(
                item.source,
                f"no passage of at least {self.chunking.min_chars} characters to index",
            )
        # The knowledge base names a file by its absolute path, whatever the loader calls it.
        return [dataclasses.replace(c, source=item.source) for c in chunks]

    def _abort(self, pairs: list[tuple[str, str]]) -> None:
        try:
            self.kb.abort_documents(pairs, pipeline=self.pipeline)
        except Exception:
            # The manifest still lists them as pending: the next open deletes the chunks.
            log.exception("Could not remove the partial chunks of %d documents", len(pairs))
