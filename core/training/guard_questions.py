"""The questions the guard asks, and what kind of questions they are.

A tuned model answers questions in the style of its training data better than any
other, so the kind of question decides what a verdict is worth:

- a **QA file** the user names (``guard_qa``, ``cotrag models guard --qa``): questions
  as the user asks them, each with its expected answers (the format of ``cotrag eval``);
- else the dataset's held-out (validation) examples whose question is **natural**: the
  teacher wrote it, the rewrite step restated it, or it came from a file or a chat turn.
  When at least :data:`MIN_QUESTIONS` of them hold an answer, the guard asks only these;
- else every held-out example, natural ones first. Those made from fill-in **templates**
  ("Documentation says: … What is the default value of X?") are the training data's own
  style: on them a tuned model looks better than it is (the bench measured a "better"
  on template questions for a model that lost to its base on hand-written ones). Only a
  ``worse`` verdict is conclusive on them (see :func:`core.training.guard.verdict`).

Unanswerable examples are left out (their right answer, "the documents do not say", is
not what a verdict should rest on).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.compare.evaluation import QAItem, load_qa
from core.compare.questions import dataset_questions
from core.dataset.storage import DatasetNotFound, DatasetStore
from core.errors import CotragError
from core.models.installed import ModelEntry
from core.paths import DataLayout

MIN_QUESTIONS = 8
"""Questions with an answer below which the guard gives no verdict."""

SOURCES = ("file", "natural", "mixed", "template")
"""``file``: a QA file; ``natural``: held-out natural questions only; ``mixed``: natural
and template questions (too few natural ones alone); ``template``: template ones only."""


@dataclass
class GuardQuestions:
    items: list[QAItem]
    kb: str
    source: str
    """One of :data:`SOURCES` (``""`` when there are no questions)."""
    natural: int = 0
    """How many of ``items`` are natural questions (all of them for a QA file)."""
    origin: str = ""
    """The QA file's path, or the dataset's name."""

    @property
    def template(self) -> int:
        return len(self.items) - self.natural

    @property
    def conclusive_only_when_worse(self) -> bool:
        """Template questions flatter the tuned model: only a loss on them is a verdict."""
        return self.source in ("mixed", "template")

    def words(self) -> str:
        """What the questions are, to end "…right on …": ``12 held-out template questions``."""
        n = len(self.items)
        if self.source == "file":
            return f"{n} questions from {Path(self.origin).name}"
        if self.source == "natural":
            return f"{n} held-out natural questions"
        if self.source == "mixed":
            return f"{n} held-out questions ({self.natural} natural, {self.template} template)"
        return f"{n} held-out template questions"


def is_natural(example: dict[str, Any]) -> bool:
    """A question the teacher wrote, the rewrite step restated, or a file or chat gave."""
    if example.get("question_rewritten"):
        return True
    return str(example.get("question_origin", "template") or "template") != "template"


def pick_questions(
    layout: DataLayout, entry: ModelEntry, limit: int, qa_file: str = ""
) -> GuardQuestions:
    """The questions for the guard of ``entry`` (the rules in the module's doc) and the
    knowledge base they are asked of (the dataset's record, else the model's)."""
    data = entry.info.get("dataset", {}) or {}
    name = str(data.get("name", ""))
    kb = str(data.get("kb", ""))
    dataset = None
    if name:
        try:
            dataset = DatasetStore(layout.datasets).open(name)
        except DatasetNotFound:
            if not qa_file:
                raise CotragError(
                    f"The dataset {name!r} that {entry.name!r} was tuned on is gone: the guard "
                    "needs its held-out questions (or give it a QA file)."
                ) from None
        else:
            kb = str(dataset.meta.get("kb", "") or kb)
    elif not qa_file:
        raise CotragError(f"The model {entry.name!r} does not say which dataset it was tuned on.")
    limit = max(0, limit)
    if qa_file:
        items = load_qa(Path(qa_file))[:limit]
        return GuardQuestions(items, kb, "file", len(items), qa_file)
    assert dataset is not None
    held = [e for e in dataset.examples() if e.get("split") == "validation"]
    natural = dataset_questions([e for e in held if is_natural(e)], "validation")
    template = dataset_questions([e for e in held if not is_natural(e)], "validation")
    if len(natural) >= min(MIN_QUESTIONS, limit) and natural:
        return GuardQuestions(natural[:limit], kb, "natural", min(len(natural), limit), name)
    items = (natural + template)[:limit]
    if not items:
        return GuardQuestions([], kb, "", 0, name)
    source = "mixed" if natural else "template"
    return GuardQuestions(items, kb, source, min(len(natural), len(items)), name)
