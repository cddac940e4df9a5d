"""The guard's parts that need no model: the verdict rule, its sentence, its events, and
where the verdict is kept and read (model.json, the pickers' labels, the loop's first
query)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.models.installed import ModelRegistry
from core.paths import DataLayout
from core.training.events import (
    Done,
    GuardDone,
    Guarding,
    ProcessOutcome,
    WorkerEvent,
    encode,
    parse_event,
)
from core.training.guard import MIN_QUESTIONS, describe, verdict
from core.workspace import auto_first_query


@pytest.mark.parametrize(
    ("base", "tuned", "n", "p", "expected"),
    [
        (13, 9, 40, 0.29, "worse"),  # 10 points behind: worse even with p well above 0.2
        (13, 12, 40, 0.15, "worse"),  # 2.5 points behind but p < 0.2
        (13, 12, 40, 0.99, "same"),  # 2.5 points behind, p large: no different
        (9, 13, 40, 0.29, "better"),  # the mirror
        (12, 13, 40, 0.15, "better"),
        (12, 13, 40, 0.99, "same"),
        (10, 10, 40, 1.0, "same"),
        (10, 10, 40, 0.01, "same"),  # equal counts are never a verdict either way
        (2, 0, 4, 0.5, "unchecked"),  # too few questions for any verdict
        (0, 0, 0, 1.0, "unchecked"),
    ],
)
def test_the_verdict_rule(base: int, tuned: int, n: int, p: float, expected: str) -> None:
    assert verdict(base, tuned, n, p) == expected


def test_the_verdict_rule_starts_at_the_minimum_of_questions() -> None:
    assert verdict(MIN_QUESTIONS - 1, 0, MIN_QUESTIONS - 1, 0.01) == "unchecked"
    assert verdict(MIN_QUESTIONS, 0, MIN_QUESTIONS, 0.01) == "worse"
    # A 5-point gap is enough whatever p; just under 5 points is not (with a large p).
    assert verdict(11, 10, 20, 1.0) == "worse"  # 5 points
    assert verdict(11, 10, 21, 1.0) == "same"  # 4.8 points


def test_the_sentence_says_the_verdict_the_counts_and_p() -> None:
    table: dict[str, float] = {"questions": 40, "both": 7, "only_a": 6, "only_b": 2}
    table.update(neither=25, mcnemar_p=0.2891)
    assert describe("worse", table) == (
        "Worse than the base: 9/40 vs 13/40 right on held-out questions (only tuned 2, "
        "only base 6, McNemar p = 0.29)."
    )
    assert describe("same", table).startswith("No different from the base: 9/40 vs 13/40")
    assert describe("unchecked", {}, "no questions.") == "Unchecked: no questions."


def test_the_guard_events_round_trip() -> None:
    table = {"questions": 40, "both": 7, "only_a": 6, "only_b": 2, "neither": 25, "mcnemar_p": 0.29}
    done = Done(model="m", guard="Worse than the base: …")
    events: list[WorkerEvent] = [
        Guarding(index=3, total=120, side="tuned-model"),
        GuardDone(
            verdict="worse", sentence="Worse than the base: …", table=table, first_query="model"
        ),
        done,
    ]
    for event in events:
        assert parse_event("noise " + encode(event)) == event
    outcome = ProcessOutcome(0, final=done)
    assert outcome.sentence() == "Done: the tuned model is m. Worse than the base: …"
    assert ProcessOutcome(0, final=Done(model="m")).sentence() == "Done: the tuned model is m."


def _tuned_folder(layout: DataLayout, name: str) -> Path:
    """A tuned model's folder as the export leaves it: model.json next to its GGUF."""
    folder = ModelRegistry(layout).tuned_root / name
    folder.mkdir(parents=True)
    (folder / "model.q8_0.gguf").write_bytes(b"GGUF")
    info = {"name": name, "tuned": True, "base": {"reference": "default"}}
    (folder / "model.json").write_text(json.dumps(info), "utf-8")
    return folder


def test_the_verdict_is_kept_in_model_json_and_read_back(tmp_path: Path) -> None:
    layout = DataLayout.at(tmp_path)
    folder = _tuned_folder(layout, "tuned-1")
    registry = ModelRegistry(layout)
    entry = registry.find("tuned-1")
    assert entry is not None and entry.verdict == "" and entry.picker_label == "tuned-1"
    guard = {"verdict": "worse", "first_query": "question", "sentence": "Worse than the base."}
    registry.update_tuned("tuned-1", {"guard": guard})
    entry = registry.find("tuned-1")
    assert entry is not None and entry.verdict == "worse"
    assert entry.picker_label == "tuned-1 \u2014 worse than base"
    on_disk = json.loads((folder / "model.json").read_text("utf-8"))
    assert on_disk["guard"] == guard and on_disk["base"] == {"reference": "default"}
    assert not list(folder.glob("*.tmp"))
    # The loop's "auto" first query follows what the guard measured, not the GGUF's flag.
    assert auto_first_query(folder / "model.q8_0.gguf") == "question"
    registry.update_tuned("tuned-1", {"guard": {**guard, "first_query": "model"}})
    assert auto_first_query(folder / "model.q8_0.gguf") == "model"
    registry.update_tuned("tuned-1", {"guard": {"verdict": "", "sentence": "Unchecked: …"}})
    entry = registry.find("tuned-1")
    assert entry is not None and entry.verdict == "" and entry.verdict_note == ""
