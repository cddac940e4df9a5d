"""One knowledge base: its chunks in Chroma, its manifest and the versions of its vectors.

Visibility is all-or-nothing per document: chunks are added to Chroma first and the
document is *committed* afterwards by an atomic write of the knowledge base's
manifest (``<data>/kb/<id>/manifest.json``, see ``core.knowledge.manifest``). Readers
only ever see chunks whose ``(source, doc_hash, pipeline)`` the manifest commits, and
``reconcile`` deletes the rest, so a run killed in the middle of a document leaves
nothing half-visible.

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

A knowledge base knows the store that holds it (``core.knowledge.store``) only through
:class:`StoreAccess`, the few things it uses of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import CotragError, KnowledgeBaseBusy
from core.knowledge.manifest import DocInfo, Manifest, ManifestFile
from core.knowledge.records import DocKey, chunk_id, chunk_key, chunk_metadata, hit_from
from core.knowledge.search import search
from core.knowledge.types import DocChunk, Hit
from core.knowledge.versions import Version, VersionsFile, now

if TYPE_CHECKING:
    from core.knowledge.embedder import Embedder

log = logging.getLogger(__name__)

# Keys of a collection's Chroma metadata.
NAME_KEY = "cotrag_name"
"""The name a person sees (on a knowledge base's own collection only)."""
EMBEDDER_KEY = "cotrag_embedder"
CREATED_KEY = "cotrag_created_at"
VERSION_OF_KEY = "cotrag_version_of"
"""On a version's collection (2, 3, ...): the id of the knowledge base it belongs to."""
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


class StoreAccess(Protocol):
    """What a knowledge base uses of the store that holds it."""

    @property
    def client(self) -> Any:
        """The Chroma client."""
        ...

    def writing(self) -> AbstractContextManager[None]:
        """The data dir's write lock (re-entrant in its thread; KnowledgeBaseBusy if held)."""
        ...

    def state_dir(self, kb_id: str) -> Path: ...

    def embedder_for(self, name: str, needed_by: str = "") -> Embedder: ...


class KnowledgeBase:
    """One knowledge base: its chunks in Chroma and its manifest on disk."""

    def __init__(self, store: StoreAccess, collection: Any) -> None:
        self.store = store
        self.base_collection = collection
        """Version 1's collection, which also names the knowledge base."""
        self.id: str = collection.name
        self.manifest_file = ManifestFile(store.state_dir(self.id) / "manifest.json")
        meta = collection.metadata or {}
        self.versions_file = VersionsFile(
            store.state_dir(self.id) / "versions.json", self.id, str(meta.get(EMBEDDER_KEY, ""))
        )
        self._collections: dict[str, Any] = {collection.name: collection}
        self._collections_lock = threading.Lock()

    # -- reading --

    @property
    def name(self) -> str:
        meta = self.base_collection.metadata or {}
        return str(meta.get(NAME_KEY, self.id))

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
                        VERSION_OF_KEY: self.id,
                        EMBEDDER_KEY: version.embedder,
                        CREATED_KEY: now(),
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
            self.delete_chunks(*key)
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
            committed_at = now()
            committing = {(source, doc_hash, pipeline) for source, doc_hash, _ in items}
            old_hashes: list[str | None] = []
            replaced: list[DocKey] = []
            for source, doc_hash, chunks in items:
                old = manifest.documents.get(source)
                manifest.documents[source] = DocInfo(
                    source, doc_hash, chunks, committed_at, pipeline
                )
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
                self.delete_chunks(*key)
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
                self.delete_chunks(*key)
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
                        removed += self.delete_chunks(*key)
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

    def delete_chunks(self, source: str, doc_hash: str, pipeline: str) -> int:
        """Delete one document version's chunks from the serving collection (the same bytes
        under another pipeline are kept); the manifest is not touched. Returns how many.
        The write methods above call it once a version is no longer committed."""
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
