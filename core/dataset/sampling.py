"""The model's own verified runs as training traces (rejection sampling).

For a verified question the model to be tuned runs the real loop (the app's seeded first
search) ``samples`` times at a temperature, each run with its own recorded seed. A run is
kept when it finished without a protocol error, its own ``<results>`` vet the gold
passage(s) and its short answer (the first sentence, :mod:`core.scoring`, as the guard and
``cotrag eval`` score it) holds the gold answer: a run that buries the answer in a long
ramble teaches rambling; the kept run with the fewest
completion tokens becomes the example's trace (``trace_origin = "sampled"``). A question
with no kept run keeps the trace it had (fallback ``constructed``) or leaves the dataset
(``drop``, recorded as a rejection); either is counted in ``meta["sampling"]``.

The runs of one question share their prompt and the seeded first ``<query_res>`` (the
seeded round is deterministic). With ``reuse_prefix`` every search turn of a question
runs first and the answer stages after, so each search turn after the first finds that
prefix still in the KV cache; without it each run answers right after its search, and the
answer stage's prompt pushes the prefix out.

Generation samples each accepted example right after it is constructed; a pass over an
existing dataset (:func:`sample_dataset`) records each decision before its event, so a
Cancel loses nothing and a re-run goes on with the questions not decided yet.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from core.agent.events import Event, Finished, RunStats
from core.agent.loop import Agent
from core.agent.parser import results_numbers
from core.agent.record import RunRecord
from core.dataset.candidates import TWOHOP
from core.dataset.progress import Accepted, Rejected
from core.dataset.storage import Dataset
from core.errors import CotragError
from core.scoring import score_answer

SAMPLED = "sampled"
FALLBACKS = ("constructed", "drop")
NONE_KEPT = "sample_none_kept"
"""The rejection reason of a question dropped because no run of the model was kept."""
MAX_SAMPLES = 64


@dataclass(frozen=True)
class SampleSettings:
    samples: int = 5
    temperature: float = 0.7
    model: str = ""
    """The model to be tuned ("" = the configured model, else the bundled one)."""
    fallback: str = "constructed"
    seed: int = 0
    """The dataset's seed: each run's sampling seed is drawn from it and the question."""

    def __post_init__(self) -> None:
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise CotragError(f"Samples per question must be within 1 and {MAX_SAMPLES}.")
        if not 0.0 < self.temperature <= 2.0:
            raise CotragError("The sampling temperature must be above 0 and at most 2.")
        if self.fallback not in FALLBACKS:
            raise CotragError(f"The fallback is {self.fallback!r}: use {' or '.join(FALLBACKS)}.")


def sample_seeds(seed: int, key: str, samples: int) -> list[int]:
    """The sampling seed of each run of one question: the same dataset seed and question
    give the same runs."""
    out = []
    for n in range(samples):
        digest = hashlib.sha256(f"{seed}:{key}:{n}".encode()).digest()
        out.append(int.from_bytes(digest[:4], "big") & 0x7FFFFFFF)
    return out


@dataclass(frozen=True)
class Tried:
    """One run of the model and why it was not kept ("" when it was)."""

    seed: int
    why: str
    completion_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "why": self.why, "completion_tokens": self.completion_tokens}


@dataclass
class Verdict:
    outcome: str
    """sampled, fallback, dropped, skipped (an unanswerable example) or cancelled."""
    example: dict[str, Any] | None
    """The example to keep (sampled, or as it was); None when dropped or cancelled."""
    tried: list[Tried] = field(default_factory=list)
    seconds: float = 0.0
    prefix_tokens_reused: int = 0
    prompt_tokens: int = 0
    """Prompt tokens the runs evaluated (what the cache did not hold)."""

    @property
    def detail(self) -> str:
        reasons = sorted({t.why for t in self.tried if t.why})
        return f"no run of {len(self.tried)} was kept ({', '.join(reasons)})"


def judge(
    record: RunRecord, gold_ids: list[str], answer: str, *, twohop: bool = False
) -> tuple[str, list[int]]:
    """Why a run is not kept ("" when it is) and the gold passages' numbers in it."""
    if record.protocol_errors:
        return f"protocol_error:{record.protocol_errors[0].kind}", []
    if record.error:
        return "error", []
    if record.finished not in ("retrieved", "answered"):
        return "not_finished", []
    results = next((b for b in reversed(record.blocks) if b["tag"] == "results"), None)
    vetted = set(results_numbers(str(results["text"]))) if results is not None else set()
    by_id: dict[str, int] = {}
    for number, hit in sorted(record.passages.items()):
        by_id.setdefault(hit.id, number)
    gold = [by_id.get(cid) for cid in gold_ids]
    if not gold or any(n is None or n not in vetted for n in gold):
        return "missed_gold", []
    numbers = [n for n in gold if n is not None]
    if record.finished != "answered":
        return "not_answered", numbers
    if not score_answer(record.answer, [answer])[0]:
        return "wrong_answer", numbers
    if twohop and (
        len(record.retrievals) < 2 or not all(f"[{n}]" in record.answer for n in numbers)
    ):
        return "twohop_incomplete", numbers
    return "", numbers


class Sampler:
    """Runs one question ``samples`` times through the real loop and keeps the best run."""

    def __init__(
        self,
        agent: Agent,
        settings: SampleSettings,
        *,
        cancel: threading.Event | None = None,
        reuse_prefix: bool = True,
    ) -> None:
        """``agent``: the model to be tuned on the knowledge base, as the app runs it (its
        grammar setting); each run gets its own copy seeded first with the question."""
        self.agent = agent
        self.settings = settings
        self.cancel = cancel
        self.reuse_prefix = reuse_prefix

    def _agent(self, seed: int) -> Agent:
        base = self.agent
        config = base.config
        generation = replace(config.generation, temperature=self.settings.temperature, seed=seed)
        return Agent(
            base.backend,
            base.retriever,
            replace(config, generation=generation),
            grammar=base.grammar,
            first_query="question",
            model_id=base.model_id,
        )

    def _cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def decide(self, example: dict[str, Any]) -> Verdict:
        """The example with the best kept run as its trace, or the fallback."""
        if example.get("unanswerable") or not str(example.get("question", "")).strip():
            return Verdict("skipped", example)
        started = time.perf_counter()
        question = str(example["question"])
        gold_ids = [str(c) for c in (example.get("chunk_ids") or [example.get("chunk_id", "")])]
        answer = str(example.get("gold_answer") or example.get("answer", ""))
        twohop = example.get("kind") == TWOHOP
        key = str(example.get("seed_key") or example.get("id") or question)
        seeds = sample_seeds(self.settings.seed, key, self.settings.samples)
        runs = self._runs(question, seeds, gold_ids)
        if runs is None:
            return Verdict("cancelled", None)
        records, reused = runs
        tried: list[Tried] = []
        best: tuple[int, int, RunRecord, list[int]] | None = None
        for seed, record in zip(seeds, records, strict=True):
            why, gold = judge(record, gold_ids, answer, twohop=twohop)
            tokens = record.stats.completion_tokens
            tried.append(Tried(seed, why, tokens))
            if not why and (best is None or tokens < best[0]):
                best = (tokens, seed, record, gold)
        seconds = time.perf_counter() - started
        evaluated = sum(r.stats.prompt_tokens for r in records)
        info = {
            "samples": self.settings.samples,
            "temperature": self.settings.temperature,
            "model": records[0].info.get("model", "") if records else "",
            "kept": sum(not t.why for t in tried),
            "tried": [t.to_dict() for t in tried],
        }
        if best is None:
            if self.settings.fallback == "drop":
                return Verdict("dropped", None, tried, seconds, reused, evaluated)
            kept = dict(example, sampling={**info, "outcome": "fallback", "seed": None})
            return Verdict("fallback", kept, tried, seconds, reused, evaluated)
        _, seed, record, gold = best
        sampled = dict(
            example,
            record=record.to_dict(),
            trace_origin=SAMPLED,
            gold_numbers=gold,
            rounds=record.stats.rounds,
            sampling={**info, "outcome": SAMPLED, "seed": seed},
        )
        return Verdict(SAMPLED, sampled, tried, seconds, reused, evaluated)

    def _runs(
        self, question: str, seeds: list[int], gold_ids: list[str]
    ) -> tuple[list[RunRecord], int] | None:
        """One record per seed (None: cancelled) and the prompt tokens the search turns
        found in the cache from an earlier run of the same question."""
        agents = [self._agent(seed) for seed in seeds]
        records: list[RunRecord] = []
        reused = 0
        for n, agent in enumerate(agents):
            record = self._search(agent, question)
            if self._cancelled():
                return None
            if self.reuse_prefix and n > 0:
                reused += min(max(0, _prefix_tokens(agent, record) - 1), record.stats.cached_tokens)
            if not self.reuse_prefix:
                self._answer(agent, record, gold_ids)
            records.append(record)
        if self.reuse_prefix:
            for agent, record in zip(agents, records, strict=True):
                self._answer(agent, record, gold_ids)
        if self._cancelled():
            return None
        return records, reused

    def _search(self, agent: Agent, question: str) -> RunRecord:
        record = RunRecord(question=question, mode="loop")
        try:
            for event in agent.run(question, retriever_only=True, cancel=self.cancel):
                record.add(event)
        except Exception as exc:  # a run that fails is a run not kept, never a stop
            record.finished, record.error = "error", f"{type(exc).__name__}: {exc}"
        return record

    def _answer(self, agent: Agent, record: RunRecord, gold_ids: list[str]) -> None:
        """The answer stage of a search turn that can still be kept (the others are not
        worth the tokens)."""
        if self._cancelled() or judge(record, gold_ids, "")[0] not in ("not_answered",):
            return
        try:
            events = agent.answer_stage(
                record.question, record.passages, record.results, cancel=self.cancel
            )
            _answered(record, events)
        except Exception as exc:
            record.finished, record.error = "error", f"{type(exc).__name__}: {exc}"


def _answered(record: RunRecord, events: Iterator[Event]) -> None:
    """A search-turn record completed with its answer stage's events, as one run."""
    for event in events:
        if not isinstance(event, Finished):
            record.add(event)
            continue
        s, a = record.stats, event.stats
        record.stats = RunStats(
            rounds=s.rounds,
            prompt_tokens=s.prompt_tokens + a.prompt_tokens,
            cached_tokens=s.cached_tokens + a.cached_tokens,
            completion_tokens=s.completion_tokens + a.completion_tokens,
            seconds=s.seconds + a.seconds,
            generation_seconds=s.generation_seconds + a.generation_seconds,
            protocol_errors=s.protocol_errors,
        )
        record.finished = event.reason


def _prefix_tokens(agent: Agent, record: RunRecord) -> int:
    """Tokens of what every run of the question shares: the search prompt and what the
    loop wrote before the model's first word (the seeded query and its passages)."""
    shared = []
    for span in record.spans:
        if span.author == "model":
            break
        shared.append(span.text)
    prompt = agent.backend.chat_prompt(record.messages.get("search", []))
    return agent.backend.count_tokens(prompt + "".join(shared))


# -- the figures ----------------------------------------------------------------------


class Tally:
    """``meta["sampling"]`` of a dataset, added to by every decided question (and saved)."""

    def __init__(self, dataset: Dataset, settings: SampleSettings) -> None:
        self.dataset = dataset
        self.settings = settings

    def add(self, verdict: Verdict) -> dict[str, Any]:
        if verdict.outcome not in (SAMPLED, "fallback", "dropped"):
            return dict(self.dataset.meta.get("sampling", {}))
        old = dict(self.dataset.meta.get("sampling", {}))
        figures = {
            name: int(old.get(name, 0))
            for name in ("questions", "kept", "fallback", "dropped", "runs", "runs_kept")
        }
        figures["questions"] += 1
        figures[{SAMPLED: "kept"}.get(verdict.outcome, verdict.outcome)] += 1
        figures["runs"] += len(verdict.tried)
        figures["runs_kept"] += sum(not t.why for t in verdict.tried)
        new = {
            **figures,
            "samples": self.settings.samples,
            "temperature": self.settings.temperature,
            "model": self.settings.model,
            "fallback_setting": self.settings.fallback,
            "keep_rate": round(figures["kept"] / figures["questions"], 3),
            "seconds": round(float(old.get("seconds", 0.0)) + verdict.seconds, 1),
            "prefix_tokens_reused": int(old.get("prefix_tokens_reused", 0))
            + verdict.prefix_tokens_reused,
        }
        self.dataset.meta["sampling"] = new
        self.dataset.save_meta()
        return new


# -- a pass over a dataset --------------------------------------------------------------


@dataclass(frozen=True)
class SampleProgress:
    done: int
    total: int
    kept: int
    fallback: int
    dropped: int
    per_minute: float
    """Questions decided per minute in this run."""
    eta_s: float | None

    @property
    def keep_rate(self) -> float:
        decided = self.kept + self.fallback + self.dropped
        return self.kept / decided if decided else 0.0


SampleEvent = Accepted | Rejected | SampleProgress


def undecided(dataset: Dataset) -> list[dict[str, Any]]:
    """The examples a pass has still to decide (an unanswerable one has nothing to
    sample: the model would have to miss its document on purpose)."""
    dropped = {
        str(r.get("seed_key", "")) for r in dataset.rejections() if r.get("reason") == NONE_KEPT
    }
    return [
        e
        for e in dataset.examples()
        if "sampling" not in e
        and not e.get("unanswerable")
        and str(e.get("seed_key", "")) not in dropped
    ]


def sample_dataset(
    dataset: Dataset, sampler: Sampler, cancel: threading.Event | None = None
) -> Iterator[SampleEvent]:
    """Each example not decided before, sampled; the example in the file is replaced by
    its sampled (or fallback) version, or removed and rejected when dropped, before its
    event is yielded."""
    todo = undecided(dataset)
    tally = Tally(dataset, sampler.settings)
    counts = {SAMPLED: 0, "fallback": 0, "dropped": 0}
    started = time.monotonic()
    for done, example in enumerate(todo, 1):
        if cancel is not None and cancel.is_set():
            break
        verdict = sampler.decide(example)
        if verdict.outcome == "cancelled":
            break
        if verdict.outcome == "dropped":
            dataset.append_rejection(
                {
                    "seed_key": example.get("seed_key", ""),
                    "reason": NONE_KEPT,
                    "detail": verdict.detail,
                    "question": example.get("question", ""),
                    "answer": example.get("answer", ""),
                    "kind": example.get("kind", ""),
                    "chunk_id": example.get("chunk_id", ""),
                    "source": example.get("source", ""),
                }
            )
            _replace(dataset, str(example.get("id", "")), None)
            event: SampleEvent = Rejected(NONE_KEPT, verdict.detail)
        elif verdict.example is not None:
            _replace(dataset, str(example.get("id", "")), verdict.example)
            event = Accepted(verdict.example)
        else:
            continue
        tally.add(verdict)
        if verdict.outcome in counts:
            counts[verdict.outcome] += 1
        yield event
        elapsed = time.monotonic() - started
        pace = done / elapsed if elapsed > 0 else 0.0
        yield SampleProgress(
            done,
            len(todo),
            counts[SAMPLED],
            counts["fallback"],
            counts["dropped"],
            pace * 60,
            (len(todo) - done) / pace if pace > 0 else None,
        )


def _replace(dataset: Dataset, example_id: str, new: dict[str, Any] | None) -> None:
    examples = [(new if e.get("id") == example_id else e) for e in dataset.examples()]
    dataset.rewrite_examples([e for e in examples if e is not None])
