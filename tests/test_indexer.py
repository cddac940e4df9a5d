"""Idempotent indexing into a real ChromaDB with the bundled embedder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import docmaker
import pytest

import core.knowledge.indexer as indexer_module
from core.config import ChunkingConfig
from core.knowledge.embedder import Embedder
from core.knowledge.indexer import FileDone, Indexer, IndexEvent, IndexSummary, Progress
from core.knowledge.knowledge_base import KnowledgeBase
from core.knowledge.manifest import Manifest, ManifestFile
from core.knowledge.store import KnowledgeStore
from core.knowledge.types import DocChunk
from core.paths import DataLayout

SMALL_CHUNKS = ChunkingConfig(size=200, overlap=0, min_chars=10)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "alpha.md").write_text(
        "# Alpha\n\nThe alpha station measures wind speed on the northern ridge.\n",
        encoding="utf-8",
    )
    (docs / "beta.txt").write_text(
        "Beta notes: the river gauge is read every morning at seven.\n", encoding="utf-8"
    )
    sub = docs / "sub"
    sub.mkdir()
    (sub / "gamma.md").write_text(
        "# Gamma\n\nGamma rays from the test source are shielded with lead bricks.\n",
        encoding="utf-8",
    )
    return docs


def run(
    kb: KnowledgeBase,
    embedder: Embedder,
    paths: Iterable[Path],
    cancel: threading.Event | None = None,
) -> list[IndexEvent]:
    return list(Indexer(kb, embedder, SMALL_CHUNKS).run(list(paths), cancel=cancel))


def statuses(events: list[IndexEvent]) -> dict[str, str]:
    return {Path(e.path).name: e.status for e in events if isinstance(e, FileDone)}


def summary(events: list[IndexEvent]) -> IndexSummary:
    last = events[-1]
    assert isinstance(last, IndexSummary)
    return last


def names(kb: KnowledgeBase) -> list[str]:
    return sorted(Path(d.source).name for d in kb.documents())


def long_text(paragraphs: int) -> str:
    return "\n\n".join(
        f"Paragraph {i} describes maintenance step {i} of the pump in enough words "
        "to fill a chunk of its own, with bolts, seals and gaskets."
        for i in range(paragraphs)
    )


def test_index_a_folder_then_reindex_is_a_no_op(
    kb: KnowledgeBase, embedder: Embedder, folder: Path
) -> None:
    events = run(kb, embedder, [folder])
    assert statuses(events) == {"alpha.md": "indexed", "beta.txt": "indexed", "gamma.md": "indexed"}
    first = summary(events)
    assert (first.indexed, first.failed, first.cancelled) == (3, 0, False)
    assert first.chunks == kb.count() == 3
    assert names(kb) == ["alpha.md", "beta.txt", "gamma.md"]
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress and all(p.files_total == 3 for p in progress)
    assert progress[-1].chunks_done == 3

    again = run(kb, embedder, [folder])
    assert set(statuses(again).values()) == {"unchanged"}
    second = summary(again)
    assert (second.indexed, second.unchanged, second.chunks) == (0, 3, 0)
    assert kb.count() == 3


def test_changed_file_is_replaced_and_deleted_file_removed(
    kb: KnowledgeBase, embedder: Embedder, folder: Path
) -> None:
    run(kb, embedder, [folder])
    before = {Path(d.source).name: d.doc_hash for d in kb.documents()}

    (folder / "beta.txt").write_text(
        "Beta notes, revised: the river gauge moved to the old mill bridge.\n", encoding="utf-8"
    )
    (folder / "sub" / "gamma.md").unlink()
    events = run(kb, embedder, [folder])

    assert statuses(events) == {
        "alpha.md": "unchanged",
        "beta.txt": "indexed",
        "gamma.md": "removed",
    }
    s = summary(events)
    assert (s.indexed, s.unchanged, s.removed) == (1, 1, 1)
    after = {Path(d.source).name: d.doc_hash for d in kb.documents()}
    assert set(after) == {"alpha.md", "beta.txt"}
    assert after["beta.txt"] != before["beta.txt"]
    assert kb.count() == 2
    texts = [kb.get_chunk(h.id).text for h in kb.search("river gauge", k=5, method="bm25")]
    assert texts == ["Beta notes, revised: the river gauge moved to the old mill bridge."]
    assert kb.search("gamma rays lead bricks", k=5, method="bm25") == []


def test_files_outside_the_reindexed_folder_are_kept(
    kb: KnowledgeBase, embedder: Embedder, folder: Path, tmp_path: Path
) -> None:
    single = tmp_path / "single.txt"
    single.write_text("A lone file indexed by itself, about lighthouse lamps.\n", encoding="utf-8")
    run(kb, embedder, [single])
    run(kb, embedder, [folder])
    assert names(kb) == ["alpha.md", "beta.txt", "gamma.md", "single.txt"]


def test_bad_files_fail_with_a_reason_and_the_rest_is_indexed(
    kb: KnowledgeBase, embedder: Embedder, tmp_path: Path
) -> None:
    corpus = docmaker.make_mixed_corpus(tmp_path / "mixed")
    events = run(kb, embedder, [tmp_path / "mixed"])
    got = statuses(events)
    for kind in docmaker.READABLE_KINDS:
        assert got[corpus[kind].name] == "indexed", kind
    for kind in ("encrypted_pdf", "corrupt_pdf", "empty", "binary_txt"):
        assert got[corpus[kind].name] == "failed", kind
    s = summary(events)
    reasons = {Path(p).name: r for p, r in s.failures}
    assert "password" in reasons[corpus["encrypted_pdf"].name]
    assert "binary" in reasons[corpus["binary_txt"].name]
    assert all(reasons.values())
    assert s.failed == len(reasons) and s.indexed == len(docmaker.READABLE_KINDS)
    assert len(kb.documents()) == len(docmaker.READABLE_KINDS)
    for kind, fact in docmaker.FACTS.items():
        hit = kb.search(fact, k=1, method="hybrid")[0]
        assert Path(hit.source).name == corpus[kind].name, kind
    pdf_hit = kb.search(docmaker.FACTS["pdf"], k=1, method="bm25")[0]
    assert pdf_hit.extra["page"] >= 1


def test_a_missing_file_is_reported_not_fatal(
    kb: KnowledgeBase, embedder: Embedder, folder: Path, tmp_path: Path
) -> None:
    events = run(kb, embedder, [tmp_path / "nowhere.txt", folder / "beta.txt"])
    assert statuses(events) == {"nowhere.txt": "failed", "beta.txt": "indexed"}
    assert "not found" in summary(events).failures[0][1]


def test_a_file_that_vanishes_mid_run_is_reported_and_the_rest_indexed(
    kb: KnowledgeBase, embedder: Embedder, folder: Path
) -> None:
    events = []
    for event in Indexer(kb, embedder, SMALL_CHUNKS).run([folder]):
        events.append(event)
        # Files are read a few ahead of the one being embedded: this is the last moment
        # before any is read (listed and hashed at the start, gone now).
        if isinstance(event, Progress) and event.stage in ("loading", "preparing"):
            (folder / "sub" / "gamma.md").unlink()
    assert statuses(events) == {"alpha.md": "indexed", "beta.txt": "indexed", "gamma.md": "failed"}
    assert "gamma.md" in summary(events).failures[0][0]
    assert names(kb) == ["alpha.md", "beta.txt"]


def test_cancel_after_the_first_file_leaves_a_consistent_kb(
    kb: KnowledgeBase, embedder: Embedder, folder: Path
) -> None:
    cancel = threading.Event()
    events = []
    for event in Indexer(kb, embedder, SMALL_CHUNKS).run([folder], cancel=cancel):
        events.append(event)
        if isinstance(event, FileDone) and event.status == "indexed":
            cancel.set()
    s = summary(events)
    assert s.cancelled and s.indexed == 1
    assert len(kb.documents()) == 1 and kb.count() == 1

    resumed = summary(run(kb, embedder, [folder]))
    assert (resumed.unchanged, resumed.indexed) == (1, 2)
    assert kb.count() == 3


def test_cancel_in_the_middle_of_a_document_keeps_none_of_it(
    kb: KnowledgeBase, embedder: Embedder, tmp_path: Path
) -> None:
    big = tmp_path / "manual.txt"
    big.write_text(long_text(80), encoding="utf-8")
    cancel = threading.Event()
    events = []
    for event in Indexer(kb, embedder, SMALL_CHUNKS).run([big], cancel=cancel):
        events.append(event)
        if isinstance(event, Progress) and event.chunks_done > 0:
            cancel.set()
    chunks_seen = max(e.chunks_done for e in events if isinstance(e, Progress))
    assert 0 < chunks_seen < 80
    assert summary(events).cancelled
    assert kb.documents() == [] and kb.count() == 0


def test_progress_is_reported_per_batch(
    kb: KnowledgeBase, embedder: Embedder, tmp_path: Path
) -> None:
    big = tmp_path / "manual.txt"
    big.write_text(long_text(80), encoding="utf-8")
    events = run(kb, embedder, [big])
    progress = [e for e in events if isinstance(e, Progress) and e.chunks_done > 0]
    assert len(progress) >= 80 // embedder.batch_size
    assert [p.chunks_done for p in progress] == sorted(p.chunks_done for p in progress)
    assert progress[-1].chunks_done == summary(events).chunks == kb.count() >= 80
    assert all(p.chunks_per_s > 0 and p.eta_s is not None and p.eta_s >= 0 for p in progress)
    assert progress[-1].eta_s == pytest.approx(0.0, abs=1e-6)


def test_stopping_the_consumer_mid_document_removes_the_partial_document(
    kb: KnowledgeBase, embedder: Embedder, tmp_path: Path
) -> None:
    big = tmp_path / "manual.txt"
    big.write_text(long_text(80), encoding="utf-8")
    events = Indexer(kb, embedder, SMALL_CHUNKS).run([big])
    with pytest.raises(RuntimeError):
        for event in events:
            if isinstance(event, Progress) and event.chunks_done > 0:
                raise RuntimeError("consumer stopped (as with Ctrl-C)")
    events.close()  # type: ignore[attr-defined]  # run() is a generator
    assert kb.count() == 0 and kb.documents() == []


def test_uncommitted_chunks_never_show_and_are_gone_after_reopening(
    store: KnowledgeStore, kb: KnowledgeBase, embedder: Embedder, layout: DataLayout, folder: Path
) -> None:
    run(kb, embedder, [folder])
    # A crash between adding a document's chunks and committing it: the chunks are
    # in Chroma, the manifest does not know them.
    orphan = DocChunk(
        source=str(folder / "ghost.md"), text="ghost rays haunt the ridge", index=0, start=0, end=26
    )
    kb.begin_document(orphan.source, "f" * 64)
    kb.add_chunks("f" * 64, [orphan], embedder.embed([orphan.text]))
    assert kb.count() == 4
    assert all("ghost" not in h.text for h in kb.search("ghost rays", k=5, method="hybrid"))

    reopened = KnowledgeStore(layout, embedder=embedder).get("test")
    assert reopened.count() == 3
    assert names(reopened) == ["alpha.md", "beta.txt", "gamma.md"]


def test_chunks_added_behind_the_manifest_are_removed_by_the_next_run(
    kb: KnowledgeBase, embedder: Embedder, folder: Path
) -> None:
    run(kb, embedder, [folder])
    kb.collection.add(
        ids=["stray"],
        documents=["stray text"],
        embeddings=embedder.embed(["stray text"]),
        metadatas=[{"source": "/elsewhere/stray.txt", "doc_hash": "0" * 64}],
    )
    assert kb.count() == 4
    run(kb, embedder, [folder])
    assert kb.count() == 3


_CRASH_MID_DOCUMENT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from core.knowledge.embedder import Embedder
    from core.knowledge.store import KnowledgeStore
    from core.knowledge.types import DocChunk
    from core.paths import DataLayout

    store = KnowledgeStore(DataLayout(Path(sys.argv[1])), embedder=Embedder(sys.argv[2]))
    kb = store.get("test")
    with store.writing():
        kb.begin_document("/docs/killed.md", "a" * 64)
        chunks = [DocChunk("/docs/killed.md", f"part {i} of it", i, 0, 9) for i in range(5)]
        kb.add_chunks("a" * 64, chunks, [[0.1] * 384 for _ in chunks])
        os._exit(9)  # killed before the commit: no finally, no cleanup
    """
)


def test_a_process_killed_mid_document_leaves_no_half_document(
    store: KnowledgeStore, kb: KnowledgeBase, embedder: Embedder, layout: DataLayout, folder: Path
) -> None:
    run(kb, embedder, [folder])
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH_MID_DOCUMENT, str(layout.root), str(embedder.model_path)],
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )
    assert crashed.returncode == 9
    assert kb.count() == 8  # the five orphans are really there
    reopened = KnowledgeStore(layout, embedder=embedder).get("test")
    assert reopened.count() == 3
    assert names(reopened) == ["alpha.md", "beta.txt", "gamma.md"]
    assert reopened.manifest().pending == []


# -- groups: many documents per manifest write and per embedding call -------------------


def small_files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"f{i:02d}.txt"
        path.write_text(f"Note {i}: valve {i} of pump station {i} was checked.\n", encoding="utf-8")
        paths.append(path)
    return paths


def test_the_manifest_is_written_per_group_not_per_document(
    kb: KnowledgeBase, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_files(tmp_path / "many", 60)
    writes = []
    original = ManifestFile.write

    def counting_write(self: ManifestFile, manifest: Manifest) -> None:
        writes.append(len(manifest.pending))
        original(self, manifest)

    monkeypatch.setattr(ManifestFile, "write", counting_write)
    events = run(kb, embedder, [tmp_path / "many"])
    s = summary(events)
    assert (s.indexed, s.failed, s.chunks) == (60, 0, 60)
    assert kb.count() == 60 and len(kb.documents()) == 60
    # Groups of 1, 2, 4, 8, 16, 29 documents: one write to begin and one to commit each
    # (the per-document code wrote 120 times).
    assert len(writes) <= 2 * 6
    assert kb.manifest().pending == []
    assert len([e for e in events if isinstance(e, FileDone)]) == 60


def test_cancel_in_the_middle_of_a_group_keeps_committed_documents_only(
    kb: KnowledgeBase, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexer_module, "SUB_BATCH_CHUNKS", 2)
    monkeypatch.setattr(embedder, "batch_size", 2)
    small_files(tmp_path / "many", 12)  # groups: f00 | f01 f02 | f03..f06 | f07..f11
    cancel = threading.Event()
    events: list[IndexEvent] = []
    done_at: int | None = None
    for event in Indexer(kb, embedder, SMALL_CHUNKS).run([tmp_path / "many"], cancel=cancel):
        events.append(event)
        if isinstance(event, FileDone) and Path(event.path).name == "f02.txt":
            done_at = max(e.chunks_done for e in events if isinstance(e, Progress))
        if isinstance(event, Progress) and done_at is not None and event.chunks_done > done_at:
            cancel.set()  # one sub-batch of the four-document group is already in Chroma
    s = summary(events)
    assert s.cancelled and s.indexed == 3
    assert statuses(events) == {"f00.txt": "indexed", "f01.txt": "indexed", "f02.txt": "indexed"}
    assert names(kb) == ["f00.txt", "f01.txt", "f02.txt"]
    assert kb.count() == 3  # no chunk of the interrupted group is left behind
    assert kb.manifest().pending == []

    resumed = summary(run(kb, embedder, [tmp_path / "many"]))
    assert (resumed.unchanged, resumed.indexed) == (3, 9)
    assert kb.count() == 12


def test_a_consumer_that_stops_after_a_group_commit_keeps_the_whole_group(
    kb: KnowledgeBase, embedder: Embedder, tmp_path: Path
) -> None:
    small_files(tmp_path / "many", 12)
    events = Indexer(kb, embedder, SMALL_CHUNKS).run([tmp_path / "many"])
    for event in events:
        if isinstance(event, FileDone) and Path(event.path).name == "f01.txt":
            break
    events.close()  # type: ignore[attr-defined]  # run() is a generator
    # f02 was committed with f01 in one manifest write, though its FileDone never came.
    assert names(kb) == ["f00.txt", "f01.txt", "f02.txt"]
    assert kb.count() == 3 and kb.manifest().pending == []


def test_an_embedding_error_fails_its_group_and_leaves_no_chunks(
    kb: KnowledgeBase, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexer_module, "SUB_BATCH_CHUNKS", 2)
    monkeypatch.setattr(embedder, "batch_size", 2)
    paths = small_files(tmp_path / "many", 7)  # groups: f00 | f01 f02 | f03..f06
    # The longest text of the last group: embedded last, after a sub-batch was stored.
    paths[5].write_text("Poison " + "x" * 120 + "\n", encoding="utf-8")
    real_embed = embedder.embed

    def flaky_embed(texts: Sequence[str]) -> list[list[float]]:
        if any(t.startswith("Poison") for t in texts):
            raise RuntimeError("the model ran out of memory")
        return real_embed(texts)

    monkeypatch.setattr(embedder, "embed", flaky_embed)
    events = run(kb, embedder, [tmp_path / "many"])
    got = statuses(events)
    assert [got[f"f{i:02d}.txt"] for i in range(7)] == ["indexed"] * 3 + ["failed"] * 4
    s = summary(events)
    assert (s.indexed, s.failed, s.cancelled) == (3, 4, False)
    assert all("out of memory" in reason for _, reason in s.failures)
    assert names(kb) == ["f00.txt", "f01.txt", "f02.txt"]
    assert kb.count() == 3 and kb.manifest().pending == []


def test_a_failing_file_does_not_fail_its_group(
    kb: KnowledgeBase, embedder: Embedder, tmp_path: Path
) -> None:
    small_files(tmp_path / "many", 6)
    (tmp_path / "many" / "f03.txt").write_bytes(b"\x00\x01\x02 binary \xff\xfe" * 40)
    (tmp_path / "many" / "f04.txt").write_text("", encoding="utf-8")  # nothing to index
    events = run(kb, embedder, [tmp_path / "many"])
    got = statuses(events)
    assert (got["f03.txt"], got["f04.txt"]) == ("failed", "failed")
    assert names(kb) == ["f00.txt", "f01.txt", "f02.txt", "f05.txt"]
    assert kb.count() == 4 and kb.manifest().pending == []


def test_group_store_methods_commit_replace_and_abort_in_few_writes(
    kb: KnowledgeBase, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def chunk(source: str, text: str) -> DocChunk:
        return DocChunk(source, text, 0, 0, len(text))

    old = chunk("/docs/a.md", "old text of a")
    kb.begin_document(old.source, "1" * 64)
    kb.add_chunks("1" * 64, [old], embedder.embed([old.text]))
    kb.commit_document(old.source, "1" * 64, 1)

    writes: list[int] = []
    original = ManifestFile.write

    def counting_write(self: ManifestFile, manifest: Manifest) -> None:
        writes.append(1)
        original(self, manifest)

    monkeypatch.setattr(ManifestFile, "write", counting_write)
    new = [chunk("/docs/a.md", "new text of a"), chunk("/docs/b.md", "b"), chunk("/docs/c.md", "c")]
    hashes = ["2" * 64, "3" * 64, "4" * 64]
    kb.begin_documents([(c.source, h) for c, h in zip(new, hashes, strict=True)])
    kb.add_records(hashes, new, embedder.embed([c.text for c in new]))
    assert kb.count() == 4
    olds = kb.commit_documents([(new[0].source, hashes[0], 1), (new[1].source, hashes[1], 1)])
    assert olds == ["1" * 64, None]
    kb.abort_documents([(c.source, h) for c, h in zip(new, hashes, strict=True)])
    assert len(writes) == 4  # begin, commit, clear the replaced version, clear the aborted one
    assert sorted(d.source for d in kb.documents()) == ["/docs/a.md", "/docs/b.md"]
    assert kb.count() == 2 and kb.manifest().pending == []
    assert kb.documents()[0].doc_hash == "2" * 64
