"""What a knowledge base has committed: ``<data>/kb/<id>/manifest.json``.

Readers only ever see chunks whose ``(source, doc_hash, pipeline)`` the manifest commits
(see ``core.knowledge.knowledge_base``); one atomic write of this file is the moment a
document's new chunks become visible and its old ones go.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.fileio import CachedJsonFile
from core.knowledge.records import DocKey, chunk_key

log = logging.getLogger(__name__)

MANIFEST_VERSION = 2
"""2: documents and pending entries carry a pipeline (version 1 manifests read as "")."""


@dataclass(frozen=True)
class DocInfo:
    source: str
    doc_hash: str
    chunks: int
    indexed_at: str
    """ISO 8601 time (UTC) the document was committed."""
    pipeline: str = ""
    """Fingerprint of the cleaning/chunking that made its chunks ("" before pipelines)."""


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

    def copy(self) -> Manifest:
        return Manifest(self.revision, dict(self.documents), list(self.pending))

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
    """One manifest, re-read only when the file changed, written atomically (a crash
    leaves the old file or the new one). An unreadable manifest reads as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = CachedJsonFile(
            path,
            parse=lambda raw: Manifest() if raw is None else Manifest.from_json(raw),
            dump=Manifest.to_json,
            copy=Manifest.copy,
            damaged=self._damaged,
        )

    def _damaged(self, exc: Exception) -> Manifest:
        # Losing the manifest only means re-embedding: better than refusing to open.
        log.error("Manifest %s is unreadable (%s); starting empty.", self.path, exc)
        return Manifest()

    def read(self) -> Manifest:
        return self._file.read()

    def write(self, manifest: Manifest) -> None:
        self._file.write(manifest)
