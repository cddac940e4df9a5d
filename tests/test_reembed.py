"""Re-embedding a knowledge base into a new version: background build, atomic switch, undo."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from small_docs import DOCS, indexed_workspace

from core.knowledge import embedder_catalog, reembed
from core.knowledge.embedder_catalog import EmbedderMissing
from core.knowledge.indexer import EmbedderMismatch, Indexer
from core.knowledge.reembed import ReembedFailed, ReembedProgress
from core.knowledge.store import KnowledgeStore
from core.workspace import Workspace

QUESTIONS = (
    "how often does the backup run",
    "which port does the proxy listen on",
    "what is the default delay of setTimeout",
)


class Killed(BaseException):
    """Stands for the process dying: nothing after the raise runs."""


@pytest.fixture(scope="module")
def other_embedder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second real embedder: the bundled MiniLM with its weights moved a little (its vectors
    differ from the bundled model's, as a tuned one's do)."""
    import torch
    from sentence_transformers import SentenceTransformer

    from core.knowledge.embedder import bundled_model_path

    model = SentenceTransformer(str(bundled_model_path()), device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02 * p.std())
    folder = tmp_path_factory.mktemp("other") / "shifted"
    model.save(str(folder))
    return folder


@pytest.fixture
def ws(tmp_path: Path, other_embedder: Path) -> Iterator[Workspace]:
    workspace = indexed_workspace(tmp_path)
    assert isinstance(workspace, Workspace)
    shutil.copytree(other_embedder, embedder_catalog.embedders_dir(workspace.layout) / "shifted")
    yield workspace
    workspace.close()


def results(kb: object, method: str = "dense") -> list[list[tuple[str, float]]]:
    return [
        [(h.id, round(h.score, 5)) for h in kb.search(q, k=3, method=method)]  # type: ignore[attr-defined]
        for q in QUESTIONS
    ]


def test_reembed_switches_and_switching_back_restores_the_old_results(ws: Workspace) -> None:
    kb = ws.store.get("docs")
    before = results(kb)
    hybrid_before = results(kb, "hybrid")
    seen: list[ReembedProgress] = []
    result = reembed.reembed(kb, "shifted", on_progress=seen.append)
    assert result.switched and result.version.number == 2 and result.version.state == "ready"
    assert result.embedded == kb.count() > 0
    assert kb.embedder_name == "shifted" and kb.active_version.number == 2
    assert {p.stage for p in seen} >= {"embedding", "catching up", "checking"}
    after = results(kb)
    assert after != before  # other vectors, other scores
    # Another process (a new store) sees the switch.
    other = KnowledgeStore(ws.layout, embedder=ws.embedder).get("docs")
    assert other.embedder_name == "shifted" and results(other) == after
    version = reembed.switch_to(kb, 1)
    assert version.number == 1 and kb.embedder_name == kb.versions_file.read().get(1).embedder  # type: ignore[union-attr]
    assert results(kb) == before
    assert results(kb, "hybrid") == hybrid_before
    # The tuned version is kept: switching to it again gives its results again.
    reembed.switch_to(kb, 2)
    assert results(kb) == after


def test_a_kill_mid_way_leaves_the_old_version_serving_and_resumes(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reembed, "BATCH", 2)
    kb = ws.store.get("docs")
    before = results(kb)
    total = kb.count()
    assert total >= 4

    def die(p: ReembedProgress) -> None:
        if p.stage == "embedding" and p.done >= 2:
            raise Killed

    with pytest.raises(Killed):
        reembed.reembed(kb, "shifted", on_progress=die)
    # As a fresh process finds it: the old version serves, the new one is half-built.
    fresh = KnowledgeStore(ws.layout, embedder=ws.embedder).get("docs")
    assert fresh.active_version.number == 1
    assert results(fresh) == before
    building = fresh.versions_file.read().get(2)
    assert building is not None and building.state == "building"
    assert 0 < fresh.version_collection(building).count() < total
    # A document added meanwhile is caught up before the switch.
    extra = Path(ws.layout.root).parent / "docs" / "extra.md"
    extra.write_text("# Cache\n\nThe cache keeps entries for 300 seconds by default.\n", "utf-8")
    list(Indexer(fresh, None, ws.config.chunking).run([extra]))
    result = reembed.reembed(fresh, "shifted")
    assert result.switched and result.version.number == 2
    assert result.embedded < fresh.count()  # only what the killed run had not done
    assert fresh.version_collection(result.version).count() == fresh.count() == total + 1
    hits = fresh.search("how long does the cache keep entries", k=1, method="dense")
    assert hits and hits[0].source.endswith("extra.md")


def test_cancel_keeps_serving_and_a_later_run_finishes(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    monkeypatch.setattr(reembed, "BATCH", 2)
    kb = ws.store.get("docs")
    cancel = threading.Event()

    def stop(p: ReembedProgress) -> None:
        if p.done >= 2:
            cancel.set()

    result = reembed.reembed(kb, "shifted", on_progress=stop, cancel=cancel)
    assert result.cancelled and not result.switched
    assert kb.active_version.number == 1
    result = reembed.reembed(kb, "shifted")
    assert result.switched and kb.active_version.number == 2


def test_indexing_follows_the_serving_embedder(ws: Workspace) -> None:
    kb = ws.store.get("docs")
    reembed.reembed(kb, "shifted")
    # The app's default embedder no longer matches: passed explicitly, it is refused…
    with pytest.raises(EmbedderMismatch, match="re-embed"):
        Indexer(kb, ws.embedder, ws.config.chunking)
    # …and left out, the knowledge base's own (the tuned one) is used.
    extra = Path(ws.layout.root).parent / "docs" / "more.md"
    extra.write_text("# Limits\n\nUploads are limited to 25 megabytes each.\n", "utf-8")
    indexer = Indexer(kb, None, ws.config.chunking)
    assert indexer.embedder.model_name == "shifted"
    list(indexer.run([extra]))
    hit = kb.search("how large can an upload be", k=1, method="dense")[0]
    assert hit.source.endswith("more.md")


def test_a_missing_embedder_is_a_sentence_not_a_crash(ws: Workspace) -> None:
    kb = ws.store.get("docs")
    reembed.reembed(kb, "shifted")
    shutil.rmtree(embedder_catalog.embedders_dir(ws.layout) / "shifted")
    fresh_store = KnowledgeStore(ws.layout, embedder=ws.embedder)
    fresh = fresh_store.get("docs")
    with pytest.raises(EmbedderMissing) as caught:
        fresh.search("backup", k=3, method="dense")
    text = str(caught.value)
    assert "'docs'" in text and "shifted" in text and "cotrag kb versions" in text
    # Keyword search still answers, the list still lists, and switching back works.
    assert fresh.search("backup", k=3, method="bm25")
    assert [i.name for i in fresh_store.list()] == ["docs"]
    reembed.switch_to(fresh, 1)
    assert fresh.search("backup", k=3, method="dense")


def test_remove_a_version_and_the_refusals(ws: Workspace) -> None:
    kb = ws.store.get("docs")
    with pytest.raises(ReembedFailed, match="already served"):
        reembed.reembed(kb, "")
    with pytest.raises(EmbedderMissing):
        reembed.reembed(kb, "no-such-embedder")
    reembed.reembed(kb, "shifted")
    with pytest.raises(ReembedFailed, match="serves"):
        reembed.remove_version(kb, 2)
    removed = reembed.remove_version(kb, 1)
    assert removed.state == "removed"
    assert kb.base_collection.count() == 0  # version 1's vectors are gone, its name stays
    assert kb.name == "docs" and kb.search("backup", k=2, method="dense")
    with pytest.raises(ReembedFailed, match="removed"):
        reembed.switch_to(kb, 1)
    # Deleting the knowledge base deletes every version's collection.
    ws.store.delete("docs")
    names = [c.name for c in ws.store.client.list_collections()]
    assert not [n for n in names if n.startswith(kb.id)]


def test_the_cli_reembeds_lists_versions_and_switches(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    data = str(ws.layout.root)
    assert main(["--data-dir", data, "kb", "reembed", "docs", "--embedder", "shifted"]) == 0
    out = capsys.readouterr().out
    assert "now served by version 2 (shifted)" in out and "cotrag kb switch 'docs' 1" in out
    assert main(["--data-dir", data, "kb", "versions", "docs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("  v1  ready") and lines[1].startswith("* v2  ready")
    assert main(["--data-dir", data, "kb", "switch", "docs", "1"]) == 0
    assert "served by version 1" in capsys.readouterr().out
    assert main(["--data-dir", data, "embedders", "delete", "shifted", "-y"]) == 1
    assert "remove those versions first" in capsys.readouterr().err
    assert len(DOCS) == 3


def test_without_switch_the_version_is_checked_ready_and_switch_serves_it(ws: Workspace) -> None:
    kb = ws.store.get("docs")
    before = results(kb)
    result = reembed.reembed(kb, "shifted", switch=False)
    assert not result.switched and result.version.state == "ready"
    assert kb.active_version.number == 1 and results(kb) == before
    versions = kb.versions_file.read()
    assert versions.get(2).state == "ready" and versions.get(2).chunks == kb.count()  # type: ignore[union-attr]
    reembed.switch_to(kb, 2)
    assert kb.embedder_name == "shifted" and results(kb) != before
    # The version that stopped serving has its chunk count recorded.
    assert kb.versions_file.read().get(1).chunks == kb.count()  # type: ignore[union-attr]
