"""Knowledge bases in a real ChromaDB: create, list, rename, delete, one writer at a time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.errors import KnowledgeBaseBusy, KnowledgeBaseExists, KnowledgeBaseNotFound
from core.knowledge.indexer import Indexer
from core.knowledge.knowledge_base import ChunkNotFound, DocumentNotIndexed
from core.knowledge.store import InvalidKnowledgeBaseName, KnowledgeStore
from core.paths import DataLayout


def test_create_list_rename_delete(store: KnowledgeStore, layout: DataLayout) -> None:
    assert store.list() == []
    notes = store.create("Project notes: 2024 / Q3 ✓")
    store.create("archive")

    names = [info.name for info in store.list()]
    assert names == ["archive", "Project notes: 2024 / Q3 ✓"]
    assert store.get("Project notes: 2024 / Q3 ✓").id == notes.id

    store.rename("Project notes: 2024 / Q3 ✓", "Notes")
    assert sorted(i.name for i in store.list()) == ["Notes", "archive"]
    assert store.get("Notes").id == notes.id
    with pytest.raises(KnowledgeBaseNotFound):
        store.get("Project notes: 2024 / Q3 ✓")

    state = layout.kb_state / notes.id
    assert (state / "manifest.json").exists()
    store.delete("Notes")
    assert [i.name for i in store.list()] == ["archive"]
    assert not state.exists()
    with pytest.raises(KnowledgeBaseNotFound):
        store.delete("Notes")


def test_knowledge_bases_survive_reopening(store: KnowledgeStore, layout: DataLayout) -> None:
    created = store.create("research")
    reopened = KnowledgeStore(layout, embedder=store.embedder)
    assert [(i.name, i.id, i.documents, i.chunks) for i in reopened.list()] == [
        ("research", created.id, 0, 0)
    ]


def test_names_are_unique_and_not_blank(store: KnowledgeStore) -> None:
    store.create("papers")
    store.create("drafts")
    with pytest.raises(KnowledgeBaseExists, match="papers"):
        store.create("papers")
    with pytest.raises(KnowledgeBaseExists):
        store.rename("drafts", "papers")
    with pytest.raises(InvalidKnowledgeBaseName):
        store.create("   ")
    with pytest.raises(KnowledgeBaseNotFound, match="nope"):
        store.rename("nope", "other")
    assert sorted(i.name for i in store.list()) == ["drafts", "papers"]


def test_documents_chunks_and_removal(store: KnowledgeStore, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bees.md").write_text(
        "# Bees\n\nHoney bees dance to tell the hive where the flowers are.\n", encoding="utf-8"
    )
    (docs / "tides.txt").write_text(
        "Tides rise and fall twice a day because of the moon's pull.\n", encoding="utf-8"
    )
    kb = store.create("nature")
    list(Indexer(kb, store.embedder).run([docs]))

    infos = {Path(d.source).name: d for d in kb.documents()}
    assert set(infos) == {"bees.md", "tides.txt"}
    assert all(len(d.doc_hash) == 64 and d.chunks == 1 and d.indexed_at for d in infos.values())
    assert kb.count() == 2
    assert store.list()[0].documents == 2

    hit = kb.search("honey bees dance", k=1, method="dense")[0]
    again = kb.get_chunk(hit.id)
    assert again.text == hit.text and again.source == hit.source and again.heading == "Bees"

    kb.remove_document(infos["bees.md"].source)
    assert [Path(d.source).name for d in kb.documents()] == ["tides.txt"]
    assert kb.count() == 1
    with pytest.raises(ChunkNotFound):
        kb.get_chunk(hit.id)
    with pytest.raises(DocumentNotIndexed):
        kb.remove_document(infos["bees.md"].source)


_HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from filelock import FileLock
    lock = FileLock(sys.argv[1])
    lock.acquire(timeout=10)
    print("locked", flush=True)
    sys.stdin.readline()
    lock.release()
    """
)


def test_a_second_writer_is_told_to_wait(
    store: KnowledgeStore, layout: DataLayout, tmp_path: Path
) -> None:
    kb = store.create("shared")
    doc = tmp_path / "a.txt"
    doc.write_text("Some text long enough to be indexed as one chunk.\n", encoding="utf-8")
    other = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(layout.write_lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "locked"
        with pytest.raises(KnowledgeBaseBusy, match="wait for it to finish") as busy:
            store.create("another")
        assert str(layout.root) in str(busy.value)
        with pytest.raises(KnowledgeBaseBusy):
            next(iter(Indexer(kb, store.embedder).run([doc])))
        with pytest.raises(KnowledgeBaseBusy):
            store.delete("shared")
        # Reading is not writing: listing and searching still work meanwhile.
        assert [i.name for i in store.list()] == ["shared"]
        assert kb.search("text", k=1) == []
    finally:
        assert other.stdin is not None
        other.stdin.write("\n")
        other.stdin.flush()
        other.wait(timeout=30)
    store.create("another")
    assert sorted(i.name for i in store.list()) == ["another", "shared"]
