"""Hand edits of a dataset: a question, an answer or the cited answer changed, an example
deleted. The record stays consistent (the messages the model would see are rendered again
from the same templates) and every change can be undone once."""

from __future__ import annotations

import copy
from typing import Any

from core.agent import prompts
from core.agent.record import RunRecord
from core.dataset.storage import Dataset
from core.dataset.verify import contains


class EditRejected(ValueError):
    pass


def edited(example: dict[str, Any], *, question: str, answer: str, cited: str) -> dict[str, Any]:
    """A copy of ``example`` with its question, short answer and cited answer replaced."""
    question, answer, cited = question.strip(), answer.strip(), cited.strip()
    if not question or not answer or not cited:
        raise EditRejected("The question, the answer and the cited answer must not be empty.")
    if not contains(cited, answer):
        raise EditRejected("The cited answer must contain the short answer.")
    if contains(question, answer) and len(answer) >= 3:
        raise EditRejected("The question must not contain its answer.")
    out = copy.deepcopy(example)
    record = RunRecord.from_dict(out["record"])
    numbered = [(n, record.passages[n]) for n in record.results if n in record.passages]
    if "search" in record.messages:
        record.messages["search"] = prompts.loop_messages(
            question, max_rounds=int(record.info.get("settings", {}).get("max_rounds", 3))
        )
    record.messages["answer"] = prompts.answer_messages(question, numbered)
    record.question = question
    record.answer = cited
    out.update(question=question, answer=answer, status="edited", record=record.to_dict())
    return out


def replace_example(dataset: Dataset, example: dict[str, Any]) -> None:
    examples = [example if e.get("id") == example.get("id") else e for e in dataset.examples()]
    dataset.rewrite_examples(examples)


def delete_examples(dataset: Dataset, ids: set[str]) -> int:
    examples = dataset.examples()
    kept = [e for e in examples if e.get("id") not in ids]
    dataset.rewrite_examples(kept)
    return len(examples) - len(kept)
