"""The guard's parts that need no model: the verdict rule, its sentence, its events, and
where the verdict is kept and read (model.json, the pickers' labels, the loop's first
query)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.compare.evaluation import QAFileError
from core.dataset.storage import DatasetStore
from core.errors import CotragError
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
from core.training.guard_questions import pick_questions
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


@pytest.mark.parametrize(
    ("base", "tuned", "expected"),
    [(13, 9, "worse"), (9, 13, "unchecked"), (10, 10, "unchecked"), (12, 13, "unchecked")],
)
def test_on_template_questions_only_a_loss_is_a_verdict(
    base: int, tuned: int, expected: str
) -> None:
    # Template questions are the training data's own style: a "better" or a "same" on them
    # says little (the bench measured "better" there for a model that lost on hand-written
    # questions), a loss even there says a lot.
    assert verdict(base, tuned, 40, 0.15, only_worse=True) == expected


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


def _example(i: int, split: str, origin: str, **more: object) -> dict[str, object]:
    return {
        "id": f"e{i}",
        "question": f"question {i} ({origin})?",
        "answer": f"answer {i}",
        "split": split,
        "question_origin": origin,
        "unanswerable": False,
        **more,
    }


def _guarded_dataset(layout: DataLayout, name: str, examples: list[dict[str, object]]) -> None:
    dataset = DatasetStore(layout.datasets).create(name, {"kb": "docs"})
    for example in examples:
        dataset.append_example(example)
    info = {
        "name": name,
        "tuned": True,
        "base": {"reference": "default"},
        "dataset": {"name": name},
    }
    folder = ModelRegistry(layout).tuned_root / name
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps(info), "utf-8")


def test_the_guard_asks_natural_held_out_questions_when_there_are_enough(tmp_path: Path) -> None:
    layout = DataLayout.at(tmp_path)
    held = [_example(i, "validation", "template") for i in range(10)]
    held += [_example(10 + i, "validation", "teacher") for i in range(5)]
    held += [_example(20 + i, "validation", "template", question_rewritten=True) for i in range(3)]
    held += [_example(30, "validation", "conversation", unanswerable=True)]  # never asked
    training = [_example(40 + i, "train", "teacher") for i in range(5)]  # never asked
    _guarded_dataset(layout, "ds", held + training)
    entry = ModelRegistry(layout).find("ds")
    assert entry is not None
    picked = pick_questions(layout, entry, 40)
    assert picked.source == "natural" and picked.kb == "docs"
    assert len(picked.items) == picked.natural == 8
    assert {q.id for q in picked.items} == {f"e{i}" for i in (*range(10, 15), *range(20, 23))}
    assert picked.words() == "8 held-out natural questions"
    assert not picked.conclusive_only_when_worse
    # The limit cuts the natural ones; it never fills up with templates.
    assert [q.id for q in pick_questions(layout, entry, 3).items] == ["e10", "e11", "e12"]


def test_too_few_natural_questions_mix_in_templates_and_say_so(tmp_path: Path) -> None:
    layout = DataLayout.at(tmp_path)
    held = [_example(i, "validation", "template") for i in range(9)]
    held += [_example(10 + i, "validation", "import") for i in range(2)]
    _guarded_dataset(layout, "mixed", held)
    _guarded_dataset(layout, "templates", held[:9])
    registry = ModelRegistry(layout)
    mixed = registry.find("mixed")
    templates = registry.find("templates")
    assert mixed is not None and templates is not None
    picked = pick_questions(layout, mixed, 40)
    assert picked.source == "mixed" and (picked.natural, picked.template) == (2, 9)
    assert [q.id for q in picked.items[:2]] == ["e10", "e11"]  # natural ones first
    assert picked.words() == "11 held-out questions (2 natural, 9 template)"
    assert picked.conclusive_only_when_worse
    picked = pick_questions(layout, templates, 40)
    assert picked.source == "template" and picked.words() == "9 held-out template questions"
    assert picked.conclusive_only_when_worse


def test_a_qa_file_replaces_the_held_out_questions(tmp_path: Path) -> None:
    layout = DataLayout.at(tmp_path)
    _guarded_dataset(layout, "ds", [_example(i, "validation", "template") for i in range(9)])
    entry = ModelRegistry(layout).find("ds")
    assert entry is not None
    qa = tmp_path / "mine.jsonl"
    lines = [{"id": f"q{i}", "question": f"How {i}?", "answers": [f"a{i}"]} for i in range(12)]
    qa.write_text("\n".join(json.dumps(x) for x in lines), "utf-8")
    picked = pick_questions(layout, entry, 10, str(qa))
    assert picked.source == "file" and picked.kb == "docs" and picked.natural == 10
    assert [q.answers for q in picked.items[:2]] == [["a0"], ["a1"]]
    assert picked.words() == "10 questions from mine.jsonl"
    assert not picked.conclusive_only_when_worse
    (tmp_path / "bad.jsonl").write_text('{"question": "no answers"}', "utf-8")
    with pytest.raises(QAFileError, match=r"bad\.jsonl:1"):
        pick_questions(layout, entry, 10, str(tmp_path / "bad.jsonl"))
    # A dataset that is gone: the QA file still works, the held-out questions do not.
    DatasetStore(layout.datasets).delete("ds")
    assert len(pick_questions(layout, entry, 40, str(qa)).items) == 12
    with pytest.raises(CotragError, match="is gone"):
        pick_questions(layout, entry, 40)
