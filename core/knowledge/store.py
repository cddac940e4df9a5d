"""Knowledge bases kept in ChromaDB, with a manifest of what is committed.

Each knowledge base is one Chroma collection. Its collection name is a stable id;
the name a person sees lives in the collection metadata, so a rename touches no
chunk and a name can be any text.

Visibility is all-or-nothing per document: chunks are added to Chroma first and the
document is *committed* afterwards by an atomic write of the knowledge base's
manifest (``<data>/kb/<id>/manifest.json``). Readers only ever see chunks whose
``(source, doc_hash, pipeline)`` the manifest commits, and ``reconcile`` deletes the
rest, so a run killed in the middle of a document leaves nothing half-visible.

A document version is its bytes (``doc_hash``) *and* the pipeline that cut them into
chunks (``pipeline``: a fingerprint of the cleaning/chunking code and settings, see
``core.knowledge.chunking.pipeline_fingerprint``). The pipeline is part of each chunk's
id and metadata, so re-chunking an unchanged file under new settings writes new ids
beside the old ones instead of overwriting them: until the commit (one manifest
write) readers see only the old chunks, after it only the new ones, and whichever side
lost is deleted then or, after a kill, from ``pending`` on the next open. Because a
chunk id never gets a different text, the knowledge base's other versions of its
vectors (``core.knowledge.reembed``) stay right by copying missing ids and deleting
uncommitted ones. Chunks and manifests written before pipelines existed have no
pipeline (``""``, ids without it): they stay visible as they are, and the next index run
re-chunks their documents once.

Opening Chroma reads (and may wait on) its SQLite file: callers must not open a
store or a knowledge base on a GUI thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import StoreConfig
from core.errors import (
    CotragError,
    KnowledgeBaseBusy,
    KnowledgeBaseExists,
    KnowledgeBaseNotFound,
)
from core.knowledge.types import DocChunk, Hit
from core.knowledge.versions import Version, VersionsFile
from core.paths import DataLayout

if TYPE_CHECKING:
    from filelock import BaseFileLock

    from core.knowledge.embedding import Embedder

log = logging.getLogger(__name__)

MANIFEST_VERSION = 2
"""2: documents and pending entries carry a pipeline (version 1 manifests read as "")."""
_NAME_KEY = "cotrag_name"
_EMBEDDER_KEY = "cotrag_embedder"
_CREATED_KEY = "cotrag_created_at"
_VERSION_OF_KEY = "cotrag_version_of"
# A chunk's metadata key for its pipeline; chunks from before pipelines lack it.
_PIPELINE_KEY = "pipeline"
# Chroma pages through large collections; this keeps one page's memory modest.
_PAGE = 2000


class ChunkNotFound(CotragError, KeyError):
    def __init__(self, chunk_id: str) -> None:
        super().__init__(chunk_id)
        self.chunk_id = chunk_id

    def __str__(self) -> str:
        return f"No chunk {self.chunk_id!r} in this knowledge base; it may have been re-indexed."


class DocumentNotIndexed(CotragError, KeyError):
    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.source = source

    def __str__(self) -> str:
        return f"{self.source} is not in this knowledge base; list its documents to see what is."


class InvalidKnowledgeBaseName(CotragError, ValueError):
    pass


class EmbedderMismatch(CotragError, ValueError):
    pass


@dataclass(frozen=True)
class KBInfo:
    name: str
    id: str
    documents: int
    chunks: int


@dataclass(frozen=True)
class DocInfo:
    source: str
    doc_hash: str
    chunks: int
    indexed_at: str
    """ISO 8601 time (UTC) the document was committed."""
    pipeline: str = ""
    """Fingerprint of the cleaning/chunking that made its chunks ("" before pipelines)."""


DocKey = tuple[str, str, str]
"""``(source, doc_hash, pipeline)``: one version of a document's chunks."""


# -- manifest ---------------------------------------------------------------------------


@dataclass
class Manifest:
    """What a knowledge base has committed, plus writes that may have been cut short.

    ``pending`` lists ``(source, doc_hash, pipeline)`` versions whose chunks may exist
    in Chroma without being committed (a document being added, or one being removed
    or replaced); a crash leaves them there and the next open deletes their chunks.
    """

    revision: int = 0
    documents: dict[str, DocInfo] = field(default_factory=dict)
    pending: list[DocKey] = field(default_factory=list)

    def is_committed(self, source: str, doc_hash: str, pipeline: str) -> bool:
        doc = self.documents.get(source)
        return doc is not None and doc.doc_hash == doc_hash and doc.pipeline == pipeline

    def commits(self, meta: dict[str, Any]) -> bool:
        """Whether a stored chunk (its Chroma metadata) belongs to a committed version."""
        return self.is_committed(*chunk_key(meta))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "revision": self.revision,
            "documents": {
                src: {
                    "doc_hash": d.doc_hash,
                    "pipeline": d.pipeline,
                    "chunks": d.chunks,
                    "indexed_at": d.indexed_at,
                }
                for src, d in self.documents.items()
            },
            "pending": [list(p) for p in self.pending],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        docs = {
            src: DocInfo(
                src,
                d["doc_hash"],
                int(d["chunks"]),
                str(d.get("indexed_at", "")),
                str(d.get("pipeline", "")),
            )
            for src, d in data.get("documents", {}).items()
        }
        # Version 1 wrote (source, doc_hash) pairs: those chunks have no pipeline.
        pending = [
            (str(p[0]), str(p[1]), str(p[2]) if len(p) > 2 else "") for p in data.get("pending", [])
        ]
        return cls(int(data.get("revision", 0)), docs, pending)


class ManifestFile:
    """Reads and atomically writes one manifest, re-reading only when the file changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cached: Manifest | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        # The inode changes with every rename-into-place, even within one mtime tick.
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def read(self) -> Manifest:
        with self._lock:
            stamp = self._stat()
            if self._cached is not None and stamp == self._stamp:
                return _copy(self._cached)
            if stamp is None:
                manifest = Manifest()
            else:
                try:
                    manifest = Manifest.from_json(json.loads(self.path.read_text("utf-8")))
                except (ValueError, KeyError, TypeError) as exc:
                    # Losing the manifest only means re-embedding: better than refusing to open.
                    log.error("Manifest %s is unreadable (%s); starting empty.", self.path, exc)
                    manifest = Manifest()
            self._cached, self._stamp = manifest, stamp
            return _copy(manifest)

    def write(self, manifest: Manifest) -> None:
        """Atomic: temp file + fsync + rename, so a crash leaves the old or the new one."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A name of its own per writer: two processes never write into one temp file.
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump(manifest.to_json(), fh, indent=1)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)
            self._cached, self._stamp = _copy(manifest), self._stat()


def _copy(m: Manifest) -> Manifest:
    return Manifest(m.revision, dict(m.documents), list(m.pending))


# -- write lock -------------------------------------------------------------------------

_LOCKS: dict[str, BaseFileLock] = {}
_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> BaseFileLock:
    # One lock object per path and process: re-entrant in the thread holding it, and a
    # second thread or process is refused instead of deadlocking.
    from filelock import FileLock

    key = str(path)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = FileLock(key, timeout=0)
        return lock


@contextlib.contextmanager
def write_lock(layout: DataLayout) -> Iterator[None]:
    """Hold the data dir's inter-process write lock, or raise KnowledgeBaseBusy at once."""
    from filelock import Timeout

    lock = _file_lock(layout.write_lock)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise KnowledgeBaseBusy(
            f"Another process is indexing into {layout.root}; wait for it to finish, "
            "then try again."
        ) from None
    try:
        yield
    finally:
        lock.release()


# -- store ------------------------------------------------------------------------------


class KnowledgeStore:
    """All knowledge bases in one data dir (or on one Chroma server)."""

    def __init__(
        self,
        layout: DataLayout,
        config: StoreConfig | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.layout = layout
        self.config = config or StoreConfig()
        self._embedder = embedder
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._embedders: dict[str, Embedder] = {}
        self._embedders_lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from core.knowledge.embedding import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    def embedder_for(self, name: str, needed_by: str = "") -> Embedder:
        """The embedder named ``name`` (the bundled one or a tuned one), loaded once per store.

        Raises EmbedderMissing, naming ``needed_by`` (a knowledge base), when its files are gone.
        """
        default = self.embedder
        if not name or name == default.model_name:
            return default
        from core.knowledge import embedders

        path = embedders.resolve(self.layout, name, needed_by=needed_by)
        with self._embedders_lock:
            found = self._embedders.get(name)
            if found is None or found.model_path != path:
                from core.knowledge.embedding import Embedder

                found = Embedder(
                    path,
                    backend=default.requested_backend,
                    cache_dir=default.cache_dir,
                )
                self._embedders[name] = found
            return found

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._open_client()
            return self._client

    def _open_client(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        if self.config.chroma_host:
            return chromadb.HttpClient(
                host=self.config.chroma_host,
                port=self.config.chroma_port,
                settings=Settings(anonymized_telemetry=False),
            )
        return chromadb.PersistentClient(
            path=str(self.layout.chroma),
            settings=Settings(anonymized_telemetry=False, allow_reset=False),
        )

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        with write_lock(self.layout):
            yield

    def state_dir(self, kb_id: str) -> Path:
        return self.layout.kb_state / kb_id

    def _ours(self) -> list[Any]:
        """The knowledge bases' own collections (not the extra versions of their vectors)."""
        collections = []
        for col in self.client.list_collections():
            meta = col.metadata or {}
            if _NAME_KEY in meta:
                collections.append(col)
        return collections

    def _versions_of(self, kb_id: str) -> list[str]:
        """Names of the version collections (2, 3, ...) a knowledge base has in Chroma."""
        return [
            col.name
            for col in self.client.list_collections()
            if (col.metadata or {}).get(_VERSION_OF_KEY) == kb_id
        ]

    def _find(self, name: str) -> Any | None:
        for col in self._ours():
            if col.metadata[_NAME_KEY] == name:
                return col
        return None

    def list(self) -> list[KBInfo]:
        infos = []
        for col in self._ours():
            kb = KnowledgeBase(self, col)
            manifest = kb.manifest()
            try:
                chunks = kb.count()
            except Exception:  # a damaged versions file: the list still shows the rest
                log.exception("Cannot count the chunks of %s.", col.name)
                chunks = 0
            infos.append(KBInfo(col.metadata[_NAME_KEY], col.name, len(manifest.documents), chunks))
        return sorted(infos, key=lambda i: i.name.casefold())

    def create(self, name: str) -> KnowledgeBase:
        name = _check_name(name)
        with self.writing():
            if self._find(name) is not None:
                raise KnowledgeBaseExists(
                    f"A knowledge base named {name!r} already exists; "
                    "pick another name or delete it first."
                )
            kb_id = "kb-" + uuid.uuid4().hex[:16]
            metadata = {
                _NAME_KEY: name,
                _EMBEDDER_KEY: self.embedder.model_name,
                _CREATED_KEY: _now(),
            }
            col = self.client.create_collection(
                kb_id,
                metadata=metadata,
                configuration={"hnsw": {"space": "cosine"}},
                embedding_function=None,
            )
            ManifestFile(self.state_dir(kb_id) / "manifest.json").write(Manifest())
        return KnowledgeBase(self, _with_embedding_function_none(self.client, col))

    def get(self, name: str) -> KnowledgeBase:
        col = self._find(name)
        if col is None:
            raise KnowledgeBaseNotFound(name)
        kb = KnowledgeBase(self, _with_embedding_function_none(self.client, col))
        kb.reconcile_pending()
        return kb

    def rename(self, old: str, new: str) -> None:
        new = _check_name(new)
        with self.writing():
            col = self._find(old)
            if col is None:
                raise KnowledgeBaseNotFound(old)
            if new == old:
                return
            if self._find(new) is not None:
                raise KnowledgeBaseExists(
                    f"A knowledge base named {new!r} already exists; pick another name."
                )
            col.modify(metadata={**col.metadata, _NAME_KEY: new})

    def delete(self, name: str) -> None:
        with self.writing():
            col = self._find(name)
            if col is None:
                raise KnowledgeBaseNotFound(name)
            for extra in self._versions_of(col.name):
                self.client.delete_collection(extra)
            self.client.delete_collection(col.name)
            shutil.rmtree(self.state_dir(col.name), ignore_errors=True)
            from core.knowledge.search import forget_index

            forget_index(self.state_dir(col.name))


def _with_embedding_function_none(client: Any, col: Any) -> Any:
    # Collections from list_collections() carry Chroma's default embedding function,
    # which would try to download a model the first time anything calls it.
    return client.get_collection(col.name, embedding_function=None)


def _check_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidKnowledgeBaseName("A knowledge base needs a name that is not blank.")
    if len(cleaned) > 200:
        raise InvalidKnowledgeBaseName("Knowledge base names are limited to 200 characters.")
    return cleaned


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- one knowledge base -----------------------------------------------------------------


class KnowledgeBase:
    """One knowledge base: its chunks in Chroma and its manifest on disk."""

    def __init__(self, store: KnowledgeStore, collection: Any) -> None:
        self.store = store
        self.base_collection = collection
        """Version 1's collection, which also names the knowledge base."""
        self.id: str = collection.name
        self.manifest_file = ManifestFile(store.state_dir(self.id) / "manifest.json")
        meta = collection.metadata or {}
        self.versions_file = VersionsFile(
            store.state_dir(self.id) / "versions.json", self.id, str(meta.get(_EMBEDDER_KEY, ""))
        )
        self._collections: dict[str, Any] = {collection.name: collection}
        self._collections_lock = threading.Lock()

    # -- reading --

    @property
    def name(self) -> str:
        meta = self.base_collection.metadata or {}
        return str(meta.get(_NAME_KEY, self.id))

    @property
    def active_version(self) -> Version:
        return self.versions_file.read().current

    @property
    def collection(self) -> Any:
        """The collection of the version that serves searches (and takes new documents)."""
        return self.version_collection(self.active_version)

    def version_collection(self, version: Version, create: bool = False) -> Any:
        """The Chroma collection holding ``version``'s vectors (made when ``create``)."""
        with self._collections_lock:
            found = self._collections.get(version.collection)
            if found is not None:
                return found
            client = self.store.client
            if create:
                found = client.get_or_create_collection(
                    version.collection,
                    metadata={
                        _VERSION_OF_KEY: self.id,
                        _EMBEDDER_KEY: version.embedder,
                        _CREATED_KEY: _now(),
                    },
                    configuration={"hnsw": {"space": "cosine"}},
                    embedding_function=None,
                )
            else:
                found = client.get_collection(version.collection, embedding_function=None)
            self._collections[version.collection] = found
            return found

    def forget_collection(self, name: str) -> None:
        with self._collections_lock:
            if name != self.id:
                self._collections.pop(name, None)

    def serving(self) -> tuple[Any, Embedder]:
        """The active version's collection and embedder, read together (a switch between
        the two reads would pair one embedder's query with another's vectors)."""
        version = self.active_version
        return self.version_collection(version), self.embedder_of(version)

    @property
    def embedder_name(self) -> str:
        return self.active_version.embedder

    @property
    def state_dir(self) -> Path:
        return self.store.state_dir(self.id)

    @property
    def embedder(self) -> Embedder:
        """The embedder of the version that serves (raises EmbedderMissing if it is gone)."""
        return self.embedder_of(self.active_version)

    def embedder_of(self, version: Version) -> Embedder:
        return self.store.embedder_for(version.embedder, needed_by=self.name)

    def manifest(self) -> Manifest:
        return self.manifest_file.read()

    def documents(self) -> list[DocInfo]:
        return sorted(self.manifest().documents.values(), key=lambda d: d.source)

    def count(self) -> int:
        """Chunks stored (committed ones, once reconciled)."""
        return int(self.collection.count())

    def get_chunk(self, chunk_id: str) -> Hit:
        got = self.collection.get(ids=[chunk_id], include=["documents", "metadatas"])
        if not got["ids"]:
            raise ChunkNotFound(chunk_id)
        meta = got["metadatas"][0]
        if not self.manifest().commits(meta):
            raise ChunkNotFound(chunk_id)
        return hit_from(chunk_id, got["documents"][0], meta, score=1.0, method="dense")

    def search(self, query: str, k: int = 5, method: str = "hybrid") -> list[Hit]:
        """Best ``k`` chunks for ``query``: dense (cosine), bm25 or hybrid (RRF of both)."""
        from core.knowledge.search import search

        return search(self, query, k=k, method=method)

    def iter_chunks(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Every committed chunk as ``(id, text, metadata)``, paged."""
        manifest = self.manifest()
        collection = self.collection  # one version throughout, even if a switch comes meanwhile
        offset = 0
        while True:
            got = collection.get(include=["documents", "metadatas"], limit=_PAGE, offset=offset)
            ids = got["ids"]
            if not ids:
                return
            for cid, text, meta in zip(ids, got["documents"], got["metadatas"], strict=True):
                if manifest.commits(meta):
                    yield cid, text, meta
            offset += len(ids)

    # -- writing (callers hold store.writing(); each method also takes it, re-entrantly) --

    def remove_document(self, source: str) -> None:
        """Remove a document (named as ``documents()`` lists it, or by any path to it)."""
        with self.store.writing():
            manifest = self.manifest()
            if source not in manifest.documents:
                source = str(Path(source).expanduser().resolve())
            doc = manifest.documents.pop(source, None)
            if doc is None:
                raise DocumentNotIndexed(source)
            key = (source, doc.doc_hash, doc.pipeline)
            manifest.pending.append(key)
            manifest.revision += 1
            self.manifest_file.write(manifest)
            self._delete_chunks(*key)
            self._clear_pending_many([key])

    # The write methods below take ``pipeline`` (the fingerprint of the chunking that
    # made the chunks, one per call); "" writes records the way they were written before
    # pipelines existed (ids without it, no metadata key).

    def begin_document(self, source: str, doc_hash: str, *, pipeline: str = "") -> None:
        """Announce chunks about to be added, so a crash before commit gets cleaned up."""
        self.begin_documents([(source, doc_hash)], pipeline=pipeline)

    def begin_documents(self, pairs: Sequence[tuple[str, str]], *, pipeline: str = "") -> None:
        """``begin_document`` for many ``(source, doc_hash)`` pairs, in one manifest write."""
        with self.store.writing():
            manifest = self.manifest()
            known = set(manifest.pending)
            added = False
            for source, doc_hash in pairs:
                key = (source, doc_hash, pipeline)
                if key not in known:
                    manifest.pending.append(key)
                    known.add(key)
                    added = True
            if added:
                self.manifest_file.write(manifest)

    def add_chunks(
        self,
        doc_hash: str,
        chunks: Sequence[DocChunk],
        embeddings: Sequence[Sequence[float]],
        *,
        pipeline: str = "",
    ) -> None:
        """Store chunks (not yet visible: the document is committed separately)."""
        self.add_records([doc_hash] * len(chunks), chunks, embeddings, pipeline=pipeline)

    def add_records(
        self,
        doc_hashes: Sequence[str],
        chunks: Sequence[DocChunk],
        embeddings: Sequence[Sequence[float]],
        *,
        pipeline: str = "",
    ) -> None:
        """``add_chunks`` for chunks of several documents: ``doc_hashes[i]`` is ``chunks[i]``'s."""
        if not chunks:
            return
        if not len(doc_hashes) == len(chunks) == len(embeddings):
            raise ValueError("add_records needs one doc_hash and one embedding per chunk")
        with self.store.writing():
            limit = self.max_batch_size()
            for lo in range(0, len(chunks), limit):
                part = chunks[lo : lo + limit]
                hashes = doc_hashes[lo : lo + limit]
                # upsert: a retry after a crash may meet its own earlier ids.
                self.collection.upsert(
                    ids=[
                        chunk_id(c.source, h, c.index, pipeline)
                        for c, h in zip(part, hashes, strict=True)
                    ],
                    documents=[c.text for c in part],
                    embeddings=[list(e) for e in embeddings[lo : lo + limit]],
                    metadatas=[
                        chunk_metadata(c, h, pipeline) for c, h in zip(part, hashes, strict=True)
                    ],
                )

    def commit_document(
        self, source: str, doc_hash: str, chunks: int, *, pipeline: str = ""
    ) -> str | None:
        """Make a document visible, replacing its previous version. Returns the old hash."""
        return self.commit_documents([(source, doc_hash, chunks)], pipeline=pipeline)[0]

    def commit_documents(
        self, items: Sequence[tuple[str, str, int]], *, pipeline: str = ""
    ) -> list[str | None]:
        """Make ``(source, doc_hash, chunks)`` documents visible at once, in one manifest write.

        Each replaces its previous version (other bytes, or the same bytes chunked by
        another pipeline), whose chunks are then deleted. Returns the old hash of each
        (None if new or the same bytes).
        """
        with self.store.writing():
            manifest = self.manifest()
            now = _now()
            committing = {(source, doc_hash, pipeline) for source, doc_hash, _ in items}
            old_hashes: list[str | None] = []
            replaced: list[DocKey] = []
            for source, doc_hash, chunks in items:
                old = manifest.documents.get(source)
                manifest.documents[source] = DocInfo(source, doc_hash, chunks, now, pipeline)
                old_hash = old.doc_hash if old is not None else None
                old_hashes.append(old_hash if old_hash != doc_hash else None)
                if old is not None and (old.doc_hash, old.pipeline) != (doc_hash, pipeline):
                    replaced.append((source, old.doc_hash, old.pipeline))
            manifest.pending = [p for p in manifest.pending if p not in committing]
            # A source committed twice in one call leaves only its last version visible.
            replaced = [p for p in replaced if not manifest.is_committed(*p)]
            # Written with the commit: a kill before the deletes below leaves the replaced
            # chunks flagged (and invisible), and the next open deletes them.
            manifest.pending.extend(p for p in replaced if p not in manifest.pending)
            manifest.revision += 1
            self.manifest_file.write(manifest)
            for key in replaced:
                self._delete_chunks(*key)
            self._clear_pending_many(replaced)
            return old_hashes

    def abort_document(self, source: str, doc_hash: str, *, pipeline: str = "") -> None:
        """Delete the chunks of a document that was not committed."""
        self.abort_documents([(source, doc_hash)], pipeline=pipeline)

    def abort_documents(self, pairs: Sequence[tuple[str, str]], *, pipeline: str = "") -> None:
        """Delete the chunks of documents that were not committed (one manifest write)."""
        with self.store.writing():
            manifest = self.manifest()
            keys = [(s, h, pipeline) for s, h in pairs]
            dropped = [key for key in keys if not manifest.is_committed(*key)]
            for key in dropped:
                self._delete_chunks(*key)
            self._clear_pending_many(dropped)

    def reconcile_pending(self) -> int:
        """Delete chunks left by writes cut short (cheap: only what the manifest flags).

        Skipped when another process holds the write lock: its pending writes are
        in progress, not abandoned, and readers ignore uncommitted chunks anyway.
        """
        manifest = self.manifest()
        if not manifest.pending:
            return 0
        try:
            with self.store.writing():
                manifest = self.manifest()
                removed = 0
                for key in list(manifest.pending):
                    if not manifest.is_committed(*key):
                        removed += self._delete_chunks(*key)
                    self._clear_pending_many([key])
                return removed
        except KnowledgeBaseBusy:
            return 0

    def reconcile(self) -> int:
        """Delete every chunk the manifest does not commit (a full scan). Returns how many."""
        with self.store.writing():
            removed = self.reconcile_pending()
            manifest = self.manifest()
            orphans: list[str] = []
            offset = 0
            while True:
                got = self.collection.get(include=["metadatas"], limit=_PAGE, offset=offset)
                ids = got["ids"]
                if not ids:
                    break
                for cid, meta in zip(ids, got["metadatas"], strict=True):
                    if not manifest.commits(meta):
                        orphans.append(cid)
                offset += len(ids)
            limit = self.max_batch_size()
            for lo in range(0, len(orphans), limit):
                self.collection.delete(ids=orphans[lo : lo + limit])
            if orphans:
                log.info("Removed %d uncommitted chunks from %s.", len(orphans), self.name)
            return removed + len(orphans)

    def max_batch_size(self) -> int:
        getter = getattr(self.store.client, "get_max_batch_size", None)
        return int(getter()) if getter else 5000

    def _delete_chunks(self, source: str, doc_hash: str, pipeline: str) -> int:
        """Delete one version's chunks (the same bytes under another pipeline are kept)."""
        where = {"$and": [{"source": source}, {"doc_hash": doc_hash}]}
        got = self.collection.get(where=where, include=["metadatas"])
        # Filtered here, not in ``where``: chunks from before pipelines lack the key.
        ids = [
            cid
            for cid, meta in zip(got["ids"], got["metadatas"], strict=True)
            if chunk_key(meta)[2] == pipeline
        ]
        limit = self.max_batch_size()
        for lo in range(0, len(ids), limit):
            self.collection.delete(ids=ids[lo : lo + limit])
        return len(ids)

    def _clear_pending_many(self, keys: Sequence[DocKey]) -> None:
        drop = set(keys)
        if not drop:
            return
        manifest = self.manifest()
        if any(p in drop for p in manifest.pending):
            manifest.pending = [p for p in manifest.pending if p not in drop]
            self.manifest_file.write(manifest)


# -- chunk records ----------------------------------------------------------------------


def chunk_id(source: str, doc_hash: str, index: int, pipeline: str = "") -> str:
    """Stable per (file, content, pipeline, position): two files with equal bytes do not
    collide, and the same file chunked another way gets other ids (never another text
    under an id some version of the vectors already holds)."""
    import hashlib

    src = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]
    if not pipeline:  # written before pipelines existed
        return f"{src}-{doc_hash[:16]}-{index}"
    return f"{src}-{doc_hash[:16]}-{pipeline}-{index}"


def chunk_metadata(chunk: DocChunk, doc_hash: str, pipeline: str = "") -> dict[str, str | int]:
    meta: dict[str, str | int] = {
        "source": chunk.source,
        "doc_hash": doc_hash,
        "chunk_index": chunk.index,
        "start": chunk.start,
        "end": chunk.end,
        "heading": chunk.heading,
    }
    if pipeline:
        meta[_PIPELINE_KEY] = pipeline
    # Chroma metadata cannot hold None: a missing key means "no page".
    if chunk.page is not None:
        meta["page"] = chunk.page
    return meta


def chunk_key(meta: dict[str, Any]) -> DocKey:
    """The document version a stored chunk belongs to, from its Chroma metadata."""
    return (
        str(meta.get("source", "")),
        str(meta.get("doc_hash", "")),
        str(meta.get(_PIPELINE_KEY, "")),
    )


def embedding_text(chunk: DocChunk) -> str:
    """What gets embedded: the heading path helps a passage match questions about its topic."""
    # Changing this changes vectors under unchanged ids: bump chunking.PIPELINE_VERSION.
    return f"{chunk.heading}\n\n{chunk.text}" if chunk.heading else chunk.text


def chunk_metadata_text(text: str, meta: dict[str, Any]) -> str:
    """``embedding_text`` of a stored chunk (its text and Chroma metadata)."""
    heading = str(meta.get("heading", "") or "")
    return f"{heading}\n\n{text}" if heading else text


def hit_from(chunk_id: str, text: str, meta: dict[str, Any], score: float, method: str) -> Hit:
    extra: dict[str, Any] = {"doc_hash": meta.get("doc_hash", "")}
    if "page" in meta:
        extra["page"] = int(meta["page"])
    return Hit(
        id=chunk_id,
        text=text,
        score=float(score),
        source=str(meta.get("source", "")),
        heading=str(meta.get("heading", "")),
        chunk_index=int(meta.get("chunk_index", 0)),
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", 0)),
        method=method,
        extra=extra,
    )
