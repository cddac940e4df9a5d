"""Tuning the retriever's embedder: real sentence-transformers steps on a tiny dataset."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from small_docs import hold_out_fewest, tiny_workspace

from core.knowledge import embedder_catalog
from core.training.embedder_data import Corpus, check_embedder_job, pair_of
from core.training.embedder_trainer import recall_at, train_embedder, validation_loss
from core.training.events import (
    Checkpoint,
    Done,
    Eval,
    Preparing,
    Started,
    Step,
    WorkerEvent,
)
from core.training.process import TrainProcess
from core.training.runs import RunStore
from core.training.spec import SpecError, TrainSpec
from core.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = tiny_workspace(tmp_path_factory.mktemp("embedder"), examples=12)
    assert isinstance(workspace, Workspace)
    hold_out_fewest(workspace, "tiny", keep=4)
    yield workspace
    workspace.close()


def tiny_spec(**changes: Any) -> TrainSpec:
    spec = TrainSpec(dataset="tiny").with_preset("embedder")
    values: dict[str, Any] = {
        "learning_rate": 1e-4,
        "max_steps": 8,
        "batch_size": 4,
        "warmup_steps": 1,
        "eval_every": 4,
        "checkpoint_every": 2,
        "eval_passages": 50,
        "validation_share": 0.4,
    }
    values.update(changes)
    for key, value in values.items():
        setattr(spec, key, value)
    return spec


def test_pairs_take_the_gold_chunk_and_the_real_distractors(ws: Workspace) -> None:
    from core.dataset.storage import DatasetStore

    dataset = DatasetStore(ws.layout.datasets).open("tiny")
    example = dataset.examples()[0]
    pair = pair_of(example, ws.store.get("docs"))
    assert not isinstance(pair, str)
    gold = ws.store.get("docs").get_chunk(example["chunk_id"])
    assert gold.text in pair.positive
    assert example["chunk_id"] in pair.gold_ids
    shown = [h for r in example["record"]["retrievals"] for h in r["hits"]]
    others = [h for h in shown if h["id"] not in pair.gold_ids and h["text"] != gold.text]
    assert len(pair.negatives) == len({h["text"] for h in others})
    assert all(gold.text not in n for n in pair.negatives)
    assert pair_of({**example, "unanswerable": True}, None) == "unanswerable"


def test_a_tiny_run_lowers_the_loss_and_raises_recall_on_its_pairs(ws: Workspace) -> None:
    spec = tiny_spec(max_steps=12, eval_every=0, checkpoint_every=0)
    checked = check_embedder_job(ws.layout, spec)
    assert checked.train and checked.corpus.ids
    # Searched among the training questions' own gold chunks and distractors.
    texts = [p.positive for p in checked.train] + [n for p in checked.train for n in p.negatives]
    raws = [p.positive_text for p in checked.train] + [
        t for p in checked.train for t in p.negative_texts
    ]
    ids = [f"p{i}" for i in range(len(texts))]
    corpus = Corpus(ids, texts, raws)
    run = RunStore(ws.layout).create("in-process", spec)
    events: list[WorkerEvent] = []
    from sentence_transformers import SentenceTransformer

    before_model = SentenceTransformer(str(checked.base_path), device="cpu")
    before = recall_at(before_model, checked.train, corpus, (1,))
    loss_before = validation_loss(before_model, checked.train, spec, "cpu")
    outcome = train_embedder(run, checked, events.append, lambda: False)
    after = recall_at(outcome.model, checked.train, corpus, (1,))
    loss_after = validation_loss(outcome.model, checked.train, spec, "cpu")
    assert outcome.state == "done" and outcome.step == 12
    # The same batches, the same negatives: the contrastive loss on the training pairs falls.
    assert loss_before is not None and loss_after is not None
    assert loss_after < 0.85 * loss_before, (loss_before, loss_after)
    assert after["recall@1"] >= before["recall@1"]
    assert after["recall@1"] > 0.8, (before, after)
    assert isinstance(events[0], Preparing) and any(isinstance(e, Started) for e in events)
    evals = [e for e in events if isinstance(e, Eval)]
    assert evals[0].step == 0 and evals[-1].step == 12
    assert set(evals[0].recall or {}) >= {"recall@1", "recall@5", "recall@10"}


def test_the_worker_tunes_registers_and_resumes(ws: Workspace) -> None:
    run = RunStore(ws.layout).create("tuned-emb", tiny_spec())
    proc = TrainProcess(run, ws.layout)
    proc.start()
    seen: list[WorkerEvent] = []

    def on_event(event: WorkerEvent) -> None:
        seen.append(event)
        if isinstance(event, Checkpoint) and event.step == 2:
            proc.cancel()

    outcome = proc.wait(on_event)
    assert outcome.state == "cancelled", run.log_file.read_text()[-3000:]
    assert run.latest_checkpoint() is not None
    again = TrainProcess(run, ws.layout, resume=True)
    again.start()
    events: list[WorkerEvent] = []
    outcome = again.wait(events.append)
    assert outcome.state == "done", run.log_file.read_text()[-3000:]
    assert isinstance(outcome.final, Done)
    started = next(e for e in events if isinstance(e, Started))
    assert started.start_step == outcome.final.metrics["steps"] - len(
        [e for e in events if isinstance(e, Step)]
    )
    assert started.start_step >= 2
    # The base's recall from the first start is kept, not measured again.
    assert not any(isinstance(e, Eval) and e.step == 0 for e in events)
    metrics = outcome.final.metrics
    assert metrics["recall_before"] and metrics["recall_after"]
    assert outcome.final.kind == "embedder"
    path = embedder_catalog.resolve(ws.layout, "tuned-emb")
    info = json.loads((path / embedder_catalog.INFO_FILE).read_text())
    assert info["dataset"] == "tiny" and info["metrics"] == metrics
    names = [e.name for e in embedder_catalog.list_embedders(ws.layout)]
    assert "tuned-emb" in names
    # The tuned folder loads in the app's embedder and gives unit vectors.
    from core.knowledge.embedder import Embedder

    vector = Embedder(path, backend="torch").embed_query("how often do backups run?")
    assert abs(sum(v * v for v in vector) - 1.0) < 1e-4


def test_bad_embedder_jobs_are_sentences(ws: Workspace) -> None:
    with pytest.raises(SpecError) as caught:
        check_embedder_job(ws.layout, tiny_spec(base="no-such-embedder", negatives=99))
    text = str(caught.value)
    assert "negatives is 99" in text and "no-such-embedder" in text
    with pytest.raises(SpecError, match="method must be full"):
        check_embedder_job(ws.layout, tiny_spec(method="lora"))
    with pytest.raises(SpecError, match="no-such-dataset"):
        check_embedder_job(ws.layout, tiny_spec(dataset="no-such-dataset"))


def test_a_twin_of_the_answer_is_masked_not_pushed_away(ws: Workspace) -> None:
    """Two questions whose gold chunks have the same text: neither is the other's negative."""
    from sentence_transformers import SentenceTransformer

    from core.training.embedder_data import Pair
    from core.training.embedder_trainer import contrastive_loss, make_batch

    text = "The backup service runs every night at 02:00."
    plain = " ".join(text.split()).casefold()

    def pair(question: str, cid: str) -> Pair:
        return Pair(question, text, [], {cid}, {plain}, "a.md", [], plain)

    model = SentenceTransformer(str(embedder_catalog.resolve(ws.layout, "")), device="cpu")
    batch = make_batch(
        [pair("when do backups run?", "a"), pair("what time is the backup?", "b")],
        0,
        [],
        random.Random(0),
    )
    loss, _ = contrastive_loss(model, batch, "cpu")
    assert float(loss) == pytest.approx(0.0, abs=1e-6)  # each one's only candidate left is its own
    other = Pair(
        "how do I restore?",
        "Run appctl restore.",
        [],
        {"c"},
        {"run appctl restore."},
        "b.md",
        [],
        "run appctl restore.",
    )
    loss, _ = contrastive_loss(
        model,
        make_batch([pair("when do backups run?", "a"), other], 0, [], random.Random(0)),
        "cpu",
    )
    assert float(loss) > 0.0
