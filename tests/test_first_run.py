"""The first start: a fresh data folder is told apart from one with content, and the sample
knowledge base is made from the app's own user guide (real indexing, real search), only
ever added: a knowledge base of its name is left as it is, a cancelled one is not kept."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.cli import main
from core.conversations import ConversationStore
from core.dataset.storage import DatasetStore
from core.first_run import (
    SAMPLE_KB,
    SampleDone,
    guide_files,
    is_fresh,
    make_sample_kb,
    suggested_questions,
)
from core.knowledge import service
from core.knowledge.indexer import FileDone, IndexSummary, Progress
from core.llm.engines import default_model_path
from core.models.installed import ModelRegistry
from core.workspace import Workspace


def test_the_guide_is_made_and_each_suggested_question_finds_its_page(ws: Workspace) -> None:
    assert is_fresh(ws)
    events = list(make_sample_kb(ws))
    done = events[-1]
    assert isinstance(done, SampleDone) and done.outcome == "made" and done.ready
    # The indexing's own events came through: what the welcome's progress bar shows.
    assert any(isinstance(e, Progress) for e in events)
    assert sum(isinstance(e, FileDone) and e.status == "indexed" for e in events) == len(
        guide_files()
    )
    assert done.summary is not None and done.summary.chunks > len(guide_files())
    assert not is_fresh(ws)

    questions = suggested_questions()
    assert len(questions) == 3
    for question in questions:
        hits = service.search(
            ws, SAMPLE_KB, question.text, k=ws.config.retrieval.k, method="hybrid"
        )
        assert question.source in {Path(h.source).name for h in hits}, question.text

    # Asked again, it finds the guide and indexes nothing.
    before = service.documents(ws, SAMPLE_KB)
    again = list(make_sample_kb(ws))
    assert again == [SampleDone(SAMPLE_KB, "found")]
    assert service.documents(ws, SAMPLE_KB) == before


def test_a_knowledge_base_with_the_sample_s_name_is_left_as_it_is(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nThe kettle is in the second cupboard.\n", "utf-8")
    kb, _ = service.open_kb(ws, SAMPLE_KB)
    list(service.index(ws, kb, [notes]))

    assert main(["--data-dir", str(ws.layout.root), "kb", "sample"]) == 0
    out = capsys.readouterr().out
    assert "exists already; it was left as it is" in out
    assert f"cotrag ask --kb '{SAMPLE_KB}'" in out
    assert [Path(d.source).name for d in service.documents(ws, SAMPLE_KB)] == ["notes.md"]


def test_a_cancelled_sample_is_not_kept(ws: Workspace) -> None:
    cancel = threading.Event()
    cancel.set()
    events = list(make_sample_kb(ws, cancel))
    summary = next(e for e in events if isinstance(e, IndexSummary))
    assert summary.cancelled
    assert events[-1] == SampleDone(SAMPLE_KB, "cancelled", summary)
    assert not events[-1].ready
    assert service.list_kbs(ws) == []
    assert is_fresh(ws)

    # Left halfway (a caller stops reading): the sample is not kept either.
    run = make_sample_kb(ws)
    assert any(isinstance(event, FileDone) for event in run)
    run.close()
    assert service.list_kbs(ws) == []


def test_a_folder_with_anything_made_in_it_is_not_fresh(tmp_path: Path) -> None:
    def fresh_after(make: object) -> bool:
        folder = tmp_path / str(make)
        ws = Workspace(folder)
        assert is_fresh(ws)
        if make == "dataset":
            DatasetStore(ws.layout.datasets).create("mine", {"kb": "x"})
        elif make == "conversation":
            store = ConversationStore(ws.layout.conversations)
            store.save(store.new("How hot?"))
        elif make == "model":
            ModelRegistry(ws.layout).add_local(default_model_path())
        elif make == "server":
            ws.config.store.chroma_host = "chroma.example"
        return is_fresh(ws)

    for make in ("dataset", "conversation", "model", "server"):
        assert not fresh_after(make), make
