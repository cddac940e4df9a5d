"""The guard on a tuned model: is it better than the model it was tuned from?

After a generator run exports its model (and on ``cotrag models guard NAME``), the
base model and the tuned model answer the same held-out questions in the mode the
app uses (the search loop), with greedy decoding:

- the questions (:mod:`core.training.guard_questions`): a QA file the user names, else
  the trained dataset's held-out (validation) natural questions, else its held-out
  template questions, each with the answer its trace was verified against; at most
  ``limit`` of them, in order;
- the base runs with the app-seeded first search (``first_query="question"``),
  the tuned model twice: writing its own first query (``model``) and seeded
  (``question``). Its better setting (a tie goes to the seeded search) is recorded as
  ``first_query``: the loop's ``auto`` setting follows it;
- then, when the tuned model's base is known, a fourth run: the tuned model searches
  (with that first query) and the base model writes the answer from the passages it
  vetted (two contexts). When that is right more often than the tuned model alone it
  is recorded as ``answer_model = "base"``: the loop's ``auto`` answer model follows
  it. The setting the app will use (the better one) is the verdict's side;
- the answers are paired per question (:mod:`core.compare.pairs`): both right,
  only tuned, only base, neither, and McNemar's exact p on the discordant pairs.

The verdict (:func:`verdict`): on a few dozen questions McNemar's p rarely falls
below 0.05, and a user is better served by a cautious warning than by silence, so

- ``worse`` when the tuned model is right less often than the base, by any margin,
  AND (p < 0.2 OR the gap is at least 5 points of accuracy);
- ``better`` in the mirror case (more often right, p < 0.2 or ≥ 5 points);
- ``same`` ("no different") otherwise;
- ``unchecked`` when the questions include fill-in templates and the tuned model is not
  worse: template questions are the training data's own style and flatter it, so only a
  loss on them is conclusive;
- ``unchecked`` when fewer than :data:`MIN_QUESTIONS` questions have an
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
from core.errors import ModelNotFound
from core.models.installed import ModelEntry, ModelRegistry
from core.training.guard_questions import MIN_QUESTIONS, GuardQuestions, pick_questions
from core.workspace import Workspace

log = logging.getLogger(__name__)

__all__ = ["MIN_QUESTIONS", "GuardResult", "check_model", "describe", "unchecked", "verdict"]

P_CUTOFF = 0.2
GAP_POINTS = 5.0
VERDICT_WORDS = {
    "better": "Better than the base",
    "same": "No different from the base",
    "worse": "Worse than the base",
    "unchecked": "Unchecked",
}
SIDES = ("base", "tuned-model", "tuned-question", "tuned-base-reader")
"""The evaluations, in the order they run (``side`` of the progress callback); the last
runs only for a tuned model whose base is known."""

SIDE_WORDS = {
    "base": "the base model, seeded first search",
    "tuned-model": "the tuned model, its own first search",
    "tuned-question": "the tuned model, seeded first search",
    "tuned-base-reader": "the tuned model searching, its base answering",
}
OnItem = Callable[[int, int, str], None]
"""(questions answered so far over all sides, questions in all, the side running)."""


def verdict(
    base_right: int, tuned_right: int, questions: int, p: float, *, only_worse: bool = False
) -> str:
    """``better``, ``same``, ``worse`` or ``unchecked`` (the rule in the module's doc);
    ``only_worse``: the questions flatter the tuned model (templates), so anything but
    ``worse`` is ``unchecked``."""
    if questions < MIN_QUESTIONS:
        return "unchecked"
    found = "same"
    if tuned_right != base_right:
        gap = 100.0 * abs(tuned_right - base_right) / questions
        if p < P_CUTOFF or gap >= GAP_POINTS:
            found = "better" if tuned_right > base_right else "worse"
    if only_worse and found != "worse":
        return "unchecked"
    return found


TEMPLATE_NOTE = (
    "Template questions are the training data's own style and flatter a tuned model, so "
    "only a loss on them is a verdict: give the guard questions as users ask them (a QA "
    "file, or a dataset whose questions the teacher wrote or rewrote) for one."
)


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
    answer_model: str = ""
    """``base`` when the tuned model searching and its base answering was right more often
    than the tuned model alone; ``""`` otherwise (or when not measured)."""
    questions: int = 0
    question_source: str = ""
    """What the questions were (:data:`core.training.guard_questions.SOURCES`)."""
    natural_questions: int = 0
    """How many of them were natural (not fill-in templates)."""
    table: dict[str, Any] = field(default_factory=dict)
    """The paired table of base (a) and tuned (b, with ``first_query`` and
    ``answer_model``): the setting the app will use."""
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The paired table for each setting of the tuned model: ``model``, ``question`` (the
    first query) and ``base-reader``."""
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


def describe(
    result_verdict: str, table: dict[str, Any], note: str = "", on: str = "held-out questions"
) -> str:
    """``Worse than the base: 9/40 vs 13/40 right on 40 held-out natural questions (only
    tuned 2, only base 6, McNemar p = 0.29).`` (``on`` says what the questions were;
    ``note`` is added for an unchecked result)."""
    head = VERDICT_WORDS.get(result_verdict, result_verdict)
    n = int(table.get("questions", 0))
    if not n:
        return f"{head}: {note}".strip() if note else head + "."
    both = int(table.get("both", 0))
    tuned, base = both + int(table.get("only_b", 0)), both + int(table.get("only_a", 0))
    counts = (
        f"{tuned}/{n} vs {base}/{n} right on {on} (only tuned "
        f"{table.get('only_b', 0)}, only base {table.get('only_a', 0)}, McNemar p = "
        f"{float(table.get('mcnemar_p', 1.0)):.2g})"
    )
    return f"{head}: {counts}." + (f" {note}" if note else "")


def check_model(
    ws: Workspace,
    name: str,
    *,
    limit: int = 40,
    qa_file: str = "",
    on_item: OnItem | None = None,
    cancel: threading.Event | None = None,
    store: bool = True,
) -> GuardResult:
    """Base vs the tuned model ``name`` on its dataset's held-out questions, or on the
    questions of ``qa_file``; the result is written into the model's model.json
    (``store=False``: only returned)."""
    registry = ModelRegistry(ws.layout)
    entry = registry.find(name)
    if entry is None or entry.kind != "tuned":
        raise ModelNotFound(f"No tuned model named {name!r} (see `cotrag models list`).")
    started = time.perf_counter()
    base_info = entry.info.get("base", {}) or {}
    base = str(base_info.get("reference", "") or "default")
    questions = pick_questions(ws.layout, entry, limit, qa_file)
    items, kb = questions.items, questions.kb
    dataset = str((entry.info.get("dataset", {}) or {}).get("name", ""))
    result = GuardResult(
        name,
        "unchecked",
        "",
        question_source=questions.source,
        natural_questions=questions.natural,
        base=base,
        dataset=dataset,
        kb=kb,
    )
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
        _measure(ws, result, entry, base_run, questions, on_item, cancel)
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
    questions: GuardQuestions,
    on_item: OnItem | None,
    cancel: threading.Event | None,
) -> None:
    items: list[QAItem] = questions.items
    # The base reading after the tuned search needs the base; without one, three sides.
    sides = SIDES if ws.base_model_ref(entry.name) is not None else SIDES[:3]
    total = len(items) * len(sides)
    reports: dict[str, EvalReport] = {}
    generation = ws.config.generation
    ws.config.generation = replace(generation, temperature=0.0)  # greedy: a repeatable check
    try:
        for number, side in enumerate(sides):
            if side == "tuned-base-reader":
                result.first_query = _better_first_query(reports)
            model, first_query, answer = {
                "base": (base_run, "question", ""),
                "tuned-model": (entry.name, "model", ""),
                "tuned-question": (entry.name, "question", ""),
                "tuned-base-reader": (entry.name, result.first_query, "base"),
            }[side]
            agent = ws.agent(result.kb, model=model, first_query=first_query, answer_model=answer)

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
            if side in ("base", "tuned-base-reader") or stopped:
                # The tuned model stays loaded for its next runs; the base for the last.
                ws.release(model)
                ws.release(ws.answer_model_ref(model, answer) or model)
            if stopped:
                break
    finally:
        ws.config.generation = generation
    result.summaries = {side: report.summary for side, report in reports.items()}
    if len(reports) < len(sides) or any(len(r.items) < len(items) for r in reports.values()):
        result.sentence = describe("unchecked", {}, "the check was cancelled before it finished.")
        return
    a = Side(result.base, "loop")
    for side in sides[1:]:
        comparison = Comparison(a, Side(entry.name, "loop"), result.kb)
        comparison.reports = [reports["base"], reports[side]]
        result.tables[side.removeprefix("tuned-")] = comparison.table
    result.first_query = _better_first_query(reports)
    result.table = result.tables[result.first_query]
    reader = result.tables.get("base-reader")
    if reader is not None and _right(reader) > _right(result.table):
        result.answer_model, result.table = "base", reader
    result.questions = len(items)
    result.verdict = verdict(
        result.base_right,
        result.tuned_right,
        len(items),
        float(result.table["mcnemar_p"]),
        only_worse=questions.conclusive_only_when_worse,
    )
    note = ""
    if len(items) < MIN_QUESTIONS:
        note = f"Too few questions for a verdict ({MIN_QUESTIONS} needed)."
    elif result.verdict == "unchecked":
        note = TEMPLATE_NOTE
    if result.answer_model == "base":
        note = (note + " " if note else "") + BASE_READER_NOTE
    result.sentence = describe(result.verdict, result.table, note, questions.words())


BASE_READER_NOTE = (
    "Measured with the tuned model searching and its base writing the answers: that did "
    "better than the tuned model alone, so the app answers that way (Answer with: auto)."
)


def _right(table: dict[str, Any]) -> int:
    """How often the tuned side (b) of a paired table was right."""
    return int(table.get("both", 0)) + int(table.get("only_b", 0))


def _better_first_query(reports: dict[str, EvalReport]) -> str:
    """``model`` when the tuned model's own first search was right more often than the
    seeded one (a tie goes to the seeded search)."""
    own, seeded = (
        sum(bool(i.correct) for i in reports[side].items)
        for side in ("tuned-model", "tuned-question")
    )
    return "model" if own > seeded else "question"


def unchecked(ws: Workspace, name: str, why: str) -> GuardResult:
    """Record that the guard did not run to the end (cancelled, failed): the model keeps
    no verdict."""
    result = GuardResult(name, "unchecked", describe("unchecked", {}, why))
    result.checked = datetime.now(UTC).isoformat(timespec="seconds")
    ModelRegistry(ws.layout).update_tuned(name, {"guard": result.to_dict()})
    return result
