"""Every line of a dataset checked: readable, complete, and still a trace the loop would
write (spans join to the trace, the protocol parses, the gold passage was shown and
vetted, the answer holds the gold answer)."""

from __future__ import annotations

from typing import Any

from core.agent import prompts
from core.agent.parser import trace_errors
from core.agent.record import RunRecord
from core.dataset.candidates import TWOHOP
from core.dataset.construct import UNANSWERED
from core.dataset.storage import Dataset
from core.dataset.verify import contains

REQUIRED = ("id", "question", "answer", "kind", "split", "source", "chunk_id", "record")


def validate(dataset: Dataset) -> list[str]:
    """One sentence per problem, naming the file and line or the example id."""
    problems = [f"{d.file} line {d.line}: {d.reason}" for d in dataset.damaged()]
    current = prompts.template_version()
    ids: set[str] = set()
    for number, example in enumerate(dataset.examples(), 1):
        where = f"example {example.get('id', '?')} (line {number})"
        missing = [key for key in REQUIRED if key not in example]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        if example["id"] in ids:
            problems.append(f"{where}: the id is used twice")
        ids.add(str(example["id"]))
        try:
            record = RunRecord.from_dict(example["record"])
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"{where}: the trace record cannot be read ({exc})")
            continue
        if "".join(s.text for s in record.spans) != record.trace:
            problems.append(f"{where}: the spans do not join to the trace")
        errors = [e.kind for e in trace_errors(record.trace)]
        if errors:
            problems.append(f"{where}: the trace has protocol errors ({', '.join(errors)})")
        if example.get("unanswerable"):
            if record.results or record.answer != UNANSWERED:
                problems.append(f"{where}: an unanswerable example must vet nothing and say so")
            if example["source"] in {h.source for h in record.passages.values()}:
                problems.append(f"{where}: an unanswerable example shows its own document")
            continue
        gold = [int(n) for n in example.get("gold_numbers", [])]
        if not gold or any(n not in record.passages for n in gold):
            problems.append(f"{where}: the gold passage is not among the passages shown")
        elif not set(gold) & set(record.results):
            problems.append(f"{where}: the results do not vet the gold passage")
        if example["kind"] == TWOHOP:
            problems.extend(f"{where}: {p}" for p in _twohop_problems(example, record, gold))
        if not contains(record.answer, str(example["answer"])):
            problems.append(f"{where}: the answer stage does not contain the answer")
        if example.get("template_version") not in (None, current):
            problems.append(
                f"{where}: made with prompt templates {example['template_version']}, the app "
                f"now uses {current}; regenerate so a tuned model sees today's wording"
            )
    return problems


def _twohop_problems(example: dict[str, Any], record: RunRecord, gold: list[int]) -> list[str]:
    """A two-hop example cites both gold chunks, found by two searches at least."""
    chunk_ids = [str(c) for c in example.get("chunk_ids", [])]
    if len(chunk_ids) != 2 or chunk_ids[-1] != example["chunk_id"]:
        return ["a two-hop example needs chunk_ids: the first hop's chunk, then chunk_id"]
    problems = []
    if [record.passages[n].id for n in gold if n in record.passages] != chunk_ids:
        problems.append("the gold passages are not the two chunks of chunk_ids")
    if not set(gold) <= set(record.results):
        problems.append("the results do not vet both gold passages")
    if len(record.retrievals) < 2:
        problems.append("a two-hop trace needs two searches")
    if not all(f"[{n}]" in record.answer for n in gold):
        problems.append("the answer stage does not cite both gold passages")
    return problems
