"""Training for real on the CPU: the bundled model, a tiny dataset from a real knowledge
base, the worker as a child process, peft LoRA steps, llama.cpp's GGUF exports.

One module-scoped data dir holds the knowledge base, the dataset and the dequantized
base model, so the one-time conversion is paid once.
"""

from __future__ import annotations

import copy
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from small_docs import share_base_weights, tiny_workspace

from core.models.installed import ModelRegistry
from core.training.base_models import ensure_hf, resolve_base
from core.training.data import collate, dataset_rows, prepare
from core.training.events import (
    Cancelled,
    Checkpoint,
    Done,
    GuardDone,
    Guarding,
    Started,
    Step,
    WorkerEvent,
)
from core.training.masking import IGNORE, encode
from core.training.preflight import check_job
from core.training.process import TrainProcess
from core.training.runs import RunStore
from core.training.spec import SpecError, TrainSpec
from core.workspace import Workspace

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, base_weights: Path) -> Iterator[Workspace]:
    workspace = tiny_workspace(tmp_path_factory.mktemp("train"))
    share_base_weights(workspace, base_weights)
    assert isinstance(workspace, Workspace)
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def tokenizer(ws: Workspace) -> Any:
    from transformers import AutoTokenizer

    base = resolve_base("default", ws.layout)
    return AutoTokenizer.from_pretrained(str(ensure_hf(base)))


def tiny_spec(**changes: Any) -> TrainSpec:
    values: dict[str, Any] = {
        "dataset": "tiny",
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "learning_rate": 2e-3,
        "max_steps": 6,
        "batch_size": 2,
        "warmup_steps": 1,
        "validation_share": 0.0,
        "eval_every": 0,
        "checkpoint_every": 2,
        "max_seq_len": 2048,
        "exports": ["lora"],
    }
    values.update(changes)
    return TrainSpec(**values)


def start(ws: Workspace, name: str, spec: TrainSpec) -> TrainProcess:
    run = RunStore(ws.layout).create(name, spec)
    proc = TrainProcess(run, ws.layout)
    proc.start()
    return proc


# -- masks -----------------------------------------------------------------------------
def test_labels_fall_exactly_on_the_model_written_text(ws: Workspace, tokenizer: Any) -> None:
    rows = dataset_rows(ws_dataset(ws), tiny_spec())
    search = next(r for r in rows if r.stage == "search")
    spans = search.train_spans
    content = search.messages[-1]["content"]
    assert "<query_res>" in content and spans, "a trace with passages the loop wrote"
    enc = encode(tokenizer, search.messages, spans)
    start = len(enc.text) - len(content) - len("<|im_end|>")
    assert enc.text[start : start + len(content)] == content
    model_chars: set[int] = set()
    for a, b in spans:
        model_chars.update(range(start + a, start + b))
    for token, label, (a, b) in zip(enc.input_ids, enc.labels, enc.offsets, strict=True):
        if label == IGNORE:
            assert a not in model_chars, f"model text {enc.text[a:b]!r} left untrained"
        else:
            assert label == token
            in_tail = a >= start + len(content)
            assert a in model_chars or in_tail, f"loop text {enc.text[a:b]!r} trained"
    # Nothing of a passage is ever trained.
    passages = content.split("<query_res>", 1)[1].split("</query_res>", 1)[0]
    at = start + content.index(passages)
    trained = [(a, b) for (a, b), lab in zip(enc.offsets, enc.labels, strict=True) if lab != IGNORE]
    assert not any(at <= a < at + len(passages) for a, _ in trained)
    # The end-of-turn token is trained when the model wrote the message's end.
    assert enc.labels[-1] == enc.input_ids[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    # And with masking off, the whole assistant message is trained.
    unmasked = encode(tokenizer, search.messages, spans, mask_retrieved=False)
    assert unmasked.trained_tokens > enc.trained_tokens


def ws_dataset(ws: Workspace) -> Any:
    from core.dataset.service import datasets

    return datasets(ws).open("tiny")


def test_the_loss_counts_only_trained_tokens(ws: Workspace, tokenizer: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from core.training.trainer import batch_loss

    base = resolve_base("default", ws.layout)
    model = AutoModelForCausalLM.from_pretrained(str(base.hf_dir))
    prepared = prepare(dataset_rows(ws_dataset(ws), tiny_spec()), tokenizer, tiny_spec())
    batch = collate(prepared.train[:2], int(tokenizer.pad_token_id or 0))
    with torch.no_grad():
        ours, n = batch_loss(model, batch, "cpu")
        ids = torch.tensor(batch.input_ids)
        reference = model(
            input_ids=ids,
            attention_mask=torch.tensor(batch.attention_mask),
            labels=torch.tensor(batch.labels),
        ).loss
    assert n == batch.trained_tokens - sum(labels[0] != IGNORE for labels in batch.labels)
    assert abs(float(ours) / n - float(reference)) < 1e-4


def test_reader_rows_are_encoded_like_the_answer_stage_and_never_set_the_length(
    ws: Workspace, tokenizer: Any
) -> None:
    spec = tiny_spec(raft_rows=2, raft_absent_share=0.5)
    rows = dataset_rows(ws_dataset(ws), spec)
    reader = [r for r in rows if r.reader]
    assert reader
    prepared = prepare(reader, tokenizer, spec)
    assert len(prepared.train) == len(reader)
    for row, enc in zip(reader, prepared.train, strict=True):
        answer = row.messages[-1]["content"]
        trained = tokenizer.decode(
            [t for t, label in zip(enc.input_ids, enc.labels, strict=True) if label != IGNORE]
        )
        assert trained == answer + "<|im_end|>", "the whole answer (and the turn's end) only"
    # A reader row longer than max_seq_len is dropped; it never fails the job's length check.
    long = replace(reader[0], messages=[*reader[0].messages])
    long.messages[1] = {"role": "user", "content": "word " * 400}
    plain = replace(long, reader="")
    short = replace(spec, max_seq_len=128)
    assert (
        prepare([long], tokenizer, short).longest_prompt,
        prepare([long], tokenizer, short).too_long,
    ) == (0, 1)
    assert prepare([plain], tokenizer, short).longest_prompt > 128


# -- checks before anything starts ----------------------------------------------------
def test_a_bad_spec_is_a_sentence_before_anything_starts(ws: Workspace, tokenizer: Any) -> None:
    with pytest.raises(SpecError) as err:
        check_job(ws.layout, tiny_spec(learning_rate=-1.0), lengths=False)
    assert "learning_rate is -1.0" in str(err.value)
    with pytest.raises(SpecError) as err:
        check_job(ws.layout, tiny_spec(dataset="nope"), lengths=False)
    assert "nope" in str(err.value)
    with pytest.raises(SpecError) as err:
        check_job(ws.layout, tiny_spec(max_seq_len=128), tokenizer=tokenizer)
    assert "longest prompt" in str(err.value) and "max_seq_len" in str(err.value)
    with pytest.raises(SpecError) as err:
        TrainSpec.from_dict({"dataset": "tiny", "learning_rte": 1})
    assert "learning_rte" in str(err.value)
    spec = tiny_spec()
    assert TrainSpec.from_dict(spec.to_dict()) == spec
    from core.cli import main

    code = main(
        [
            "--data-dir",
            str(ws.layout.root),
            "train",
            "--dataset",
            "tiny",
            "--set",
            "epochs=-2",
            "--set",
            "max_steps=0",
        ]
    )
    assert code == 1


def test_what_the_worker_would_refuse_on_this_computer_is_found_in_under_a_second(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No GPU visible, whatever this machine has: the worker would refuse unsloth here.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    started = time.monotonic()
    with pytest.raises(SpecError) as err:
        check_job(ws.layout, tiny_spec(engine="unsloth"))  # lengths too: it stops before
    assert time.monotonic() - started < 1.0
    assert "engine is unsloth but no NVIDIA GPU is visible" in str(err.value)
    with pytest.raises(SpecError) as err:
        check_job(ws.layout, tiny_spec(load_in_4bit=True), lengths=False)
    assert "load_in_4bit" in str(err.value) and "no NVIDIA GPU" in str(err.value)
    # A job for Colab is not held to this computer's GPU.
    assert check_job(ws.layout, tiny_spec(engine="unsloth"), lengths=False, here=False)
    assert check_job(ws.layout, tiny_spec(), lengths=False).rows

    from core.cli import main

    before = {run.name for run in RunStore(ws.layout).runs()}
    started = time.monotonic()
    code = main(
        ["--data-dir", str(ws.layout.root), "train", "--dataset", "tiny", "--set", "engine=unsloth"]
    )
    assert code == 1 and time.monotonic() - started < 5.0
    assert "engine is unsloth but no NVIDIA GPU is visible" in capsys.readouterr().err
    assert {run.name for run in RunStore(ws.layout).runs()} == before  # no run was made


# -- a real run, its exports, Cancel, Resume, kill -9 ------------------------------------
def test_a_run_lowers_the_loss_and_every_export_loads_and_generates(ws: Workspace) -> None:
    spec = tiny_spec(max_steps=8, exports=["lora", "f16", "q8_0", "q4_k_m"], checkpoint_every=0)
    proc = start(ws, "full", spec)
    events: list[WorkerEvent] = []
    outcome = proc.wait(events.append)
    assert outcome.state == "done", (outcome, proc.run.log_file.read_text()[-3000:])
    losses = [e.loss for e in events if isinstance(e, Step)]
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2
    started = next(e for e in events if isinstance(e, Started))
    assert started.engine == "torch" and started.device == "cpu"
    entry = ModelRegistry(ws.layout).find("full")
    assert entry is not None
    assert set(entry.variants) == {"lora", "f16", "q8_0", "q4_k_m"}
    assert entry.info["dataset"]["name"] == "tiny" and len(entry.info["dataset"]["hash"]) == 64
    from core.llm.base import Sampling, StreamRequest
    from core.llm.engines import create_backend, model_is_tuned

    prompt = [{"role": "user", "content": "When does the backup service run?"}]
    texts = {}
    for variant in ("default", "full:lora", "full:f16", "full:q8_0", "full:q4_k_m"):
        path = ModelRegistry(ws.layout).resolve(variant) or None
        assert variant == "default" or model_is_tuned(path)
        backend = create_backend(path, ws.config.generation)
        backend.load()
        session = backend.session(backend.chat_prompt(prompt))
        request = StreamRequest(max_tokens=24, sampling=Sampling(temperature=0.0))
        texts[variant] = "".join(c.text for c in session.stream(request))
        backend.close()
        assert texts[variant].strip(), variant
    # The adapter on the very same base weights changes what the model writes.
    assert texts["full:lora"] != texts["default"]
    # `cotrag ask --model NAME` runs the tuned model through the registry.
    assert ws.model_path("full").name == "model.q8_0.gguf"


def test_cancel_checkpoints_and_resume_continues(ws: Workspace) -> None:
    proc = start(ws, "stop-go", tiny_spec(max_steps=4, batch_size=1, checkpoint_every=2))
    cancelled_at: list[int] = []

    def on_event(event: WorkerEvent) -> None:
        if isinstance(event, Checkpoint) and not cancelled_at:
            cancelled_at.append(event.step)
            proc.cancel()

    outcome = proc.wait(on_event)
    assert outcome.state == "cancelled" and outcome.exit_code == 3
    run = proc.run
    assert run.state == "cancelled"
    assert isinstance(outcome.final, Cancelled)
    stopped = outcome.final.step
    assert 2 <= stopped < 4
    assert run.latest_checkpoint() is not None
    assert run.latest_checkpoint().name == f"step-{stopped:06d}"  # type: ignore[union-attr]
    again = TrainProcess(run, ws.layout, resume=True)
    again.start()
    events: list[WorkerEvent] = []
    outcome = again.wait(events.append)
    assert outcome.state == "done", run.log_file.read_text()[-3000:]
    started = next(e for e in events if isinstance(e, Started))
    assert started.start_step == stopped
    steps = [e.step for e in events if isinstance(e, Step)]
    assert steps == list(range(stopped + 1, 5))
    assert run.state == "done"


def test_a_killed_worker_leaves_its_checkpoint_and_says_interrupted(ws: Workspace) -> None:
    proc = start(ws, "killed", tiny_spec(max_steps=50, batch_size=1, checkpoint_every=1))

    def on_event(event: WorkerEvent) -> None:
        if isinstance(event, Checkpoint) and event.step >= 2:
            assert proc.proc is not None
            os.kill(proc.proc.pid, signal.SIGKILL)

    outcome = proc.wait(on_event)
    assert outcome.signal == signal.SIGKILL
    assert outcome.state == "interrupted"
    assert "Resume" in outcome.sentence()
    run = RunStore(ws.layout).get("killed")
    assert run.state == "interrupted"
    checkpoint = run.latest_checkpoint()
    assert checkpoint is not None
    import torch

    state = torch.load(checkpoint / "trainer.pt", weights_only=False)
    assert state["step"] >= 2
    assert not list(run.checkpoints.glob(".*.part"))
    assert ModelRegistry(ws.layout).find("killed") is None


# -- the guard after the export ---------------------------------------------------------
def held_out_dataset(ws: Workspace) -> int:
    """A dataset ``held`` with one of the three documents in its validation split; the
    number of its held-out questions."""
    from core.dataset.draws import split_of
    from core.dataset.service import datasets, generator
    from core.dataset.spec import GenerateSpec

    sources = {str(e["source"]) for e in ws_dataset(ws).examples()}
    share = 0.34
    seed = next(
        s for s in range(200) if sum(split_of(x, s, share) == "validation" for x in sources) == 1
    )
    spec = GenerateSpec(
        kb="docs", count=9, validation_share=share, unanswerable_share=0.0, seed=seed
    )
    gen, _, _ = generator(ws, "held", spec, None)
    list(gen.run())
    examples = datasets(ws).open("held").examples()
    return sum(e["split"] == "validation" and not e.get("unanswerable") for e in examples)


@pytest.mark.timeout(1200)  # a training run, then six loop runs: slow on a busy machine
def test_a_finished_run_is_guarded_and_a_worse_model_is_not_made_the_default(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    held = held_out_dataset(ws)
    assert held >= 1
    n = min(held, 2)
    # Short answers and one round keep the guard's nine loop runs quick (the worker reads
    # the data dir's settings).
    saved = copy.deepcopy(ws.config)
    ws.config.generation.answer_max_tokens = 24
    ws.config.loop.max_rounds, ws.config.loop.min_rounds = 1, 0
    ws.config.loop.max_block_tokens, ws.config.loop.max_total_tokens = 24, 96
    ws.save_config()
    try:
        _guarded_run(ws, capsys, n)
    finally:
        ws.config = saved
        ws.save_config()


def _guarded_run(ws: Workspace, capsys: pytest.CaptureFixture[str], n: int) -> None:
    from core.cli import main
    from core.config import load_config
    from core.training.guard import check_model

    spec = tiny_spec(
        dataset="held", max_steps=2, batch_size=1, checkpoint_every=0, guard_questions=n
    )
    assert spec.guard  # on by default
    proc = start(ws, "guarded", spec)
    events: list[WorkerEvent] = []
    outcome = proc.wait(events.append)
    assert outcome.state == "done", proc.run.log_file.read_text()[-3000:]
    progress = [e for e in events if isinstance(e, Guarding)]
    assert progress[-1].index == progress[-1].total == 4 * n
    sides = {"base", "tuned-model", "tuned-question", "tuned-base-reader"}
    assert {e.side for e in progress} == sides
    verdict = next(e for e in events if isinstance(e, GuardDone))
    assert isinstance(outcome.final, Done) and outcome.final.guard == verdict.sentence
    assert verdict.sentence in outcome.sentence()
    # model.json holds the paired table of base (a) and tuned (b) on the held-out questions.
    entry = ModelRegistry(ws.layout).find("guarded")
    assert entry is not None
    guard = entry.info["guard"]
    table = guard["table"]
    assert table["questions"] == guard["questions"] == n
    assert table["both"] + table["only_a"] + table["only_b"] + table["neither"] == n
    assert 0.0 <= table["mcnemar_p"] <= 1.0
    assert set(guard["tables"]) == {"model", "question", "base-reader"}
    assert set(guard["summaries"]) == sides
    # The verdict's table is the setting the app will use: the base reading after the
    # tuned search only when that was right more often than the tuned model alone.
    right = {k: t["both"] + t["only_b"] for k, t in guard["tables"].items()}
    assert guard["answer_model"] == (
        "base" if right["base-reader"] > right[guard["first_query"]] else ""
    )
    used = "base-reader" if guard["answer_model"] == "base" else guard["first_query"]
    assert table == guard["tables"][used]
    assert guard["first_query"] in ("model", "question") and guard["dataset"] == "held"
    # Fewer than 8 held-out questions: no verdict is made up.
    assert guard["verdict"] == "unchecked" and entry.verdict == ""
    assert f"/{n} right on {n} held-out " in guard["sentence"]
    assert guard["question_source"] in ("natural", "mixed", "template")
    assert "Too few questions" in guard["sentence"]
    # The loop's "auto" first query now follows the guard.
    agent = ws.agent("docs", model="guarded")
    assert agent.first_query == guard["first_query"]
    # ... and so does its "auto" answer model.
    assert (agent.answer_backend is not None) == (guard["answer_model"] == "base")
    ws.release("guarded")

    # A worse model is marked, and nothing makes it the default on its own.
    ModelRegistry(ws.layout).update_tuned("guarded", {"guard": {**guard, "verdict": "worse"}})
    assert ws.config.model == "" and load_config(ws.layout.config_file).model == ""
    root = str(ws.layout.root)
    assert main(["--data-dir", root, "models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "(worse than base)" in next(x for x in listed.splitlines() if "guarded" in x)
    assert "*" not in next(x for x in listed.splitlines() if "guarded" in x)[:2]

    # Cancel during the guard leaves the model there, unchecked.
    cancel = threading.Event()
    result = check_model(ws, "guarded", limit=3, on_item=lambda *_: cancel.set(), cancel=cancel)
    assert result.verdict == "unchecked" and "cancelled" in result.sentence
    entry = ModelRegistry(ws.layout).find("guarded")
    assert entry is not None and entry.present and entry.info["guard"]["verdict"] == "unchecked"


def test_two_processes_train_as_one(ws: Workspace) -> None:
    """Data parallel (two CPU processes, gloo): the same steps as one process."""
    spec = tiny_spec(max_steps=2, batch_size=2, checkpoint_every=0, threads=1)
    single: list[float] = []
    outcome = start(ws, "one-process", spec).wait(
        lambda e: single.append(e.loss) if isinstance(e, Step) else None
    )
    assert outcome.state == "done"
    proc = start(ws, "two-processes", replace(spec, processes=2))
    assert "torch.distributed.run" in proc.command
    events: list[WorkerEvent] = []
    outcome = proc.wait(events.append)
    assert outcome.state == "done", proc.run.log_file.read_text()[-3000:]
    assert next(e for e in events if isinstance(e, Started)).processes == 2
    double = [e.loss for e in events if isinstance(e, Step)]
    assert len(double) == len(single) == 2
    # Float sums in another order: equal to 1e-3 relative over two steps (the second
    # starts from the weights the first all-reduced update made).
    for a, b in zip(single, double, strict=True):
        assert abs(a - b) <= 1e-3 * abs(a), (single, double)


def test_the_cli_lists_runs_and_models(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    root = str(ws.layout.root)
    code = main(
        [
            "--data-dir",
            root,
            "train",
            "--dataset",
            "tiny",
            "--name",
            "by-cli",
            "--set",
            "max_steps=2",
            "--set",
            "batch_size=1",
            "--set",
            "exports=lora",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Done: the tuned model is by-cli" in err and "cotrag ask --model by-cli" in err
    assert main(["--data-dir", root, "train", "list"]) == 0
    out = capsys.readouterr().out
    assert "full" in out and "done" in out
    assert main(["--data-dir", root, "models", "list"]) == 0
    out = capsys.readouterr().out
    assert "default" in out and "full" in out and "q8_0" in out


def test_deleting_a_model_removes_it_everywhere(ws: Workspace, tmp_path: Path) -> None:
    registry = ModelRegistry(ws.layout)
    part = registry.reserve("scratch")
    (part / "adapter.gguf").write_bytes(b"GGUF")
    registry.commit(part, "scratch", {"tuned": True})
    assert registry.find("scratch") is not None
    registry.delete("scratch")
    assert registry.find("scratch") is None
    assert not (registry.tuned_root / "scratch").exists()
    with pytest.raises(Exception, match="bundled"):
        registry.delete("default")
