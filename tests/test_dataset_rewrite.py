"""The rewrite step: the question writer restates a verified question; the restatement is
kept only when it does not copy the source sentence, keeps the answer out and still finds
its source chunk. The writer is the real HTTP teacher client against a loopback
OpenAI-style server (so the test decides what it writes); the knowledge base, embedder and
search are real."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai_stub import Reply, completion, serve
from small_docs import indexed_workspace

from core.agent.record import RunRecord
from core.dataset import export as exporting
from core.dataset.rewrite import Rewriter, overlap
from core.dataset.service import datasets, generator
from core.dataset.spec import GenerateSpec
from core.dataset.teacher import REWRITE_SYSTEM, HttpTeacher
from core.dataset.validate import validate
from core.dataset.verify import Verifier
from core.errors import CotragError
from core.workspace import Workspace

SENTENCE = (
    "The proxy listens on port 8443 by default and reads its routes from `routes.yaml` at start."
)
TEMPLATE = (
    'In the documentation about Proxy, what fills the blank: "The proxy listens on port ___ '
    'by default and reads its routes from `routes.yaml` at start."?'
)
GOOD = "Which port does the reverse proxy accept connections on if nobody configures one?"
COPY = "On which port does the proxy listen by default and read its routes from routes.yaml?"
ELSEWHERE = "How many copies does the nightly backup job keep before it deletes archives?"
LEAK = "Is 8443 the port that the reverse proxy accepts connections on?"
ROUTES = "Where does the reverse proxy load its routing table from when it starts?"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = indexed_workspace(tmp_path_factory.mktemp("rw"))
    assert isinstance(workspace, Workspace)
    yield workspace
    workspace.close()


def rewriting(request: dict[str, Any]) -> tuple[str, str] | None:
    """The question and answer of a rewrite request (None: another kind of request)."""
    messages = request["messages"]
    if messages[0]["content"] != REWRITE_SYSTEM:
        return None
    lines = messages[-1]["content"].splitlines()
    return lines[0].removeprefix("Question: "), lines[1].removeprefix("Answer (do not write it): ")


def writer_saying(*replies: str) -> Any:
    """A stub answering rewrite requests with ``replies`` in turn (HTTP 500 for ``""``)."""
    queue = list(replies)

    def answer(request: dict[str, Any], headers: dict[str, str]) -> Reply:
        assert rewriting(request) is not None
        text = queue.pop(0)
        return (500, "{}", 0.0) if not text else (200, completion(text), 0.0)

    return answer


def test_overlap_is_the_share_of_the_questions_content_words_in_the_sentence() -> None:
    assert overlap(TEMPLATE, SENTENCE) == 1.0
    assert overlap(COPY, SENTENCE) > 0.8
    assert overlap(GOOD, SENTENCE) < 0.4
    assert overlap("What is it?", SENTENCE) == 0.0


def test_the_rewrite_step_keeps_a_good_rewrite_and_rejects_copies_leaks_and_lost_sources(
    ws: Workspace,
) -> None:
    kb = ws.store.get("docs")
    chunk_id, text = next((cid, t) for cid, t, _ in kb.iter_chunks() if "8443" in t)
    verifier = Verifier(lambda q, n: kb.search(q, k=n), k=1)
    rejection, rank = verifier.check(TEMPLATE, "8443", text, chunk_id)
    assert rejection is None and rank == 1
    with serve(writer_saying(GOOD, COPY, TEMPLATE, ELSEWHERE, LEAK, "")) as url:
        step = Rewriter(HttpTeacher(url, "writer", retries=0), verifier, max_overlap=0.6)
        outcomes = [
            step.restate(TEMPLATE, "8443", SENTENCE, text, chunk_id, rank) for _ in range(6)
        ]
    good, copy, same, elsewhere, leak, failed = outcomes
    assert good.rewritten and good.question == GOOD and good.reason == "" and good.rank == 1
    assert good.source_question == TEMPLATE and good.overlap < 0.6 <= good.source_overlap
    assert (copy.reason, same.reason) == ("copied", "copied")
    assert elsewhere.reason == "round_trip"  # the search for it finds the backups chunk
    assert leak.reason == "answer_in_question"
    assert failed.reason == "writer_failed" and failed.attempt == ""
    for kept in (copy, same, elsewhere, leak, failed):
        assert not kept.rewritten and kept.question == TEMPLATE and kept.rank == rank
        assert kept.overlap == kept.source_overlap == 1.0
    assert copy.attempt == COPY and elsewhere.attempt == ELSEWHERE
    assert copy.attempt_overlap is not None and copy.attempt_overlap > 0.6
    assert good.attempt_overlap == good.overlap and failed.attempt_overlap is None
    # A rewrite whose trace then fails gives way to the verified question.
    back = good.not_kept("trace_failed")
    assert (back.question, back.rank, back.rewritten) == (TEMPLATE, rank, False)
    assert back.overlap == back.source_overlap and back.attempt == GOOD


def test_generation_with_the_rewrite_step_traces_the_kept_question_and_reports_it(
    ws: Workspace,
) -> None:
    """The writer restates the routes.yaml question well and copies every other one back: the
    first is traced with the rewrite, the others keep their question, and the report and
    the card count both and show the overlap before and after."""

    def answer(request: dict[str, Any], headers: dict[str, str]) -> Reply:
        asked = rewriting(request)
        if asked is None:
            return 200, completion(""), 0.0  # no question of its own: templates are used
        question, gold = asked
        return 200, completion(ROUTES if gold == "routes.yaml" else question), 0.0

    spec = GenerateSpec(
        kb="docs", count=20, unanswerable_share=0.0, kinds={"lookup": 1.0}, rewrite=True
    )
    with serve(answer) as url:
        teacher = HttpTeacher(url, "writer", writes_pairs=False)
        gen, dataset, _ = generator(ws, "rewritten", spec, teacher)
        list(gen.run())
    examples = dataset.examples()
    rewritten = [e for e in examples if e["question_rewritten"]]
    assert [e["gold_answer"] for e in rewritten] == ["routes.yaml"]
    example = rewritten[0]
    assert example["question"] == ROUTES and "fills the blank" in example["source_question"]
    assert example["source_overlap"] > 0.6 >= example["rewrite_overlap"]
    assert RunRecord.from_dict(example["record"]).question == ROUTES
    others = [e for e in examples if not e["question_rewritten"]]
    assert others and all(e["rewrite_reason"] == "copied" for e in others)
    assert all(e["question"] == e["source_question"] for e in others)
    assert validate(dataset) == []
    figures = exporting.report(dataset)["rewrite"]
    assert figures["tried"] == len(examples) and figures["rewritten"] == 1
    assert figures["reasons"] == {"copied": len(others)}
    assert figures["overlap_median_after"] <= figures["overlap_median_before"]
    assert sum(figures["overlap_after"].values()) == len(examples)
    card = exporting.card(dataset, exporting.report(dataset))
    assert f"Rewritten: 1 of {len(examples)}" in card and "copied the source" in card
    assert json.loads(json.dumps(examples[0]))["source_question"]


def test_rewriting_needs_a_question_writer(ws: Workspace) -> None:
    spec = GenerateSpec(kb="docs", count=2, rewrite=True)
    with pytest.raises(CotragError, match="question writer"):
        generator(ws, "no-writer", spec, None)
    with pytest.raises(CotragError, match="overlap"):
        GenerateSpec(kb="docs", rewrite_max_overlap=0.0)
    assert "no-writer" not in datasets(ws).names()  # nothing was created


def test_the_cli_asks_for_the_step_and_prints_its_figures(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    def answer(request: dict[str, Any], headers: dict[str, str]) -> Reply:
        asked = rewriting(request)
        if asked is None:
            return 200, completion(""), 0.0
        return 200, completion(ROUTES if asked[1] == "routes.yaml" else asked[0]), 0.0

    root = str(ws.layout.root)
    args = ["--data-dir", root, "dataset", "generate", "--kb", "docs", "--count", "3"]
    args += ["--kinds", "lookup", "--unanswerable", "0", "--rewrite"]
    with serve(answer) as url:
        writer = ["--teacher", url, "--teacher-model", "writer"]
        code = main([*args, *writer, "--name", "cli-rw"])
        code_max = main([*args, *writer, "--name", "cli-rw-max", "--rewrite-max-overlap", "0.1"])
    out = capsys.readouterr().out
    assert code == 0 and code_max == 0
    assert "rewritten in the writer's words: 1 of 3 (not kept: copied the source: 2)" in out
    # With the bound at 0.1 the same rewrite shares too many words with its sentence.
    assert "rewritten in the writer's words: 0 of 3 (not kept: copied the source: 3)" in out
    assert datasets(ws).open("cli-rw-max").meta["spec"]["rewrite_max_overlap"] == 0.1
    assert main([*args, "--name", "cli-none", "--teacher", "none"]) == 1
    assert "needs a question writer" in capsys.readouterr().err
