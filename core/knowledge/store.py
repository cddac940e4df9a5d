"""All knowledge bases in one data dir (or on one Chroma server), and its write lock.

Each knowledge base is one Chroma collection (``core.knowledge.knowledge_base``). Its
collection name is a stable id; the name a person sees lives in the collection
metadata, so a rename touches no chunk and a name can be any text.

One process writes into a data dir at a time (an inter-process file lock); a second
writer is told so at once instead of waiting. Reading needs no lock.

Opening Chroma reads (and may wait on) its SQLite file: callers must not open a
store or a knowledge base on a GUI thread.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import BaseFileLock, FileLock, Timeout

from core.config import StoreConfig
from core.errors import (
    CotragError,
    KnowledgeBaseBusy,
    KnowledgeBaseExists,
    KnowledgeBaseNotFound,
)
from core.knowledge import embedder_catalog
from core.knowledge.embedder import Embedder, default_embedder
from core.knowledge.knowledge_base import (
    CREATED_KEY,
    EMBEDDER_KEY,
    NAME_KEY,
    VERSION_OF_KEY,
    KnowledgeBase,
)
from core.knowledge.manifest import Manifest, ManifestFile
from core.knowledge.search import forget_index
from core.knowledge.versions import now
from core.paths import DataLayout

log = logging.getLogger(__name__)


class InvalidKnowledgeBaseName(CotragError, ValueError):
    pass


@dataclass(frozen=True)
class KBInfo:
    name: str
    id: str
    documents: int
    chunks: int


# -- write lock -------------------------------------------------------------------------

_LOCKS: dict[str, BaseFileLock] = {}
_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> BaseFileLock:
    # One lock object per path and process: re-entrant in the thread holding it, and a
    # second thread or process is refused instead of deadlocking.
    key = str(path)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = FileLock(key, timeout=0)
        return lock


@contextlib.contextmanager
def write_lock(layout: DataLayout) -> Iterator[None]:
    """Hold the data dir's inter-process write lock, or raise KnowledgeBaseBusy at once."""
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


def has_knowledge_bases(layout: DataLayout) -> bool:
    """Whether a knowledge base was made in this data dir (and not deleted), read from the
    manifest each one keeps beside Chroma: no database is opened."""
    return any((folder / "manifest.json").is_file() for folder in layout.kb_state.iterdir())


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
            self._embedder = default_embedder()
        return self._embedder

    def embedder_for(self, name: str, needed_by: str = "") -> Embedder:
        """The embedder named ``name`` (the bundled one or a tuned one), loaded once per store.

        Raises EmbedderMissing, naming ``needed_by`` (a knowledge base), when its files are gone.
        """
        default = self.embedder
        if not name or name == default.model_name:
            return default
        path = embedder_catalog.resolve(self.layout, name, needed_by=needed_by)
        with self._embedders_lock:
            found = self._embedders.get(name)
            if found is None or found.model_path != path:
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
            if NAME_KEY in meta:
                collections.append(col)
        return collections

    def _versions_of(self, kb_id: str) -> list[str]:
        """Names of the version collections (2, 3, ...) a knowledge base has in Chroma."""
        return [
            col.name
            for col in self.client.list_collections()
            if (col.metadata or {}).get(VERSION_OF_KEY) == kb_id
        ]

    def _find(self, name: str) -> Any | None:
        for col in self._ours():
            if col.metadata[NAME_KEY] == name:
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
            infos.append(KBInfo(col.metadata[NAME_KEY], col.name, len(manifest.documents), chunks))
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
                NAME_KEY: name,
                EMBEDDER_KEY: self.embedder.model_name,
                CREATED_KEY: now(),
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
            col.modify(metadata={**col.metadata, NAME_KEY: new})

    def delete(self, name: str) -> None:
        with self.writing():
            col = self._find(name)
            if col is None:
                raise KnowledgeBaseNotFound(name)
            for extra in self._versions_of(col.name):
                self.client.delete_collection(extra)
            self.client.delete_collection(col.name)
            shutil.rmtree(self.state_dir(col.name), ignore_errors=True)
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
