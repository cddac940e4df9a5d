"""One model on a set of questions (`cotrag eval`): QA files, each answer scored, and the
report: accuracy (on the short answer, and the old whole-answer containment beside it),
the median answer length, retrieval recall@k, rounds, protocol errors, cost per question."""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.agent.record import RunRecord
from core.errors import CotragError
from core.scoring import answer_words, contains_any, score_answer

if TYPE_CHECKING:
    from core.agent.loop import Agent

log = logging.getLogger(__name__)


class QAFileError(CotragError, ValueError):
    pass


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    answers: list[str]


def load_qa(path: Path) -> list[QAItem]:
    """Read QA lines ``{"id": ..., "question": ..., "answers": [..]}``; errors name the line."""
    items: list[QAItem] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise QAFileError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            question = str(data["question"]).strip()
            answers = data["answers"]
            if isinstance(answers, str):
                answers = [answers]
            answers = [str(a) for a in answers if str(a).strip()]
        except (ValueError, KeyError, TypeError) as exc:
            raise QAFileError(
                f"{path}:{number}: expected a JSON object with 'question' and 'answers' ({exc})"
            ) from exc
        if not question or not answers:
            raise QAFileError(f"{path}:{number}: empty question or no expected answers")
        items.append(QAItem(str(data.get("id", number)), question, answers))
    if not items:
        raise QAFileError(f"{path} has no questions.")
    return items


@dataclass
class ItemResult:
    id: str
    question: str
    expected: list[str]
    answer: str
    correct: bool
    """The short answer (its ``Answer:`` line, else its first sentence) contains an expected
    string: what ``accuracy`` counts."""
    retrieval_hit: bool | None
    """Any retrieved passage of any round contains an expected string (None: no retrieval)."""
    rounds: int
    protocol_errors: list[str]
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    seconds: float
    finished: str
    error: str = ""
    contains: bool = False
    """The whole answer contains an expected string (the old score, ``accuracy_contains``)."""
    answer_words: int = 0


@dataclass
class EvalReport:
    mode: str
    kb: str
    model: str
    items: list[ItemResult] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        n = len(self.items)
        if not n:
            return {"questions": 0}
        with_retrieval = [i for i in self.items if i.retrieval_hit is not None]
        return {
            "questions": n,
            "accuracy": round(sum(i.correct for i in self.items) / n, 4),
            "accuracy_contains": round(sum(i.contains for i in self.items) / n, 4),
            "median_answer_words": statistics.median(i.answer_words for i in self.items),
            "recall_at_k": (
                round(sum(bool(i.retrieval_hit) for i in with_retrieval) / len(with_retrieval), 4)
                if with_retrieval
                else None
            ),
            "mean_rounds": round(sum(i.rounds for i in self.items) / n, 3),
            "protocol_error_rate": round(sum(bool(i.protocol_errors) for i in self.items) / n, 4),
            "protocol_errors_per_question": round(
                sum(len(i.protocol_errors) for i in self.items) / n, 3
            ),
            "failed_runs": sum(bool(i.error) for i in self.items),
            "prompt_tokens_per_question": round(sum(i.prompt_tokens for i in self.items) / n, 1),
            "cached_tokens_per_question": round(sum(i.cached_tokens for i in self.items) / n, 1),
            "completion_tokens_per_question": round(
                sum(i.completion_tokens for i in self.items) / n, 1
            ),
            "seconds_per_question": round(sum(i.seconds for i in self.items) / n, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "kb": self.kb,
            "model": self.model,
            "summary": self.summary,
            "items": [asdict(i) for i in self.items],
        }


def evaluate_item(agent: Agent, item: QAItem, mode: str) -> ItemResult:
    record = RunRecord(question=item.question, mode=mode)
    started = time.perf_counter()
    error = ""
    try:
        for event in agent.run(item.question, mode=mode):  # type: ignore[arg-type]
            record.add(event)
    except Exception as exc:  # one bad question must not end the evaluation
        log.exception("eval item %s failed", item.id)
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    data = record.to_dict()
    retrievals = data.get("retrievals", [])
    passages = [h.get("text", "") for r in retrievals for h in r.get("hits", [])]
    stats = data.get("stats", {}) or {}
    answer = data.get("answer", "") or ""
    correct, contains = score_answer(answer, item.answers)
    return ItemResult(
        id=item.id,
        question=item.question,
        expected=item.answers,
        answer=answer,
        correct=correct,
        retrieval_hit=(
            any(contains_any(p, item.answers) for p in passages) if mode != "closed" else None
        ),
        rounds=int(stats.get("rounds", 0)),
        protocol_errors=[str(e.get("kind")) for e in data.get("protocol_errors", [])],
        prompt_tokens=int(stats.get("prompt_tokens", 0)),
        cached_tokens=int(stats.get("cached_tokens", 0)),
        completion_tokens=int(stats.get("completion_tokens", 0)),
        seconds=round(seconds, 3),
        finished=str(data.get("finished", "")),
        error=error,
        contains=contains,
        answer_words=answer_words(answer),
    )


def evaluate(
    agent: Agent,
    items: list[QAItem],
    *,
    mode: str,
    kb: str = "",
    model: str = "",
    on_item: Callable[[int, ItemResult], None] | None = None,
    cancel: threading.Event | None = None,
) -> EvalReport:
    report = EvalReport(mode=mode, kb=kb, model=model)
    for index, item in enumerate(items):
        if cancel is not None and cancel.is_set():
            break
        result = evaluate_item(agent, item, mode)
        report.items.append(result)
        if on_item is not None:
            on_item(index, result)
    return report
