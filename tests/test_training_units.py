"""The small parts of training that need no model: events, error sentences, McNemar, specs."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from core.compare.pairs import Side, mcnemar_exact
from core.training.events import (
    Cancelled,
    Done,
    Error,
    Eval,
    ProcessOutcome,
    Started,
    Step,
    encode,
    from_dict,
    parse_event,
    to_dict,
)
from core.training.spec import PRESETS, SpecError, TrainSpec
from core.training.worker import classify


def test_events_are_found_behind_their_sentinel_and_torn_lines_are_skipped() -> None:
    line = encode(Step(step=3, total=10, loss=1.5))
    assert parse_event("some library warning") is None
    assert parse_event(line) == Step(step=3, total=10, loss=1.5)
    event = parse_event("noise before " + line)
    assert isinstance(event, Step) and event.step == 3
    assert parse_event(line[:-5]) is None
    assert parse_event('@@cotrag {"event": "nonsense"}') is None
    assert parse_event('@@cotrag ["event", "step"]') is None


def test_events_keep_the_wire_format_and_what_a_reader_does_not_know() -> None:
    # A generator's eval has no recall: the field is not written at all.
    assert to_dict(Eval(step=4, loss=1.25)) == {"event": "eval", "step": 4, "loss": 1.25}
    wire = {
        "event": "eval",
        "step": 0,
        "recall": {"recall@1": 0.5, "recall@5": 0.75},
        "passages": 40,
        "from_a_newer_worker": True,
    }
    event = from_dict(wire)
    assert isinstance(event, Eval) and event.loss is None
    assert event.metrics == {"recall@1": 0.5, "recall@5": 0.75}
    assert event.extra == {"from_a_newer_worker": True}
    assert to_dict(event) == wire
    started = from_dict({"event": "started", "kind": "embedder", "corpus": 12, "total": 9})
    assert isinstance(started, Started) and started.corpus == 12 and started.total == 9
    assert from_dict({"event": "step", "step": 1, "no_such_field": 2}) == Step(step=1)


def test_the_outcome_says_how_the_process_ended() -> None:
    done = ProcessOutcome(0, final=Done(model="tuned"))
    assert done.state == "done" and "tuned" in done.sentence()
    stopped = ProcessOutcome(3, cancelled=True, final=Cancelled(step=4, checkpoint="/c/step-4"))
    assert stopped.state == "cancelled" and "step 4 (/c/step-4)" in stopped.sentence()
    error = Error(kind="oom", message="Training ran out of memory.", fix="Lower batch_size.")
    failed = ProcessOutcome(1, final=error)
    assert failed.state == "failed" and failed.error == error
    assert failed.sentence() == "Training ran out of memory. Lower batch_size."
    killed = ProcessOutcome(None, signal=9)
    assert killed.state == "interrupted" and killed.error is None
    assert "signal 9" in killed.sentence(Path("/runs/x/worker.log"))


def test_failures_become_a_sentence_and_what_to_change() -> None:
    kind, message, fix = classify(OSError(errno.ENOSPC, "No space left on device", "/data/x"))
    assert kind == "disk_full" and "/data/x" in message and "Free" in fix
    kind, _, fix = classify(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert kind == "oom" and "max_seq_len" in fix and "gradient_checkpointing" in fix
    kind, _, _ = classify(MemoryError())
    assert kind == "oom"
    kind, message, _ = classify(SpecError(["batch_size is 0: use 1 or more."]))
    assert kind == "spec" and "batch_size" in message
    kind, message, _ = classify(KeyError("boom"))
    assert kind == "internal" and "KeyError" in message


def test_mcnemar_exact_matches_the_binomial() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    # 8 discordant pairs all one way: 2 * 0.5**8
    assert mcnemar_exact(8, 0) == pytest.approx(2 / 256)
    assert mcnemar_exact(1, 6) == pytest.approx(2 * (1 + 7) / 128)
    assert Side.parse("my-model@rag", "loop") == Side("my-model", "rag")
    assert Side.parse("default", "loop") == Side("default", "loop")


def test_specs_round_trip_through_toml_and_presets_are_valid(tmp_path: Path) -> None:
    for name in PRESETS:
        spec = TrainSpec(dataset="d").with_preset(name)
        assert spec.problems() == [], name
        path = tmp_path / f"{name}.toml"
        path.write_text(spec.dumps(), "utf-8")
        assert TrainSpec.load(path) == spec
    bad = TrainSpec(dataset="", learning_rate=0.0, batch_size=0, exports=["zip"], stages="x")
    problems = " ".join(bad.problems())
    for field in ("dataset", "learning_rate", "batch_size", "exports", "stages"):
        assert field in problems
    (tmp_path / "broken.toml").write_text("learning_rate = = 1", "utf-8")
    with pytest.raises(SpecError, match="not valid TOML"):
        TrainSpec.load(tmp_path / "broken.toml")
