"""Index files into a knowledge base, idempotently, reporting progress as events.

A file is keyed by its path and the sha256 of its bytes: an unchanged file is
skipped, a changed one replaced (its new chunks become visible at the moment the
old ones go), and a file that vanished from a folder being re-indexed is removed.
Each document is committed all-or-nothing (see ``core.knowledge.store``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from core.config import ChunkingConfig
from core.errors import DocumentError
from core.knowledge.store import EmbedderMismatch, KnowledgeBase, embedding_text
from core.knowledge.types import DocChunk

if TYPE_CHECKING:
    from core.knowledge.embedding import Embedder

log = logging.getLogger(__name__)

FileStatus = Literal["indexed", "unchanged", "failed", "removed"]
# Hashing is cheap next to embedding, but a huge folder still deserves a live count.
_HASH_PROGRESS_EVERY_S = 0.25


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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        self.kb = kb
        self.embedder = embedder or kb.embedder
        self.chunking = chunking or ChunkingConfig()
        if kb.embedder_name and self.embedder.model_name != kb.embedder_name:
            raise EmbedderMismatch(
                f"Knowledge base {kb.name!r} holds {kb.embedder_name} embeddings; indexing with "
                f"{self.embedder.model_name} would mix two vector spaces. Use a new knowledge base."
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
            self.kb.reconcile()
            from core.knowledge.loaders import iter_files

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
                if committed is not None and committed.doc_hash == doc_hash:
                    n.unchanged += 1
                    n.files_done += 1
                    yield FileDone(source, "unchanged", committed.chunks)
                else:
                    todo.append(_Todo(path, source, doc_hash, size))
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
        bytes_total = sum(t.size for t in todo) or 1
        bytes_done = 0.0
        work_s = 0.0
        chunks_done = 0

        def progress(current: str, fraction_of_current: float, size: int) -> Progress:
            done = bytes_done + fraction_of_current * size
            rate = chunks_done / work_s if work_s > 0 else 0.0
            eta = work_s / done * (bytes_total - done) if done > 0 and work_s > 0 else None
            return Progress(n.files_done, total, chunks_done, rate, eta, current)

        if todo and not cancel.is_set():
            # Loading the model takes seconds: keep it out of the measured embedding rate.
            yield Progress(n.files_done, total, 0, 0.0, None, "loading the embedding model")
            self.embedder.load()
        for item in todo:
            if cancel.is_set():
                return
            yield progress(item.source, 0.0, item.size)
            t0 = time.monotonic()
            added = 0
            committed = False
            self.kb.begin_document(item.source, item.doc_hash)
            try:
                chunks = self._chunks(item)
                batch = max(1, min(self.embedder.batch_size, self.kb.max_batch_size()))
                for lo in range(0, len(chunks), batch):
                    if cancel.is_set():
                        break
                    part = chunks[lo : lo + batch]
                    vectors = self.embedder.embed([embedding_text(c) for c in part])
                    self.kb.add_chunks(item.doc_hash, part, vectors)
                    added += len(part)
                    chunks_done += len(part)
                    work_s += time.monotonic() - t0
                    yield progress(item.source, added / len(chunks), item.size)
                    # The consumer's time between events is not embedding time.
                    t0 = time.monotonic()
                if cancel.is_set():
                    return
                self.kb.commit_document(item.source, item.doc_hash, len(chunks))
                committed = True
                n.indexed += 1
                n.chunks += len(chunks)
                n.files_done += 1
                yield FileDone(item.source, "indexed", len(chunks))
            except DocumentError as exc:
                yield n.fail(item.source, exc.reason)
            except Exception as exc:
                log.exception("Indexing %s failed", item.source)
                yield n.fail(item.source, f"Unexpected error: {type(exc).__name__}: {exc}")
            finally:
                work_s += time.monotonic() - t0
                bytes_done += item.size
                if not committed:
                    self._abort(item)

    def _chunks(self, item: _Todo) -> list[DocChunk]:
        from core.knowledge.chunking import chunk_document
        from core.knowledge.loaders import load_document

        doc = load_document(item.path)
        chunks = chunk_document(doc, self.chunking)
        if not chunks:
            raise DocumentError(
                item.source,
                f"no passage of at least {self.chunking.min_chars} characters to index",
            )
        # The knowledge base names a file by its absolute path, whatever the loader calls it.
        return [dataclasses.replace(c, source=item.source) for c in chunks]

    def _abort(self, item: _Todo) -> None:
        try:
            self.kb.abort_document(item.source, item.doc_hash)
        except Exception:
            # The manifest still lists it as pending: the next open deletes the chunks.
            log.exception("Could not remove the partial chunks of %s", item.source)
