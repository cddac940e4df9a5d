"""Alternating rounds: tune the embedder, re-trace the dataset through it, tune the generator.

One round, on a knowledge base and a dataset made from it:

1. **embedder**: an embedder run on the dataset (round 1 starts from the bundled
   MiniLM, later rounds from the previous round's embedder); its recall@k on the
   held-out documents before and after is the round's retrieval figure;
2. **re-embed**: the knowledge base gets a version with that embedder and switches
   to it (the older versions stay: switching back undoes the whole schedule);
3. **re-trace**: a new dataset ``<name>-r<N>`` holds the same verified questions
   traced again, so each ``<query_res>`` shows what the tuned retriever returns;
4. **generator**: a generator run on the re-traced dataset (round 1 from the chosen
   base, later rounds from the previous round's tuned model); its validation loss
   before and after is the round's generation figure.

Every step is resumable and the schedule records what is done in
``training/<name>.rounds.json``: running it again with the same name skips finished
steps, resumes a cut-off training run from its checkpoint, continues a half-built
version or a half re-traced dataset.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from core.dataset.progress import Accepted, Rejected
from core.dataset.service import generator
from core.dataset.spec import GenerateSpec
from core.dataset.storage import DatasetStore
from core.errors import CotragError
from core.fileio import write_atomic
from core.knowledge import reembed
from core.names import check_name
from core.training.events import Done, Eval, WorkerEvent, to_dict
from core.training.process import TrainProcess
from core.training.runs import RunStore
from core.training.spec import TrainSpec

if TYPE_CHECKING:
    from core.workspace import Workspace

STEPS = ("embedder", "reembed", "retrace", "generator")


@dataclass(frozen=True)
class RoundStep:
    """A step of a round begins (``step`` is one of :data:`STEPS`)."""

    event: ClassVar[str] = "round_step"
    round: int
    step: str


@dataclass(frozen=True)
class RoundDone:
    """A round is finished: its figures (names made, recall before/after, losses)."""

    event: ClassVar[str] = "round_done"
    figures: dict[str, Any]
    """``round``, ``embedder``, ``recall@k_before`` / ``_after``, ``version``,
    ``dataset``, ``examples``, ``model``, ``eval_loss_before``, ``eval_loss``…"""


@dataclass(frozen=True)
class Reembedding:
    """The knowledge base is being re-embedded with the round's embedder."""

    event: ClassVar[str] = "reembed"
    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class Retracing:
    """The dataset's questions are being traced again through the tuned search."""

    event: ClassVar[str] = "retrace"
    accepted: int
    rejected: int


@dataclass(frozen=True)
class RunEvent:
    """An event of one of the schedule's training runs (``run`` is its name)."""

    event: ClassVar[str] = "run"
    run: str
    worker: WorkerEvent


RoundsEvent = RoundStep | RoundDone | Reembedding | Retracing | RunEvent
OnEvent = Callable[[RoundsEvent], None]


def rounds_event_dict(event: RoundsEvent) -> dict[str, Any]:
    """The event as one JSON object (``cotrag train-rounds --json``): a training run's
    event is the worker's own object with ``run`` added."""
    if isinstance(event, RunEvent):
        return {**to_dict(event.worker), "run": event.run}
    if isinstance(event, RoundDone):
        return {"event": event.event, **event.figures}
    return {"event": event.event, **asdict(event)}


class RoundsFailed(CotragError, RuntimeError):
    pass


@dataclass
class RoundsPlan:
    name: str
    dataset: str
    kb: str = ""
    """Default: the dataset's knowledge base."""
    rounds: int = 2
    base: str = "default"
    """The generator's base in round 1."""
    embedder: dict[str, Any] = field(default_factory=dict)
    """Spec fields over the ``embedder`` preset."""
    generator_preset: str = "cpu-quick"
    generator: dict[str, Any] = field(default_factory=dict)
    """Spec fields over ``generator_preset``."""

    def check(self) -> None:
        check_name(self.name, "schedule")
        if not 1 <= self.rounds <= 20:
            raise RoundsFailed(f"rounds is {self.rounds}: use 1 to 20.")


@dataclass
class RoundsState:
    plan: dict[str, Any]
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``"<round>:<step>"`` → what that step produced (names, figures)."""


def state_file(ws: Workspace, name: str) -> Path:
    return ws.layout.root / "training" / f"{name}.rounds.json"


def load_state(ws: Workspace, name: str) -> RoundsState | None:
    try:
        data = json.loads(state_file(ws, name).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return RoundsState(data.get("plan", {}), data.get("done", {}))


def _save(ws: Workspace, name: str, state: RoundsState) -> None:
    path = state_file(ws, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(asdict(state), indent=1))


def run_rounds(
    ws: Workspace,
    plan: RoundsPlan,
    *,
    on_event: OnEvent | None = None,
    cancel: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """Run (or continue) the schedule; returns one summary per finished round."""
    plan.check()
    say = on_event or (lambda e: None)
    cancel = cancel or threading.Event()
    source = DatasetStore(ws.layout.datasets).open(plan.dataset)
    kb_name = plan.kb or str(source.meta.get("kb", ""))
    if not kb_name:
        raise RoundsFailed(f"Dataset {plan.dataset!r} names no knowledge base: give one.")
    plan = replace(plan, kb=kb_name)
    state = load_state(ws, plan.name) or RoundsState(asdict(plan))
    _save(ws, plan.name, state)
    dataset, embedder_base, generator_base = plan.dataset, "default", plan.base
    summaries: list[dict[str, Any]] = []
    for number in range(1, plan.rounds + 1):
        figures: dict[str, Any] = {"round": number}
        for step in STEPS:
            if cancel.is_set():
                return summaries
            key = f"{number}:{step}"
            found = state.done.get(key)
            if found is None:
                say(RoundStep(number, step))
                found = _STEP[step](
                    _Round(ws, plan, number, dataset, embedder_base, generator_base, say, cancel)
                )
                if found is None:  # cancelled part-way: resumable
                    return summaries
                state.done[key] = found
                _save(ws, plan.name, state)
            figures.update(found)
            if step == "embedder":
                embedder_base = found["embedder"]
            elif step == "retrace":
                dataset = found["dataset"]
            elif step == "generator":
                generator_base = found["model"]
        summaries.append(figures)
        say(RoundDone(dict(figures)))
    return summaries


# -- steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Round:
    """What a step of round ``number`` works from."""

    ws: Workspace
    plan: RoundsPlan
    number: int
    dataset: str
    """The dataset the round's embedder trains on (the last re-traced one)."""
    embedder_base: str
    generator_base: str
    say: OnEvent
    cancel: threading.Event


def _train(
    ws: Workspace, name: str, spec: TrainSpec, say: OnEvent, cancel: threading.Event
) -> Done | None:
    """Run (or resume) one training run in the worker; its final event, or None if cancelled."""
    store = RunStore(ws.layout)
    if store.exists(name):
        run = store.get(name)
        if run.state == "done":
            final = [e for e in run.worker_events() if isinstance(e, Done)]
            if not final:
                raise RoundsFailed(f"Run {name!r} says done but recorded no result.")
            return final[-1]
        resume = run.latest_checkpoint() is not None
    else:
        run = store.create(name, spec)
        resume = False
    proc = TrainProcess(run, ws.layout, resume=resume)
    proc.start()
    stopper = threading.Thread(target=_stop_on, args=(cancel, proc), daemon=True)
    stopper.start()
    outcome = proc.wait(lambda e: say(RunEvent(name, e)))
    if isinstance(outcome.final, Done):
        return outcome.final
    if outcome.state == "cancelled" or cancel.is_set():
        return None
    raise RoundsFailed(f"Run {name!r}: {outcome.sentence(run.log_file)}")


def _stop_on(cancel: threading.Event, proc: TrainProcess) -> None:
    while proc.proc is None or proc.proc.poll() is None:
        if cancel.wait(0.5):
            proc.cancel()
            return


def _embedder_step(r: _Round) -> dict[str, Any] | None:
    spec = TrainSpec(dataset=r.dataset).with_preset("embedder")
    spec = replace(spec, base=r.embedder_base, kb=r.plan.kb, **r.plan.embedder)
    name = f"{r.plan.name}-r{r.number}-embedder"
    final = _train(r.ws, name, spec, r.say, r.cancel)
    if final is None:
        return None
    metrics = final.metrics
    k = spec.recall_k
    return {
        "embedder": final.model,
        f"recall@{k}_before": metrics.get(f"recall@{k}", {}).get("before"),
        f"recall@{k}_after": metrics.get(f"recall@{k}", {}).get("after"),
    }


def _reembed_step(r: _Round) -> dict[str, Any] | None:
    kb = r.ws.store.get(r.plan.kb)
    started = time.monotonic()
    if kb.embedder_name == r.embedder_base:
        return {"version": kb.active_version.number, "reembed_s": 0.0}

    def progress(p: Any) -> None:
        r.say(Reembedding(p.stage, p.done, p.total))

    result = reembed.reembed(kb, r.embedder_base, on_progress=progress, cancel=r.cancel)
    if result.cancelled:
        return None
    return {"version": result.version.number, "reembed_s": round(time.monotonic() - started, 1)}


def _retrace_step(r: _Round) -> dict[str, Any] | None:
    # Always the schedule's own dataset: re-tracing the last round's would let each round's
    # rejections add up.
    source = DatasetStore(r.ws.layout.datasets).open(r.plan.dataset)
    known = {f.name for f in GenerateSpec.__dataclass_fields__.values()}
    values = {k: v for k, v in dict(source.meta.get("spec", {})).items() if k in known}
    values["kb"] = r.plan.kb
    spec = GenerateSpec(**values)
    name = f"{r.plan.name}-r{r.number}"
    gen, target, _ = generator(r.ws, name, spec, None, cancel=r.cancel)
    accepted = rejected = 0
    reasons: dict[str, int] = {}
    for event in gen.retrace(source.examples()):
        if isinstance(event, Accepted):
            accepted += 1
        elif isinstance(event, Rejected):
            rejected += 1
            reasons[event.reason] = reasons.get(event.reason, 0) + 1
        r.say(Retracing(accepted, rejected))
    if r.cancel.is_set():
        return None
    return {
        "dataset": name,
        "examples": len(target.examples()),
        "retrace_rejected": dict(sorted(reasons.items())),
    }


def _generator_step(r: _Round) -> dict[str, Any] | None:
    spec = TrainSpec(dataset=r.dataset).with_preset(r.plan.generator_preset)
    spec = replace(spec, base=r.generator_base, **r.plan.generator)
    name = f"{r.plan.name}-r{r.number}-generator"
    final = _train(r.ws, name, spec, r.say, r.cancel)
    if final is None:
        return None
    metrics = final.metrics
    events = RunStore(r.ws.layout).get(name).worker_events()
    first = next((e.loss for e in events if isinstance(e, Eval) and e.step == 0), None)
    return {
        "model": final.model,
        "eval_loss_before": first,
        "eval_loss": metrics.get("eval_loss"),
    }


_STEP = {
    "embedder": _embedder_step,
    "reembed": _reembed_step,
    "retrace": _retrace_step,
    "generator": _generator_step,
}
