"""The model's own runs as traces (rejection sampling), on the small real knowledge base.

What is kept is decided with the FAKE ScriptedBackend where a test needs a run that is
right and one that is wrong for sure; the pass, its resume, its Cancel and generation's
sampling run the real bundled model (low token bounds, few questions)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fakes import ScriptedBackend
from small_docs import indexed_workspace

from core.agent.loop import Agent
from core.agent.record import RunRecord
from core.cli import main
from core.dataset import export as exporting
from core.dataset.pairs import ImportedPair
from core.dataset.progress import Accepted, Rejected
from core.dataset.sampling import (
    NONE_KEPT,
    SAMPLED,
    SampleProgress,
    Sampler,
    SampleSettings,
    judge,
    sample_dataset,
    sample_seeds,
)
from core.dataset.service import datasets, generator, sample_pass
from core.dataset.spec import GenerateSpec
from core.dataset.storage import Dataset
from core.dataset.validate import validate
from core.errors import CotragError
from core.workspace import Workspace

PORT = ImportedPair("Which port does the reverse proxy listen on by default?", "8443")
SIGNAL = ImportedPair("Which signal makes the proxy reload its routes?", "SIGHUP")
VET_ALL = "<think>The passages say it.</think>\n<results>\n[1] [2] [3] [4]\n</results>"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = indexed_workspace(tmp_path_factory.mktemp("sampling"))
    assert isinstance(workspace, Workspace)
    loop = workspace.config.loop
    loop.max_rounds, loop.max_block_tokens, loop.max_total_tokens = 2, 24, 64
    workspace.config.generation.answer_max_tokens = 32
    workspace.config.generation.n_threads = 1  # a busy machine: one thread waits least
    yield workspace
    workspace.close()


def imported(ws: Workspace, name: str, pairs: list[ImportedPair]) -> Dataset:
    spec = GenerateSpec(kb="docs", count=len(pairs), unanswerable_share=0.0, seed=5)
    gen, dataset, _ = generator(ws, name, spec, None)
    list(gen.run_pairs(pairs))
    assert len(dataset.examples()) == len(pairs)
    return dataset


def scripted(ws: Workspace, outputs: list[str], **settings: object) -> Sampler:
    agent = Agent(
        ScriptedBackend(outputs, supports_grammar=False),
        ws.retriever("docs"),
        ws.config,
        first_query="question",
    )
    return Sampler(agent, SampleSettings(**settings))  # type: ignore[arg-type]


def kept_right(example: dict[str, object]) -> bool:
    record = RunRecord.from_dict(example["record"])  # type: ignore[arg-type]
    gold = [str(example["chunk_id"])]
    return judge(record, gold, str(example["answer"]))[0] == ""


def test_the_shortest_right_run_wins_and_trains_like_a_constructed_one(ws: Workspace) -> None:
    dataset = imported(ws, "scripted", [PORT])
    before = dataset.examples()[0]
    # Search turns first (they share the cached prefix), then the answer stages.
    sampler = scripted(
        ws,
        [
            VET_ALL,
            VET_ALL,
            VET_ALL,
            "It listens on port 8443 by default [1].",
            "Port 8443 [1].",
            "It uses 443 [1].",
        ],
        samples=3,
        seed=5,
    )
    events = list(sample_dataset(dataset, sampler))
    example = dataset.examples()[0]
    assert [type(e) for e in events] == [Accepted, SampleProgress]
    assert example["trace_origin"] == SAMPLED and kept_right(example)
    seeds = sample_seeds(5, before["seed_key"], 3)
    info = example["sampling"]
    assert info["seed"] == seeds[1] and info["kept"] == 2
    assert [t["why"] for t in info["tried"]] == ["", "", "wrong_answer"]
    assert example["record"]["answer"] == "Port 8443 [1]."
    assert example["id"] == before["id"] and example["question"] == before["question"]
    assert validate(dataset) == []
    # Training reads it as it reads a constructed example: a search row and an answer row.
    stages = [row["stage"] for row in exporting.rows(example)]
    assert stages == [row["stage"] for row in exporting.rows(before)] == ["search", "answer"]
    figures = dataset.meta["sampling"]
    assert (figures["questions"], figures["kept"], figures["runs"], figures["runs_kept"]) == (
        1,
        1,
        3,
        2,
    )
    assert figures["keep_rate"] == 1.0
    card = exporting.card(dataset, exporting.report(dataset))
    assert "traces sampled: 1" in card and "keep rate 100%" in card


def test_a_question_with_no_right_run_is_dropped_or_kept_constructed_and_counted(
    ws: Workspace,
) -> None:
    dataset = imported(ws, "drop", [PORT, SIGNAL])
    missed = "<think>Nothing.</think>\n<results>\nnone\n</results>"
    # PORT: one run misses the gold passage (never answered), one answers wrong → dropped.
    # SIGNAL: (fallback) the same with fallback constructed on the other dataset below.
    sampler = scripted(
        ws,
        [missed, VET_ALL, "Port 80 [1].", VET_ALL, VET_ALL, "SIGHUP [2].", "SIGHUP."],
        samples=2,
        fallback="drop",
    )
    events = list(sample_dataset(dataset, sampler))
    rejected = [e for e in events if isinstance(e, Rejected)]
    assert len(rejected) == 1 and rejected[0].reason == NONE_KEPT
    assert "missed_gold" in rejected[0].detail and "wrong_answer" in rejected[0].detail
    left = dataset.examples()
    assert [e["answer"] for e in left] == ["SIGHUP"] and all(kept_right(e) for e in left)
    assert [r["reason"] for r in dataset.rejections()].count(NONE_KEPT) == 1
    figures = dataset.meta["sampling"]
    assert (figures["questions"], figures["kept"], figures["dropped"]) == (2, 1, 1)

    other = imported(ws, "fallback", [PORT])
    constructed = other.examples()[0]
    list(sample_dataset(other, scripted(ws, [missed, missed], samples=2)))
    example = other.examples()[0]
    assert example["record"] == constructed["record"]
    assert example["trace_origin"] == "constructed"
    assert example["sampling"]["outcome"] == "fallback"
    assert other.meta["sampling"]["fallback"] == 1
    assert exporting.report(other)["sampling"]["fallback"] == 1


def test_the_settings_are_checked(ws: Workspace) -> None:
    with pytest.raises(CotragError):
        SampleSettings(samples=0)
    with pytest.raises(CotragError):
        SampleSettings(fallback="maybe")
    with pytest.raises(CotragError):
        GenerateSpec(kb="docs", samples=2, sample_fallback="maybe")


def test_the_bundled_model_samples_a_dataset_cancel_stops_and_a_rerun_goes_on(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = imported(ws, "real", [PORT, SIGNAL])
    cancel = threading.Event()
    job = sample_pass(ws, "real", samples=1, temperature=0.8, cancel=cancel)
    assert job.todo == 2
    for event in job.run():
        if isinstance(event, (Accepted, Rejected)):
            cancel.set()  # Cancel after the first question
    first = dataset.examples()[0]
    assert "sampling" in first and "sampling" not in dataset.examples()[1]
    assert job.dataset.meta["sampling"]["questions"] == 1

    again = sample_pass(ws, "real", samples=1, temperature=0.8)
    assert again.todo == 1  # the decided question is not run again
    list(again.run())
    examples = datasets(ws).open("real").examples()
    assert examples[0] == first and all("sampling" in e for e in examples)
    assert sample_pass(ws, "real").todo == 0
    figures = datasets(ws).open("real").meta["sampling"]
    assert figures["questions"] == 2 and figures["runs"] == 2
    assert figures["kept"] + figures["fallback"] == 2
    assert figures["kept"] == sum(e["trace_origin"] == SAMPLED for e in examples)
    for example in examples:
        if example["trace_origin"] == SAMPLED:
            assert kept_right(example)
            seeds = [t["seed"] for t in example["sampling"]["tried"]]
            assert example["sampling"]["seed"] in seeds
            info = example["record"]["info"]["settings"]["sampling"]
            assert info["seed"] == example["sampling"]["seed"] and info["temperature"] == 0.8
    assert validate(datasets(ws).open("real")) == []
    # The CLI goes on where the passes stopped: nothing is left, and it says what was done.
    assert main(["--data-dir", str(ws.layout.root), "dataset", "sample", "real"]) == 0
    out = capsys.readouterr().out
    assert "0 question(s) to sample" in out and "Sampled 2 question(s) so far" in out


def test_generation_samples_each_accepted_example(ws: Workspace) -> None:
    spec = GenerateSpec(
        kb="docs", count=1, unanswerable_share=0.0, samples=1, sample_temperature=0.5
    )
    gen, dataset, _ = generator(ws, "gen-sampled", spec, None)
    list(gen.run())
    examples = dataset.examples()
    dropped = [r for r in dataset.rejections() if r["reason"] == NONE_KEPT]
    figures = dataset.meta["sampling"]
    assert figures["questions"] == len(examples) + len(dropped) >= 1
    assert all(e["sampling"]["outcome"] in (SAMPLED, "fallback") for e in examples)
    assert all(kept_right(e) for e in examples if e["trace_origin"] == SAMPLED)
    assert validate(dataset) == []
