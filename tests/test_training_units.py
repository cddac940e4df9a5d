"""The small parts of training that need no model: events, error sentences, McNemar, specs."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from core.compare.pairs import Side, mcnemar_exact
from core.training.events import format_event, parse_line
from core.training.spec import PRESETS, SpecError, TrainSpec
from core.training.worker import classify


def test_events_are_found_behind_their_sentinel_and_torn_lines_are_skipped() -> None:
    line = format_event("step", step=3, total=10, loss=1.5)
    assert parse_line("some library warning") is None
    assert parse_line(line) == {"event": "step", "step": 3, "total": 10, "loss": 1.5}
    assert parse_line("noise before " + line)["step"] == 3  # type: ignore[index]
    assert parse_line(line[:-5]) is None
    assert parse_line('@@cotrag {"event": "nonsense"}') is None
    with pytest.raises(ValueError):
        format_event("nonsense")


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
