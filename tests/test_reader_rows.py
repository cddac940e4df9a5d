"""The reader's training data: constructed answers that lead with the gold span, and the
RAFT-style answer-stage rows (the gold passage among real distractors, or left out).

Real knowledge base (Chroma, the bundled embedder), real constructed traces."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from small_docs import tiny_workspace

from core.agent import prompts
from core.agent.record import RunRecord
from core.dataset.construct import UNANSWERED, stated
from core.dataset.service import datasets
from core.dataset.storage import DatasetStore
from core.dataset.verify import contains
from core.knowledge.types import Hit
from core.training.data import Row, dataset_rows
from core.training.spec import SpecError, TrainSpec
from core.workspace import Workspace

PASSAGE_LINE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = tiny_workspace(tmp_path_factory.mktemp("reader"), examples=8)
    assert isinstance(workspace, Workspace)
    yield workspace
    workspace.close()


def examples(ws: Workspace) -> list[dict[str, Any]]:
    return datasets(ws).open("tiny").examples()


def spec(**changes: Any) -> TrainSpec:
    values: dict[str, Any] = {"dataset": "tiny", "validation_share": 0.0, "seed": 7}
    values.update(changes)
    return TrainSpec(**values)


def shown(row: Row) -> dict[int, str]:
    """The passages of an answer-stage row's prompt, by number (text as the model reads it)."""
    return {int(n): text for n, text in PASSAGE_LINE.findall(row.messages[-2]["content"])}


def as_shown(hit: Hit) -> str:
    """A passage's line as the loop shows it, without its number."""
    return prompts.passages_block([(1, hit)]).removeprefix("[1] ")


def test_a_constructed_answer_states_the_gold_span_first_with_its_citation(
    ws: Workspace,
) -> None:
    answered = [e for e in examples(ws) if not e["unanswerable"]]
    assert answered
    for example in answered:
        answer = RunRecord.from_dict(example["record"]).answer
        gold = example["gold_numbers"][0]
        first = answer[: answer.index("].") + 2]
        assert contains(first, example["answer"]), (first, example["answer"])
        assert first.endswith(f"[{gold}].")
        lead = stated(example["answer"], example["kind"])
        if lead:  # then the source sentence it rests on, cited again
            assert first == f"{lead} [{gold}]."
            assert answer.count(f"[{gold}]") == 2
    # A span the grammar could not hold (a bracket) falls back to the passage's sentence.
    assert stated("a [b]", "lookup") == "" and stated("x" * 200, "lookup") == ""
    assert stated("Run npm ci to install exactly what the lockfile names.", "imported") == ""
    assert stated("`14`", "default") == "The default is `14`"


def test_reader_rows_put_the_gold_passage_at_the_cited_number_among_real_distractors(
    ws: Workspace,
) -> None:
    data = examples(ws)
    by_id = {e["id"]: e for e in data}
    base = dataset_rows(datasets(ws).open("tiny"), spec())
    rows = dataset_rows(datasets(ws).open("tiny"), spec(raft_rows=3, raft_absent_share=0.3))
    assert [r for r in rows if not r.reader] == base, "the dataset's own rows are unchanged"
    reader = [r for r in rows if r.reader]
    gold_rows = [r for r in reader if r.reader == "gold"]
    absent_rows = [r for r in reader if r.reader == "absent"]
    answered = [e for e in data if not e["unanswerable"]]
    assert len(reader) == 3 * len(answered)
    assert gold_rows and absent_rows
    positions = set()
    for row in gold_rows:
        example = by_id[row.id]
        record = RunRecord.from_dict(example["record"])
        gold_text = as_shown(record.passages[example["gold_numbers"][0]])
        passages = shown(row)
        assert len(passages) >= 3, "the gold passage and two distractors at least"
        assert sorted(passages) == list(range(1, len(passages) + 1))
        at = [n for n, text in passages.items() if text == gold_text]
        assert len(at) == 1
        answer = row.messages[-1]["content"]
        assert {int(n) for n in re.findall(r"\[(\d+)\]", answer)} == set(at)
        assert contains(answer, example["answer"])
        positions.add((at[0], len(passages)))
        # The loop's own answer-stage prompt (train/infer parity): same system message,
        # the user message rendered from these passages and this question.
        assert row.messages[0] == record.messages["answer"][0]
        assert row.messages[1]["content"].endswith(f"Question: {example['question']}")
        assert row.stage == "answer" and row.train_spans == [[0, len(answer)]]
    assert len(positions) > 1, "the gold passage moves"
    for row in absent_rows:
        example = by_id[row.id]
        record = RunRecord.from_dict(example["record"])
        gold_text = as_shown(record.passages[example["gold_numbers"][0]])
        passages = shown(row)
        assert passages and gold_text not in passages.values()
        assert not any(contains(text, example["answer"]) for text in passages.values())
        assert row.messages[-1]["content"] == UNANSWERED


def test_reader_rows_are_the_same_for_the_same_seed_and_stay_out_of_validation(
    ws: Workspace, tmp_path: Path
) -> None:
    dataset = datasets(ws).open("tiny")
    chosen = spec(raft_rows=2, raft_absent_share=0.5)
    once = [r for r in dataset_rows(dataset, chosen) if r.reader]
    again = [r for r in dataset_rows(dataset, chosen) if r.reader]
    other = [r for r in dataset_rows(dataset, replace(chosen, seed=8)) if r.reader]
    assert once == again
    assert [r.messages for r in other] != [r.messages for r in once]
    # With a document held out, the reader rows of its examples are not added.
    rows = dataset.examples()
    out = str(rows[0]["source"])
    copy = DatasetStore(tmp_path).create("held", dict(dataset.meta))
    for example in rows:
        copy.append_example(
            {**example, "split": "validation" if example["source"] == out else "train"}
        )
    held = dataset_rows(copy, chosen)
    validation = {r.id for r in held if r.split == "validation"}
    assert validation == {str(e["id"]) for e in rows if e["source"] == out}
    assert not [r for r in held if r.reader and r.split == "validation"]
    assert {r.id for r in held if r.reader} <= {r.id for r in held} - validation
    # Search-only runs get none; off by default.
    assert not [r for r in dataset_rows(dataset, replace(chosen, stages="search")) if r.reader]
    assert not [r for r in dataset_rows(dataset, spec()) if r.reader]


def test_reader_fields_are_checked() -> None:
    with pytest.raises(SpecError, match="raft_rows"):
        spec(raft_rows=-1).check()
    with pytest.raises(SpecError, match="raft_absent_share"):
        spec(raft_absent_share=1.5).check()
    assert prompts.template("answer_system")  # the prompt the rows are rendered with
