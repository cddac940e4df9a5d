"""Search a knowledge base: dense (cosine), BM25 (keywords) and hybrid (RRF of both).

The BM25 index is built from the committed chunks and kept in memory per knowledge
base together with the manifest revision it was built from; it is rebuilt only
when a commit or removal bumps that revision, so repeated searches are fast.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import ConfigError
from core.knowledge.records import hit_from
from core.knowledge.types import Hit

if TYPE_CHECKING:
    from core.knowledge.embedder import Embedder
    from core.knowledge.manifest import Manifest

METHODS = ("dense", "bm25", "hybrid")
RRF_K = 60
"""Reciprocal rank fusion constant (Cormack et al. 2009): damps the weight of top ranks."""


class Searchable(Protocol):
    """What search reads of a knowledge base (``core.knowledge.knowledge_base``)."""

    @property
    def state_dir(self) -> object:
        """Names the knowledge base's cached BM25 index."""
        ...

    def manifest(self) -> Manifest: ...

    def iter_chunks(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Every committed chunk as ``(id, text, metadata)``."""
        ...

    def serving(self) -> tuple[Any, Embedder]:
        """The serving version's collection and the embedder that made it."""
        ...


_WORD = re.compile(r"\w+", re.UNICODE)
# Short English function words plus question words: queries are often questions and
# "what"/"how" would otherwise match every passage that asks one.
# fmt: off
STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do",
        "does", "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in",
        "into", "is", "it", "its", "may", "me", "my", "no", "not", "of", "on", "or", "our", "she",
        "should", "so", "such", "than", "that", "the", "their", "them", "then", "there", "these",
        "they", "this", "those", "to", "was", "we", "were", "what", "when", "where", "which", "who",
        "whom", "why", "will", "with", "would", "you", "your",
    }
)
# fmt: on


def tokenize(text: str) -> list[str]:
    """Lowercase words minus stopwords; the same for passages and queries."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


@dataclass
class _Bm25Index:
    revision: int
    retriever: Any
    ids: list[str]
    texts: list[str]
    metas: list[dict[str, Any]]


_CACHE: dict[str, _Bm25Index] = {}
_CACHE_LOCK = threading.Lock()
# Building is slow for big knowledge bases: one build per knowledge base at a time.
_BUILD_LOCKS: dict[str, threading.Lock] = {}


def forget_index(state_dir: object) -> None:
    """Drop the cached BM25 index of a deleted knowledge base."""
    with _CACHE_LOCK:
        _CACHE.pop(str(state_dir), None)
        _BUILD_LOCKS.pop(str(state_dir), None)


def cached_bm25(state_dir: object) -> object | None:
    """The BM25 index kept for the knowledge base whose state dir is ``state_dir`` (None
    before its first keyword search): the same object until a commit makes it stale."""
    with _CACHE_LOCK:
        return _CACHE.get(str(state_dir))


def _bm25_index(kb: Searchable) -> _Bm25Index | None:
    key = str(kb.state_dir)
    with _CACHE_LOCK:
        build_lock = _BUILD_LOCKS.setdefault(key, threading.Lock())
    with build_lock:
        revision = kb.manifest().revision
        cached = _CACHE.get(key)
        if cached is not None and cached.revision == revision:
            return cached
        ids: list[str] = []
        texts: list[str] = []
        metas: list[dict[str, Any]] = []
        for cid, text, meta in kb.iter_chunks():
            ids.append(cid)
            texts.append(text)
            metas.append(meta)
        if not ids:
            _CACHE.pop(key, None)
            return None
        import bm25s

        retriever = bm25s.BM25()
        corpus = [
            tokenize(f"{m.get('heading', '')}\n{t}") for t, m in zip(texts, metas, strict=True)
        ]
        retriever.index(corpus, show_progress=False)
        index = _Bm25Index(revision, retriever, ids, texts, metas)
        with _CACHE_LOCK:
            _CACHE[key] = index
        return index


def bm25_search(kb: Searchable, query: str, k: int) -> list[Hit]:
    """Passages sharing words with the query, best BM25 score first (no-overlap ones left out)."""
    terms = tokenize(query)
    if not terms:
        return []
    index = _bm25_index(kb)
    if index is None:
        return []
    n = min(k, len(index.ids))
    docs, scores = index.retriever.retrieve([terms], k=n, show_progress=False)
    hits = []
    for pos, score in zip(docs[0], scores[0], strict=True):
        if score <= 0:
            continue
        i = int(pos)
        hits.append(hit_from(index.ids[i], index.texts[i], index.metas[i], float(score), "bm25"))
    return hits


def dense_search(kb: Searchable, query: str, k: int) -> list[Hit]:
    """Nearest passages by cosine similarity of embeddings."""
    if not query.strip():
        return []
    collection, embedder = kb.serving()
    total = int(collection.count())
    if total == 0:
        return []
    manifest = kb.manifest()
    vector = embedder.embed_query(query)
    # Uncommitted chunks (a document being indexed by another process) are filtered
    # out below, so ask for a few more than needed.
    n = min(total, k + max(10, k))
    got = collection.query(
        query_embeddings=[vector],
        n_results=n,
        include=["documents", "metadatas", "distances"],
    )
    hits = []
    for cid, text, meta, dist in zip(
        got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0], strict=True
    ):
        if not manifest.commits(meta):  # (source, doc_hash, pipeline) committed
            continue
        # Chroma's cosine space reports distance = 1 - cosine similarity.
        hits.append(hit_from(cid, text, meta, 1.0 - float(dist), "dense"))
        if len(hits) == k:
            break
    return hits


def reciprocal_rank_fusion(rankings: dict[str, list[Hit]], k: int) -> list[Hit]:
    """Fuse ranked lists: score = sum over lists of 1 / (RRF_K + rank), rank from 1."""
    fused: dict[str, float] = {}
    first: dict[str, Hit] = {}
    ranks: dict[str, dict[str, Any]] = {}
    for name, hits in rankings.items():
        for rank, hit in enumerate(hits, start=1):
            fused[hit.id] = fused.get(hit.id, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(hit.id, hit)
            ranks.setdefault(hit.id, {})[f"{name}_rank"] = rank
            ranks[hit.id][f"{name}_score"] = hit.score
    order = sorted(fused, key=lambda cid: fused[cid], reverse=True)[:k]
    return [
        replace(
            first[cid],
            score=fused[cid],
            method="hybrid",
            extra={**first[cid].extra, **ranks[cid]},
        )
        for cid in order
    ]


def hybrid_search(kb: Searchable, query: str, k: int) -> list[Hit]:
    depth = max(4 * k, 20)
    return reciprocal_rank_fusion(
        {"dense": dense_search(kb, query, depth), "bm25": bm25_search(kb, query, depth)}, k
    )


def search(kb: Searchable, query: str, k: int = 5, method: str = "hybrid") -> list[Hit]:
    if method not in METHODS:
        raise ConfigError(f"Search method {method!r} is unknown: use dense, bm25 or hybrid.")
    if k < 1:
        raise ConfigError(f"Search k is {k}: ask for at least 1 passage.")
    if method == "dense":
        return dense_search(kb, query, k)
    if method == "bm25":
        return bm25_search(kb, query, k)
    return hybrid_search(kb, query, k)
