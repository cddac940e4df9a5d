"""The guard on a tuned model: is it better than the model it was tuned from?

After a generator run exports its model (and on ``cotrag models guard NAME``), the
base model and the tuned model answer the same held-out questions in the mode the
app uses (the search loop), with greedy decoding:

- the questions are the trained dataset's validation split (examples with
  ``split == "validation"``: documents the run never saw), each with the answer
  its trace was verified against; unanswerable examples are left out (their
  right answer, "the documents do not say", is not what a verdict should rest
  on), and at most ``limit`` of them are asked, in the dataset's order;
- the base runs with the app-seeded first search (``first_query="question"``),
  the tuned model twice: writing its own first query (``model``) and seeded
  (``question``). Its better setting is its side of the verdict (a tie goes to
  the seeded search) and is recorded as ``first_query``: the loop's ``auto``
  setting follows it;
- the answers are paired per question (:mod:`core.compare.pairs`): both right,
  only tuned, only base, neither, and McNemar's exact p on the discordant pairs.

The verdict (:func:`verdict`): on a few dozen questions McNemar's p rarely falls
below 0.05, and a user is better served by a cautious warning than by silence, so

- ``worse`` when the tuned model is right less often than the base, by any margin,
  AND (p < 0.2 OR the gap is at least 5 points of accuracy);
- ``better`` in the mirror case (more often right, p < 0.2 or ≥ 5 points);
- ``same`` ("no different") otherwise;
- ``unchecked`` when fewer than :data:`MIN_QUESTIONS` held-out questions have an
  answer (the table is still computed and kept when there is at least one), or
  when the check was cancelled or failed. An unchecked model has no verdict
  (``ModelEntry.verdict == ""``).

The result goes into the tuned model's ``model.json`` under ``"guard"``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.compare.evaluation import EvalReport, ItemResult, QAItem, evaluate
from core.compare.pairs import Comparison, Side
from core.compare.questions import dataset_questions
from core.dataset.storage import DatasetNotFound, DatasetStore
from core.errors import CotragError, ModelNotFound
from core.models.installed import ModelEntry, ModelRegistry
from core.workspace import Workspace

log = logging.getLogger(__name__)

MIN_QUESTIONS = 8
"""Held-out questions with an answer below which the guard gives no verdict."""
P_CUTOFF = 0.2
GAP_POINTS = 5.0
VERDICT_WORDS = {
    "better": "Better than the base",
    "same": "No different from the base",
    "worse": "Worse than the base",
    "unchecked": "Unchecked",
}
SIDES = ("base", "tuned-model", "tuned-question")
"""The three evaluations, in the order they run (``side`` of the progress callback)."""

SIDE_WORDS = {
    "base": "the base model, seeded first search",
    "tuned-model": "the tuned model, its own first search",
    "tuned-question": "the tuned model, seeded first search",
}
OnItem = Callable[[int, int, str], None]
"""(questions answered so far over all sides, questions in all, the side running)."""


def verdict(base_right: int, tuned_right: int, questions: int, p: float) -> str:
    """``better``, ``same``, ``worse`` or ``unchecked`` (the rule in the module's doc)."""
    if questions < MIN_QUESTIONS:
        return "unchecked"
    if tuned_right == base_right:
        return "same"
    gap = 100.0 * abs(tuned_right - base_right) / questions
    if p < P_CUTOFF or gap >= GAP_POINTS:
        return "better" if tuned_right > base_right else "worse"
    return "same"


@dataclass
class GuardResult:
    model: str
    verdict: str
    """``better``, ``same``, ``worse`` or ``unchecked``."""
    sentence: str
    """The verdict in one line, with the paired counts and McNemar's p."""
    first_query: str = ""
    """The tuned model's better first-query setting (``model`` or ``question``); ``""``
    when nothing was measured."""
    questions: int = 0
    table: dict[str, Any] = field(default_factory=dict)
    """The paired table of base (a) and tuned (b, with ``first_query``)."""
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The paired table for each first-query setting of the tuned model."""
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each side's summary (accuracy, recall@k, protocol errors…), by :data:`SIDES`."""
    base: str = ""
    dataset: str = ""
    kb: str = ""
    seconds: float = 0.0
    checked: str = ""
    """When (ISO 8601, UTC)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def base_right(self) -> int:
        return int(self.table.get("both", 0)) + int(self.table.get("only_a", 0))

    @property
    def tuned_right(self) -> int:
        return int(self.table.get("both", 0)) + int(self.table.get("only_b", 0))


def describe(result_verdict: str, table: dict[str, Any], note: str = "") -> str:
    """``Worse than the base: 9/40 vs 13/40 right on held-out questions (only tuned 2,
    only base 6, McNemar p = 0.29).`` (``note`` is added for an unchecked result)."""
    head = VERDICT_WORDS.get(result_verdict, result_verdict)
    n = int(table.get("questions", 0))
    if not n:
        return f"{head}: {note}".strip() if note else head + "."
    both = int(table.get("both", 0))
    tuned, base = both + int(table.get("only_b", 0)), both + int(table.get("only_a", 0))
    counts = (
        f"{tuned}/{n} vs {base}/{n} right on held-out questions (only tuned "
        f"{table.get('only_b', 0)}, only base {table.get('only_a', 0)}, McNemar p = "
        f"{float(table.get('mcnemar_p', 1.0)):.2g})"
    )
    return f"{head}: {counts}." + (f" {note}" if note else "")


def guard_questions(ws: Workspace, entry: ModelEntry, limit: int) -> tuple[list[QAItem], str]:
    """The held-out questions of the dataset ``entry`` was trained on, and its knowledge
    base (the dataset's record, else the model's)."""
    data = entry.info.get("dataset", {}) or {}
    name = str(data.get("name", ""))
    if not name:
        raise CotragError(f"The model {entry.name!r} does not say which dataset it was tuned on.")
    try:
        dataset = DatasetStore(ws.layout.datasets).open(name)
    except DatasetNotFound as exc:
        raise CotragError(
            f"The dataset {name!r} that {entry.name!r} was tuned on is gone: the guard needs "
            "its held-out questions."
        ) from exc
    kb = str(dataset.meta.get("kb", "") or data.get("kb", ""))
    items = dataset_questions(dataset.examples(), "validation")
    return items[: max(0, limit)], kb


def check_model(
    ws: Workspace,
    name: str,
    *,
    limit: int = 40,
    on_item: OnItem | None = None,
    cancel: threading.Event | None = None,
    store: bool = True,
) -> GuardResult:
    """Base vs the tuned model ``name`` on its dataset's held-out questions; the result
    is written into the model's model.json (``store=False``: only returned)."""
    registry = ModelRegistry(ws.layout)
    entry = registry.find(name)
    if entry is None or entry.kind != "tuned":
        raise ModelNotFound(f"No tuned model named {name!r} (see `cotrag models list`).")
    started = time.perf_counter()
    base_info = entry.info.get("base", {}) or {}
    base = str(base_info.get("reference", "") or "default")
    items, kb = guard_questions(ws, entry, limit)
    dataset = str((entry.info.get("dataset", {}) or {}).get("name", ""))
    result = GuardResult(name, "unchecked", "", base=base, dataset=dataset, kb=kb)
    if not items:
        result.sentence = describe(
            "unchecked",
            {},
            f"the dataset {dataset!r} has no held-out (validation) questions with an answer; "
            "make the dataset with a validation share above 0 to get a verdict.",
        )
    elif not kb:
        result.sentence = describe(
            "unchecked", {}, f"the dataset {dataset!r} names no knowledge base."
        )
    else:
        ws.store.get(kb)  # a missing knowledge base is a sentence, before any model loads
        gguf = str(base_info.get("gguf", ""))  # the file the base runs from, when it has one
        base_run = gguf if gguf and Path(gguf).is_file() else base
        _measure(ws, result, entry, base_run, items, on_item, cancel)
    result.seconds = round(time.perf_counter() - started, 1)
    result.checked = datetime.now(UTC).isoformat(timespec="seconds")
    if store:
        registry.update_tuned(name, {"guard": result.to_dict()})
    return result


def _measure(
    ws: Workspace,
    result: GuardResult,
    entry: ModelEntry,
    base_run: str,
    items: list[QAItem],
    on_item: OnItem | None,
    cancel: threading.Event | None,
) -> None:
    total = len(items) * len(SIDES)
    reports: dict[str, EvalReport] = {}
    runs = {
        "base": (base_run, "question"),
        "tuned-model": (entry.name, "model"),
        "tuned-question": (entry.name, "question"),
    }
    generation = ws.config.generation
    ws.config.generation = replace(generation, temperature=0.0)  # greedy: a repeatable check
    try:
        for number, side in enumerate(SIDES):
            model, first_query = runs[side]
            agent = ws.agent(result.kb, model=model, first_query=first_query)

            def item_done(i: int, r: ItemResult, number: int = number, side: str = side) -> None:
                if on_item is not None:
                    on_item(number * len(items) + i + 1, total, side)

            reports[side] = evaluate(
                agent,
                items,
                mode="loop",
                kb=result.kb,
                model=model,
                on_item=item_done,
                cancel=cancel,
            )
            stopped = cancel is not None and cancel.is_set()
            if side != "tuned-model" or stopped:  # the tuned model stays for its second run
                ws.release(model)
            if stopped:
                break
    finally:
        ws.config.generation = generation
    result.summaries = {side: report.summary for side, report in reports.items()}
    if len(reports) < len(SIDES) or any(len(r.items) < len(items) for r in reports.values()):
        result.sentence = describe("unchecked", {}, "the check was cancelled before it finished.")
        return
    a = Side(result.base, "loop")
    for side in ("tuned-model", "tuned-question"):
        comparison = Comparison(a, Side(entry.name, "loop"), result.kb)
        comparison.reports = [reports["base"], reports[side]]
        result.tables[side.removeprefix("tuned-")] = comparison.table
    own, seeded = result.tables["model"], result.tables["question"]
    right = {k: int(t["both"]) + int(t["only_b"]) for k, t in result.tables.items()}
    result.first_query = "model" if right["model"] > right["question"] else "question"
    result.table = own if result.first_query == "model" else seeded
    result.questions = len(items)
    result.verdict = verdict(
        result.base_right, result.tuned_right, len(items), float(result.table["mcnemar_p"])
    )
    note = ""
    if result.verdict == "unchecked":
        note = f"Too few held-out questions for a verdict ({MIN_QUESTIONS} needed)."
    result.sentence = describe(result.verdict, result.table, note)


def unchecked(ws: Workspace, name: str, why: str) -> GuardResult:
    """Record that the guard did not run to the end (cancelled, failed): the model keeps
    no verdict."""
    result = GuardResult(name, "unchecked", describe("unchecked", {}, why))
    result.checked = datetime.now(UTC).isoformat(timespec="seconds")
    ModelRegistry(ws.layout).update_tuned(name, {"guard": result.to_dict()})
    return result
