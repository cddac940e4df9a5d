"""Hand edits of an example's <results>: a real dataset of traces from a real knowledge
base; after each edit, validation and the training export must still take the example."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from small_docs import tiny_workspace

from core.agent.parser import trace_errors
from core.agent.record import RunRecord
from core.dataset import export as exporting
from core.dataset.editing import (
    EditRejected,
    ResultEntry,
    edited,
    renumber_citations,
    replace_example,
    results_entries,
)
from core.dataset.service import datasets, generator
from core.dataset.spec import GenerateSpec
from core.dataset.storage import Dataset
from core.dataset.validate import validate
from core.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = tiny_workspace(tmp_path_factory.mktemp("edit"), examples=4)
    assert isinstance(workspace, Workspace)
    yield workspace
    workspace.close()


@pytest.fixture
def dataset(ws: Workspace) -> Dataset:
    return datasets(ws).open("tiny")


def proxy_definition(dataset: Dataset) -> dict[str, Any]:
    """The example whose source is proxy.md's first chunk (the trace also shows its second)."""
    return next(e for e in dataset.examples() if e["answer"] == "reverse proxy")


def number_of(record: RunRecord, label: str) -> int:
    return next(n for n, hit in record.passages.items() if hit.label == label)


def same(example: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``edited`` with everything but ``changes`` as the example has it."""
    fields: dict[str, Any] = {
        "question": example["question"],
        "answer": example["answer"],
        "cited": example["record"]["answer"],
    }
    fields.update(changes)
    return edited(example, **fields)


def test_adding_a_passage_and_a_reason_rewrites_trace_spans_blocks_and_answer_stage(
    dataset: Dataset, tmp_path: Path
) -> None:
    example = proxy_definition(dataset)
    record = RunRecord.from_dict(example["record"])
    gold = example["gold_numbers"][0]
    other = number_of(record, "proxy.md#1")
    assert results_entries(record) == [
        ResultEntry(gold, results_entries(record)[0].reason)
    ] and results_entries(record)[0].reason.startswith("it says")

    new = same(
        example,
        results=[
            ResultEntry(gold, "it defines a reverse proxy"),
            ResultEntry(other, "  it says   how the proxy checks its backends "),
        ],
    )
    after = RunRecord.from_dict(new["record"])
    block = f"<results>\n[{gold}] it defines a reverse proxy\n[{other}] it says how the proxy checks its backends\n</results>"
    assert after.trace.endswith(block) and "".join(s.text for s in after.spans) == after.trace
    assert after.spans[-1].author == "model" and after.spans[-1].text.endswith(block)
    assert (
        after.blocks[-2]["tag"] == "results"
        and f"[{other}] it says how" in after.blocks[-2]["text"]
    )
    assert after.results == [gold, other] and after.results_source == "results"
    assert not trace_errors(after.trace)
    shown = after.messages["answer"][1]["content"]
    assert f"[{gold}] proxy.md#0" in shown and f"[{other}] proxy.md#1" in shown
    assert new["gold_numbers"] == [gold] and new["status"] == "edited"
    # Everything outside the results block is as it was.
    assert after.trace.split("<results>")[0] == record.trace.split("<results>")[0]

    replace_example(dataset, new)
    assert validate(dataset) == []
    rows = [r for r in exporting.rows(new)]
    search = rows[0]["messages"][-1]["content"]
    masked = "".join(search[a:b] for a, b in rows[0]["train_spans"])
    assert f"[{other}] it says how the proxy checks its backends" in masked
    assert "<query_res>" not in masked
    # Undo brings the example back as it was.
    assert dataset.undo()
    assert proxy_definition(dataset) == example


def test_results_that_break_the_example_are_refused_with_a_sentence(dataset: Dataset) -> None:
    example = proxy_definition(dataset)
    record = RunRecord.from_dict(example["record"])
    gold = example["gold_numbers"][0]
    other = number_of(record, "proxy.md#1")
    cases = [
        ([ResultEntry(99, "x")], "Passage 99 was not shown in this trace"),
        ([], "at least one passage"),
        ([ResultEntry(gold, "a <b> tag")], "must not contain '<'"),
        ([ResultEntry(gold, "x" * 121)], "121 characters"),
        ([ResultEntry(gold), ResultEntry(gold)], "twice"),
        ([ResultEntry(other, "health checks")], "contains the answer “reverse proxy”"),
    ]
    for results, message in cases:
        with pytest.raises(EditRejected, match=message):
            same(example, results=results)
    # The cited answer may only cite passages of the results.
    with pytest.raises(EditRejected, match=rf"cites \[{other}\], not among the results"):
        same(example, cited=f"A reverse proxy forwards requests [{gold}][{other}].")
    assert proxy_definition(dataset) == example  # nothing was written


def test_the_source_follows_the_results_to_the_passage_with_the_new_answer(
    dataset: Dataset,
) -> None:
    example = proxy_definition(dataset)
    record = RunRecord.from_dict(example["record"])
    other = number_of(record, "proxy.md#1")
    new = edited(
        example,
        question="How often do the proxy's health checks run on a backend?",
        answer="every 10 seconds",
        cited=f"Health checks run every 10 seconds [{other}].",
        results=[ResultEntry(other, "it gives how often health checks run")],
        meta=dataset.meta,
    )
    assert new["gold_numbers"] == [other]
    assert new["chunk_id"] == record.passages[other].id
    assert new["sentence"].startswith("Health checks run every 10 seconds")
    assert new["split"] == example["split"]  # the same document: the same split
    replace_example(dataset, new)
    try:
        assert validate(dataset) == []
        qa = next(exporting.convert(new, "qa"))
        assert qa["context"].startswith("Health checks run every 10 seconds")
    finally:
        dataset.undo()


def test_unchanged_results_keep_the_block_as_the_model_wrote_it(dataset: Dataset) -> None:
    example = proxy_definition(dataset)
    record = RunRecord.from_dict(example["record"])
    free = copy.deepcopy(example)
    # A model may vet in free text; re-saving the question must not reformat that block.
    text = record.trace.replace(record.blocks[-2]["text"], "\npassage 1 is the one\n")
    free["record"]["trace"] = text
    free["record"]["spans"][-1]["text"] = free["record"]["spans"][-1]["text"].replace(
        record.blocks[-2]["text"], "\npassage 1 is the one\n"
    )
    free["record"]["blocks"][-2]["text"] = "\npassage 1 is the one\n"
    entries = results_entries(RunRecord.from_dict(free["record"]))
    assert entries == [ResultEntry(1, "")]
    new = same(free, question="Which server forwards client requests to backend servers?")
    assert new["record"]["trace"] == text
    new = same(free, results=[ResultEntry(1, "it defines it")])
    assert new["record"]["trace"].endswith("<results>\n[1] it defines it\n</results>")


def test_an_unanswerable_example_keeps_its_empty_results(ws: Workspace) -> None:
    spec = GenerateSpec(kb="docs", count=2, unanswerable_share=0.99, validation_share=0.0)
    gen, dataset, _ = generator(ws, "unanswerable", spec, None)
    list(gen.run())
    example = next(e for e in dataset.examples() if e["unanswerable"])
    number = min(RunRecord.from_dict(example["record"]).passages)
    with pytest.raises(EditRejected, match="documents do not say"):
        same(example, results=[ResultEntry(number, "x")])
    assert same(example, results=[])["record"]["results"] == []


def test_renumbering_citations() -> None:
    assert renumber_citations("A [5] and B [5, 6].", {5: 1, 6: 3}) == "A [1] and B [1, 3]."
    assert renumber_citations("A [5] and B [7].", {5: 1}) is None
    assert renumber_citations("No citation.", {5: 1}) is None


def test_the_edited_file_stays_one_json_object_per_line(dataset: Dataset) -> None:
    example = proxy_definition(dataset)
    gold = example["gold_numbers"][0]
    replace_example(dataset, same(example, results=[ResultEntry(gold, "it defines it")]))
    try:
        lines = dataset.examples_file.read_text("utf-8").splitlines()
        assert all(isinstance(json.loads(line), dict) for line in lines)
        assert not dataset.damaged()
    finally:
        dataset.undo()
