"""Knowledge bases as use cases: create, rename, delete and list them, index files into one,
remove a document, search, and re-embed / switch / remove a version of its vectors.

The CLI (`cotrag kb`, `cotrag index`, `cotrag search`) and the Knowledge base tab and
re-embed panel all start here, so each flow is written once. Every call opens the store
(Chroma reads its SQLite file): the desktop calls them off the GUI thread. A call takes
the workspace (``core.workspace.Workspace``) as :class:`KnowledgeWorkspace`, the part
of it this package may know: the workspace sits above ``core.knowledge``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.config import AppConfig
from core.errors import KnowledgeBaseNotFound
from core.knowledge import reembed as reembedding
from core.knowledge.embedder_catalog import (
    BUNDLED_LABEL,
    EmbedderEntry,
    bundled_name,
    list_embedders,
)
from core.knowledge.indexer import Indexer, IndexEvent
from core.knowledge.knowledge_base import KnowledgeBase
from core.knowledge.manifest import DocInfo
from core.knowledge.reembed import OnProgress, ReembedResult
from core.knowledge.store import KBInfo, KnowledgeStore
from core.knowledge.types import Hit
from core.knowledge.versions import Version, Versions
from core.paths import DataLayout


class KnowledgeWorkspace(Protocol):
    """What the knowledge-base use cases need of a workspace."""

    layout: DataLayout
    config: AppConfig

    @property
    def store(self) -> KnowledgeStore: ...

    def save_config(self) -> None: ...


# -- knowledge bases ----------------------------------------------------------------------


def list_kbs(ws: KnowledgeWorkspace) -> list[KBInfo]:
    return ws.store.list()


def create(ws: KnowledgeWorkspace, name: str) -> str:
    """Create knowledge base ``name``; returns its name as stored (blanks collapsed)."""
    return ws.store.create(name).name


def rename(ws: KnowledgeWorkspace, old: str, new: str) -> None:
    """Rename a knowledge base; the default one (``--kb`` left out) follows the rename."""
    ws.store.rename(old, new)
    if ws.config.kb == old:
        ws.config.kb = new
        ws.save_config()


def delete(ws: KnowledgeWorkspace, name: str) -> None:
    """Delete a knowledge base and its index (the original files are not touched)."""
    ws.store.delete(name)
    if ws.config.kb == name:
        ws.config.kb = ""
        ws.save_config()


def use(ws: KnowledgeWorkspace, name: str) -> None:
    """Make ``name`` the knowledge base used when none is named."""
    ws.store.get(name)  # must exist
    ws.config.kb = name
    ws.save_config()


def documents(ws: KnowledgeWorkspace, name: str) -> list[DocInfo]:
    return ws.store.get(name).documents()


def remove_documents(ws: KnowledgeWorkspace, name: str, sources: Sequence[str]) -> None:
    """Remove documents (named as ``documents`` lists them, or by any path to them)."""
    kb = ws.store.get(name)
    for source in sources:
        kb.remove_document(source)


# -- indexing and search ------------------------------------------------------------------


def open_kb(
    ws: KnowledgeWorkspace, name: str, *, create: bool = True
) -> tuple[KnowledgeBase, bool]:
    """Knowledge base ``name``, made first when it does not exist and ``create`` allows it
    (else KnowledgeBaseNotFound); the flag says whether it was made now."""
    try:
        return ws.store.get(name), False
    except KnowledgeBaseNotFound:
        if not create:
            raise
        return ws.store.create(name), True


def index(
    ws: KnowledgeWorkspace,
    kb: KnowledgeBase,
    paths: Sequence[Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    cancel: threading.Event | None = None,
) -> Iterator[IndexEvent]:
    """Bring ``kb`` in line with ``paths`` (files or folders) under the workspace's chunk
    settings: FileDone and Progress events, then one IndexSummary. ``cancel`` stops it
    after the current batch, leaving every document old or new, never half. Drive the
    whole iteration from one thread (it holds the data dir's write lock)."""
    indexer = Indexer(kb, None, ws.config.chunking)
    return indexer.run(paths, include=include, exclude=exclude, cancel=cancel)


def search(ws: KnowledgeWorkspace, name: str, query: str, *, k: int, method: str) -> list[Hit]:
    return ws.store.get(name).search(query, k=k, method=method)


# -- versions of the vectors --------------------------------------------------------------


def embedder_label(name: str) -> str:
    """An embedder as a person reads it (the bundled one by its model name)."""
    return BUNDLED_LABEL if name == bundled_name() else name


def embedders(ws: KnowledgeWorkspace) -> list[EmbedderEntry]:
    """The embedders a knowledge base can be re-embedded with, the bundled one first."""
    return list_embedders(ws.layout)


def serving(ws: KnowledgeWorkspace, name: str) -> Version:
    """The version of ``name``'s vectors that serves searches."""
    return ws.store.get(name).active_version


@dataclass(frozen=True)
class VersionRow:
    number: int
    embedder: str
    label: str
    """The embedder as a person reads it (the bundled one by its model name)."""
    state: str
    chunks: int
    """Chunks it holds: counted for the serving version, as last completed for the others."""
    done: int
    """Chunks a version being built holds so far."""
    serving: bool
    created: str = ""


@dataclass(frozen=True)
class KbVersions:
    kb: str
    rows: list[VersionRow]
    total: int
    """Chunks the knowledge base holds (what a re-embed has to embed)."""
    record: Versions
    """versions.json as it was read."""

    @property
    def serving(self) -> VersionRow | None:
        return next((r for r in self.rows if r.serving), None)

    def building(self, embedder: str) -> VersionRow | None:
        return next(
            (r for r in self.rows if r.state == "building" and r.embedder == embedder), None
        )


def versions(ws: KnowledgeWorkspace, name: str) -> KbVersions:
    """The versions of ``name``'s vectors, with their chunk counts."""
    kb = ws.store.get(name)
    current = kb.versions_file.read()
    rows = [
        VersionRow(
            v.number,
            v.embedder,
            embedder_label(v.embedder),
            v.state,
            kb.count() if v.number == current.active else v.chunks,
            # A build's progress is what its collection holds so far.
            kb.version_collection(v, create=True).count() if v.state == "building" else v.done,
            v.number == current.active,
            v.created,
        )
        for v in current.versions
    ]
    total = sum(d.chunks for d in kb.manifest().documents.values())
    return KbVersions(name, rows, total, current)


def reembed(
    ws: KnowledgeWorkspace,
    name: str,
    embedder: str,
    *,
    on_progress: OnProgress | None = None,
    cancel: threading.Event | None = None,
    switch: bool = True,
) -> ReembedResult:
    """Build (or resume) a version of ``name`` embedded with ``embedder``; switch to it once
    complete and checked (unless ``switch`` is False). ``cancel`` keeps it half-built."""
    return reembedding.reembed(
        ws.store.get(name), embedder, on_progress=on_progress, cancel=cancel, switch=switch
    )


def switch(
    ws: KnowledgeWorkspace,
    name: str,
    number: int,
    *,
    on_progress: OnProgress | None = None,
    cancel: threading.Event | None = None,
) -> Version:
    """Make version ``number`` serve again (the undo of a switch)."""
    return reembedding.switch_to(ws.store.get(name), number, on_progress=on_progress, cancel=cancel)


def remove_version(ws: KnowledgeWorkspace, name: str, number: int) -> Version:
    """Delete a version's vectors (not the serving one's); its record stays."""
    return reembedding.remove_version(ws.store.get(name), number)
