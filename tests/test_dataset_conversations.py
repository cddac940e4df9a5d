"""Saved chat conversations imported into a dataset: real knowledge base, real retrieval,
real conversation files (the turns are real run records of the loop, made by the
constructed-trace writer so that no model is needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from small_docs import indexed_workspace

from core.cli import main
from core.conversations import (
    Conversation,
    ConversationDamaged,
    ConversationNotFound,
    ConversationStore,
    correction_of,
    set_correction,
)
from core.dataset.construct import TracePlan, construct_trace
from core.dataset.from_chat import NothingToImport, pairs_from_conversations, short_answer
from core.dataset.service import datasets
from core.dataset.validate import validate
from core.workspace import Workspace

SHIFT = 4
"""The saved turns number their passages from 5: a corrected cited answer must be
renumbered onto the new trace, not copied."""


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = indexed_workspace(tmp_path_factory.mktemp("conv"))
    assert isinstance(workspace, Workspace)
    yield workspace
    workspace.close()


def turn(ws: Workspace, question: str, answer: str, text_with: str) -> tuple[dict[str, Any], int]:
    """A real run record of the question (as the chat saves it), and the number of the
    passage that holds ``text_with``."""
    kb = ws.store.get("docs")
    chunk = next(cid for cid, text, _ in kb.iter_chunks() if text_with in text)
    record, gold = construct_trace(
        TracePlan(question, answer, text_with, chunk), ws.retriever("docs"), ws.config, len
    )
    assert gold is not None
    data = record.to_dict()
    for retrieval in data["retrievals"]:
        for hit in retrieval["hits"]:
            hit["number"] += SHIFT
    return data, gold + SHIFT


def save(ws: Workspace, title: str, turns: list[dict[str, Any]], kb: str = "docs") -> str:
    store = ConversationStore(ws.layout.conversations)
    conv = store.new(title, kb=kb)
    conv.turns = turns
    store.save(conv)
    return conv.id


def cli(ws: Workspace, *args: str) -> int:
    return main(["--data-dir", str(ws.layout.root), "dataset", *args])


def test_short_answer_drops_citations_and_the_full_stop() -> None:
    assert short_answer("The default retention is `14` [1].") == "The default retention is `14`"
    assert short_answer("Port 8443 [2, 3] by default [1].") == "Port 8443 by default"
    assert short_answer("  ") == ""


def test_corrections_are_kept_on_the_turn_and_survive_a_save(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path)
    conv = store.new("q")
    conv.turns.append({"question": "Which port?", "answer": "80 [1].", "feedback": "down"})
    set_correction(conv.turns[0], " 8443 ", "Port 8443 [1].")
    store.save(conv)
    again = store.load(conv.id).turns[0]
    correction = correction_of(again)
    assert correction is not None and correction.answer == "8443"
    assert correction.cited == "Port 8443 [1]."
    set_correction(again, "")
    assert correction_of(again) is None and "correction" not in again


def test_conversation_turns_become_examples_through_the_real_retrieval(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    port, port_gold = turn(
        ws,
        "Which port does the reverse proxy listen on by default?",
        "8443",
        "The proxy listens on port 8443 by default",
    )
    port["answer"] = f"It listens on port 80 [{SHIFT + 1}]."
    port["feedback"] = "down"
    set_correction(port, "8443", f"The proxy listens on port 8443 by default [{port_gold}].")
    signal, _ = turn(
        ws,
        "Which signal reloads the proxy routes?",
        "SIGHUP",
        "Send the process `SIGHUP` to reload the routes",
    )
    signal["answer"], signal["feedback"] = f"`SIGHUP` [{SHIFT + 1}].", "up"
    disliked = dict(signal, question="How often do health checks run?", answer="Hourly [5].")
    disliked["feedback"] = "down"
    stopped = dict(signal, question="Where are the backups written?", answer="", feedback="")
    wrong = dict(signal, question="What colour is the sky on Mars?", answer="butterscotch [5].")
    wrong["feedback"] = ""
    conv_id = save(ws, "proxy questions", [port, signal, disliked, stopped, wrong])

    assert cli(ws, "import", "--conversations", conv_id, "--kb", "docs", "--name", "chat") == 0
    out = capsys.readouterr().out
    assert "1 conversation, 5 turns: 3 to import (1 with the user's corrected answer" in out
    assert (
        "2 turns skipped: 1 rated thumbs-down without a corrected answer; 1 without an answer"
        in out
    )
    dataset = datasets(ws).open("chat")
    examples = {e["question"]: e for e in dataset.examples()}
    assert set(examples) == {
        "Which port does the reverse proxy listen on by default?",
        "Which signal reloads the proxy routes?",
    }
    corrected = examples["Which port does the reverse proxy listen on by default?"]
    assert corrected["answer"] == "8443" and corrected["question_origin"] == "conversation"
    assert corrected["import_ref"] == f"conversation {conv_id} turn 1"
    # The user's cited answer is the answer stage, cited with the new trace's number.
    gold = corrected["gold_numbers"][0]
    assert corrected["record"]["answer"] == (f"The proxy listens on port 8443 by default [{gold}].")
    assert gold in corrected["record"]["results"] and "cited_note" not in corrected
    assert examples["Which signal reloads the proxy routes?"]["answer"] == "`SIGHUP`"
    # The model's wrong answer is rejected like any imported pair, with its reason.
    (rejection,) = dataset.rejections()
    assert rejection["reason"] == "answer_not_found" and rejection["answer"] == "butterscotch"
    assert rejection["import_ref"] == f"conversation {conv_id} turn 5"
    assert validate(dataset) == []
    out_file = ws.layout.root / "chat.jsonl"
    assert cli(ws, "export", "chat", "--out", str(out_file)) == 0
    assert len(out_file.read_text("utf-8").splitlines()) == 4  # two rows per example

    # A second import of the same conversation adds nothing and says so.
    assert cli(ws, "import", "--conversations", "all", "--kb", "docs", "--name", "chat") == 0
    assert "3 of these were imported into 'chat' before." in capsys.readouterr().out
    assert len(dataset.examples()) == 2 and len(dataset.rejections()) == 1


def test_turns_of_another_knowledge_base_are_skipped_and_named(ws: Workspace) -> None:
    signal, _ = turn(
        ws,
        "Which signal reloads the proxy routes?",
        "SIGHUP",
        "Send the process `SIGHUP` to reload the routes",
    )
    signal["info"]["knowledge_base"]["name"] = "recipes"
    store = ConversationStore(ws.layout.root / "other-kb")
    conv = store.new("from recipes", kb="recipes")
    conv.turns = [signal]
    store.save(conv)
    found = pairs_from_conversations(store, [conv.id], "docs")
    assert not found.pairs
    assert found.skipped_sentence() == (
        "1 turn skipped: 1 asked of another knowledge base ('recipes': 1)."
    )


def test_missing_empty_and_damaged_conversations_are_sentences(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ConversationStore(tmp_path / "conversations")
    with pytest.raises(NothingToImport, match="no saved conversations"):
        pairs_from_conversations(store, ["all"], "docs")
    empty = store.new("nothing asked")
    store.save(empty)
    with pytest.raises(NothingToImport, match=r"\(“nothing asked”\) has no questions to import"):
        pairs_from_conversations(store, [empty.id], "docs")
    with pytest.raises(NothingToImport, match="have no questions to import"):
        pairs_from_conversations(store, ["all"], "docs")
    with pytest.raises(ConversationNotFound, match="No saved conversation '20990101-x'; `cotrag"):
        pairs_from_conversations(store, ["20990101-x"], "docs")
    (store.folder / "20990101-000000-aaaaaa.json").write_text('{"title": "x"}', "utf-8")
    (store.folder / "20990101-000000-bbbbbb.json").write_text('{"id": "b", "turns": 3}', "utf-8")
    with pytest.raises(ConversationDamaged, match=r"aaaaaa.json is damaged \(no 'id'\)"):
        pairs_from_conversations(store, ["20990101-000000-aaaaaa"], "docs")
    with pytest.raises(ConversationDamaged, match=r"bbbbbb\.json is damaged .*turns are not"):
        store.load("20990101-000000-bbbbbb")
    # Importing all leaves damaged files out with a warning each instead of failing.
    good = Conversation("20990102-000000-cccccc", "ok", 0.0, "docs", "", [{"question": "Q?"}])
    store.save(good)
    found = pairs_from_conversations(store, ["all"], "docs")
    assert found.conversations == 2 and len(found.warnings) == 2
    assert found.skipped == {"no_answer": 1}

    # The CLI says each of these in a sentence, and never half-imports.
    assert cli(ws, "import", "--conversations", "nope-1", "--kb", "docs", "--name", "x") == 1
    assert "No saved conversation 'nope-1'" in capsys.readouterr().err
    assert cli(ws, "import", "--kb", "docs", "--name", "x") == 1
    assert "or --conversations ID" in capsys.readouterr().err
    file = tmp_path / "qa.jsonl"
    file.write_text(json.dumps({"question": "Q?", "answer": "A"}) + "\n", "utf-8")
    assert (
        cli(ws, "import", str(file), "--conversations", "all", "--kb", "docs", "--name", "x") == 1
    )
    assert "not both" in capsys.readouterr().err
    assert not datasets(ws).exists("x")


def test_the_cli_lists_the_conversations_it_can_import(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    conv_id = save(ws, "listed", [{"question": "Q?", "answer": "A [1].", "feedback": "up"}])
    assert cli(ws, "conversations") == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(conv_id))
    assert "1 turns" in line and "✓1 ✗0" in line and line.endswith("listed")
