"""Where the questions of an evaluation come from: a QA file (JSON lines) or a dataset's
validation split (each question with the answer its trace was verified against)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.compare.evaluation import QAFileError, QAItem, load_qa
from core.dataset.storage import DatasetStore
from core.workspace import Workspace

DATASET_PREFIX = "dataset:"


def dataset_questions(examples: list[dict[str, Any]], split: str = "validation") -> list[QAItem]:
    """QA items from a dataset's examples (its validation split by default): the
    question, and the answer the trace was verified against."""
    items: list[QAItem] = []
    for example in examples:
        if split and example.get("split") != split:
            continue
        if example.get("unanswerable"):
            continue
        answer = str(example.get("answer", "")).strip()
        question = str(example.get("question", "")).strip()
        if answer and question:
            items.append(QAItem(str(example.get("id", len(items))), question, [answer]))
    return items


def load_items(ws: Workspace, qa: str) -> list[QAItem]:
    """The questions ``qa`` names: ``dataset:NAME`` (its validation split) or a QA file."""
    if qa.startswith(DATASET_PREFIX):
        name = qa.split(":", 1)[1]
        items = dataset_questions(DatasetStore(ws.layout.datasets).open(name).examples())
        if not items:
            raise QAFileError(
                f"Dataset {name!r} has no validation examples with an answer: use a QA file."
            )
        return items
    return load_qa(Path(qa))
