"""Re-chunking: new chunk settings (or a new cleaning recipe) reach files whose bytes did not
change, leaving exactly the new chunks, and a kill at any point shows old or new, never both."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import core.knowledge.chunking as chunking_module
import core.knowledge.indexer as indexer_module
from core.config import ChunkingConfig
from core.fileio import file_sha256
from core.knowledge import embedder_catalog, reembed
from core.knowledge.chunking import chunk_document, pipeline_fingerprint
from core.knowledge.embedder import Embedder
from core.knowledge.indexer import (
    RECHUNK_REASON,
    FileDone,
    Indexer,
    IndexEvent,
    IndexSummary,
    Progress,
    source_key,
)
from core.knowledge.knowledge_base import KnowledgeBase
from core.knowledge.loaders import load_document
from core.knowledge.records import chunk_id, chunk_metadata_text
from core.knowledge.store import KnowledgeStore
from core.paths import DataLayout

SMALL = ChunkingConfig(size=200, overlap=0, min_chars=10)
LARGE = ChunkingConfig(size=400, overlap=0, min_chars=10)


@pytest.fixture
def manual(tmp_path: Path) -> Path:
    """A Markdown manual of 24 short paragraphs: 200-character chunks hold one, 400 two."""
    path = tmp_path / "docs" / "manual.md"
    path.parent.mkdir()
    paragraphs = [
        f"Step {i} of the pump service: loosen bolt {i}, replace seal {i} and check gasket {i}."
        for i in range(24)
    ]
    path.write_text("# Pump manual\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


def run(kb: KnowledgeBase, embedder: Embedder, path: Path, config: ChunkingConfig) -> list[Any]:
    return list(Indexer(kb, embedder, config).run([path]))


def done(events: list[IndexEvent]) -> FileDone:
    [event] = [e for e in events if isinstance(e, FileDone)]
    return event


def summary(events: list[IndexEvent]) -> IndexSummary:
    assert isinstance(events[-1], IndexSummary)
    return events[-1]


def expected(path: Path, config: ChunkingConfig) -> list[str]:
    return [c.text for c in chunk_document(load_document(path), config)]


def expected_ids(path: Path, config: ChunkingConfig) -> set[str]:
    source, doc_hash = source_key(path), file_sha256(path)
    count = len(expected(path, config))
    return {chunk_id(source, doc_hash, i, pipeline_fingerprint(config)) for i in range(count)}


def visible(kb: KnowledgeBase) -> list[str]:
    """Texts a reader sees, in document order."""
    chunks = sorted(kb.iter_chunks(), key=lambda c: int(c[2]["chunk_index"]))
    return [text for _, text, _ in chunks]


def stored_ids(kb: KnowledgeBase) -> set[str]:
    """Every id in Chroma, visible or not."""
    return set(kb.collection.get(include=[])["ids"])


def searched(kb: KnowledgeBase) -> set[str]:
    """Ids any search method returns for questions about the manual."""
    found: set[str] = set()
    for method in ("dense", "bm25", "hybrid"):
        for query in ("replace seal 3", "check gasket 17", "pump service bolt"):
            found.update(h.id for h in kb.search(query, k=10, method=method))
    return found


def test_new_chunk_settings_rechunk_an_unchanged_file_leaving_only_the_new_chunks(
    kb: KnowledgeBase, embedder: Embedder, manual: Path
) -> None:
    first = run(kb, embedder, manual, SMALL)
    assert done(first).status == "indexed" and done(first).reason == ""
    assert visible(kb) == expected(manual, SMALL)
    old_ids = stored_ids(kb)

    events = run(kb, embedder, manual, LARGE)
    assert (done(events).status, done(events).reason) == ("indexed", RECHUNK_REASON)
    new_texts = expected(manual, LARGE)
    assert len(new_texts) < len(expected(manual, SMALL))
    s = summary(events)
    assert (s.indexed, s.unchanged, s.chunks) == (1, 0, len(new_texts))
    assert visible(kb) == new_texts
    assert kb.reconcile() == 0  # nothing stale was left for a full scan to find
    assert stored_ids(kb) == expected_ids(manual, LARGE)
    assert not stored_ids(kb) & old_ids  # other text, other ids (versions rely on it)
    assert kb.count() == len(new_texts)
    [doc] = kb.documents()
    assert (doc.pipeline, doc.chunks) == (pipeline_fingerprint(LARGE), len(new_texts))
    assert searched(kb) <= stored_ids(kb)
    hit = kb.search("replace seal 3", k=1, method="bm25")[0]
    assert kb.get_chunk(hit.id).text in new_texts


def test_the_same_settings_leave_the_file_unchanged(
    kb: KnowledgeBase, embedder: Embedder, manual: Path
) -> None:
    run(kb, embedder, manual, LARGE)
    ids = stored_ids(kb)
    again = run(kb, embedder, manual, ChunkingConfig(size=400, overlap=0, min_chars=10))
    assert done(again).status == "unchanged"
    assert (summary(again).indexed, summary(again).unchanged) == (0, 1)
    assert stored_ids(kb) == ids


def test_the_fingerprint_follows_every_setting_and_the_pipeline_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = pipeline_fingerprint(LARGE)
    assert base == pipeline_fingerprint(ChunkingConfig(size=400, overlap=0, min_chars=10))
    others = {
        pipeline_fingerprint(ChunkingConfig(size=401, overlap=0, min_chars=10)),
        pipeline_fingerprint(ChunkingConfig(size=400, overlap=1, min_chars=10)),
        pipeline_fingerprint(ChunkingConfig(size=400, overlap=0, min_chars=11)),
    }
    monkeypatch.setattr(chunking_module, "PIPELINE_VERSION", chunking_module.PIPELINE_VERSION + 1)
    others.add(pipeline_fingerprint(LARGE))
    assert len(others) == 4 and base not in others


def test_a_knowledge_base_from_before_pipelines_searches_then_rechunks_once(
    layout: DataLayout, kb: KnowledgeBase, embedder: Embedder, manual: Path
) -> None:
    # Written as the code before pipelines wrote it: ids without a pipeline, no metadata
    # key, a manifest of version 1 (and a (source, doc_hash) pair left pending by a crash).
    source, doc_hash = source_key(manual), file_sha256(manual)
    chunks = [
        dataclasses.replace(c, source=source) for c in chunk_document(load_document(manual), SMALL)
    ]
    kb.begin_document(source, doc_hash)
    kb.add_chunks(doc_hash, chunks, embedder.embed([c.text for c in chunks]))
    ghost = dataclasses.replace(chunks[0], source="/gone/ghost.md")
    kb.add_chunks("9" * 64, [ghost], embedder.embed([ghost.text]))
    legacy_ids = {chunk_id(source, doc_hash, i) for i in range(len(chunks))}
    assert stored_ids(kb) - legacy_ids == {chunk_id(ghost.source, "9" * 64, 0)}
    assert all("pipeline" not in m for m in kb.collection.get(include=["metadatas"])["metadatas"])
    old_manifest = {
        "version": 1,
        "revision": 3,
        "documents": {
            source: {"doc_hash": doc_hash, "chunks": len(chunks), "indexed_at": "2024-01-01"}
        },
        "pending": [[ghost.source, "9" * 64]],
    }
    kb.manifest_file.path.write_text(json.dumps(old_manifest), encoding="utf-8")

    reopened = KnowledgeStore(layout, embedder=embedder).get("test")  # reconciles pending
    assert stored_ids(reopened) == legacy_ids
    assert visible(reopened) == [c.text for c in chunks]
    assert reopened.documents()[0].pipeline == ""
    assert searched(reopened) and searched(reopened) <= legacy_ids
    hit = reopened.search("check gasket 17", k=1, method="dense")[0]
    assert reopened.get_chunk(hit.id).text == hit.text

    events = run(reopened, embedder, manual, SMALL)  # the same settings, but no pipeline
    assert (done(events).status, done(events).reason) == ("indexed", RECHUNK_REASON)
    assert visible(reopened) == [c.text for c in chunks]  # the same texts, now under new ids
    assert stored_ids(reopened) == expected_ids(manual, SMALL)
    assert reopened.manifest().pending == []
    assert done(run(reopened, embedder, manual, SMALL)).status == "unchanged"


def test_a_run_stopped_while_rechunking_keeps_the_old_chunks_only(
    kb: KnowledgeBase, embedder: Embedder, manual: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(kb, embedder, manual, SMALL)
    old_texts, old_ids = visible(kb), stored_ids(kb)
    monkeypatch.setattr(indexer_module, "SUB_BATCH_CHUNKS", 2)
    monkeypatch.setattr(embedder, "batch_size", 2)
    events = Indexer(kb, embedder, LARGE).run([manual])
    with pytest.raises(RuntimeError):
        for event in events:
            if isinstance(event, Progress) and event.chunks_done > 0:
                # Some new chunks are in Chroma: readers still see the old ones only.
                assert stored_ids(kb) > old_ids
                assert visible(kb) == old_texts and searched(kb) <= old_ids
                raise RuntimeError("consumer stopped (as with Ctrl-C)")
    events.close()  # type: ignore[attr-defined]  # run() is a generator
    assert visible(kb) == old_texts and stored_ids(kb) == old_ids
    assert kb.documents()[0].pipeline == pipeline_fingerprint(SMALL)
    assert kb.manifest().pending == []
    assert done(run(kb, embedder, manual, LARGE)).reason == RECHUNK_REASON
    assert visible(kb) == expected(manual, LARGE)


_KILLED_WHILE_RECHUNKING = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import core.knowledge.indexer as indexer_module
    from core.config import ChunkingConfig
    from core.knowledge.embedder import Embedder
    from core.knowledge.knowledge_base import KnowledgeBase
    from core.knowledge.store import KnowledgeStore
    from core.paths import DataLayout

    data, model, doc, point = sys.argv[1:5]
    if point == "embedding":  # after the first sub-batch of new chunks is stored
        indexer_module.SUB_BATCH_CHUNKS = 2
        add_records = KnowledgeBase.add_records

        def add_then_die(self, *args, **kwargs):
            add_records(self, *args, **kwargs)
            os._exit(9)

        KnowledgeBase.add_records = add_then_die
    else:  # the commit is written; the replaced chunks are not deleted yet
        KnowledgeBase.delete_chunks = lambda self, *args: os._exit(9)
    embedder = Embedder(model)
    embedder.batch_size = 2
    store = KnowledgeStore(DataLayout(Path(data)), embedder=embedder)
    config = ChunkingConfig(size=400, overlap=0, min_chars=10)
    list(indexer_module.Indexer(store.get("test"), embedder, config).run([Path(doc)]))
    """
)


@pytest.mark.parametrize("point", ["embedding", "commit"])
def test_a_process_killed_while_rechunking_shows_old_or_new_never_both(
    point: str, layout: DataLayout, kb: KnowledgeBase, embedder: Embedder, manual: Path
) -> None:
    run(kb, embedder, manual, SMALL)
    old_texts, old_ids = visible(kb), stored_ids(kb)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_WHILE_RECHUNKING,
            str(layout.root),
            str(embedder.model_path),
            str(manual),
            point,
        ],
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )
    assert killed.returncode == 9
    new_ids = expected_ids(manual, LARGE)
    stale = KnowledgeStore(layout, embedder=embedder)
    # Before anything cleans up, both versions' chunks are in Chroma; one is visible.
    seen = stale.client.get_collection(kb.id).get(include=[])["ids"]
    assert set(seen) & old_ids and set(seen) & new_ids
    want_texts, want_ids = (
        (old_texts, old_ids) if point == "embedding" else (expected(manual, LARGE), new_ids)
    )
    assert visible(kb) == want_texts and searched(kb) <= want_ids

    reopened = stale.get("test")  # deletes what the manifest flagged as pending
    assert stored_ids(reopened) == want_ids and visible(reopened) == want_texts
    assert reopened.manifest().pending == [] and reopened.reconcile() == 0
    after = run(reopened, embedder, manual, LARGE)
    assert done(after).status == ("indexed" if point == "embedding" else "unchanged")
    assert stored_ids(reopened) == new_ids


# -- versions of the vectors ------------------------------------------------------------


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second real embedder: the bundled model with its weights moved a little."""
    import torch
    from sentence_transformers import SentenceTransformer

    from core.knowledge.embedder import bundled_model_path

    model = SentenceTransformer(str(bundled_model_path()), device="cpu")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02 * p.std())
    folder = tmp_path_factory.mktemp("rechunk-other") / "shifted"
    model.save(str(folder))
    return folder


@pytest.fixture
def versioned(
    layout: DataLayout, kb: KnowledgeBase, shifted: Path
) -> Iterator[tuple[KnowledgeBase, DataLayout]]:
    shutil.copytree(shifted, embedder_catalog.embedders_dir(layout) / "shifted")
    yield kb, layout


def test_an_inactive_version_catches_up_with_rechunked_documents(
    versioned: tuple[KnowledgeBase, DataLayout], embedder: Embedder, manual: Path
) -> None:
    kb, _ = versioned
    run(kb, embedder, manual, SMALL)
    assert reembed.reembed(kb, "shifted").switched
    reembed.switch_to(kb, 1)  # version 2 now holds the 200-character chunks, inactive
    run(kb, embedder, manual, LARGE)
    reembed.switch_to(kb, 2)  # brought up to date on the way
    assert kb.active_version.number == 2
    assert stored_ids(kb) == expected_ids(manual, LARGE)
    assert visible(kb) == expected(manual, LARGE)
    shifted_embedder = kb.embedder
    for cid, text, meta in kb.iter_chunks():
        # Each id's vector is its own text's, embedded by version 2's model.
        got = kb.collection.query(
            query_embeddings=shifted_embedder.embed([chunk_metadata_text(text, meta)]),
            n_results=1,
            include=[],
        )
        assert got["ids"][0][0] == cid, meta["chunk_index"]
