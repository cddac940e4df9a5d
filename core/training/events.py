"""The training worker's progress: one typed event per kind, one JSON line each on the wire.

    @@cotrag {"event": "step", "step": 12, "total": 60, "loss": 1.93, ...}

The sentinel lets a reader pick the events out of whatever else a process prints
(a library's warnings, a notebook's cell output on a remote GPU), so local and
remote runs are parsed the same way, once, by :func:`parse_event`. The worker (and
the Colab notebook's cells) build the dataclasses below and write them with
:func:`encode`; the run folder's ``events.jsonl`` holds the same objects without
the sentinel (:func:`to_dict` / :func:`from_dict`).

A field left at ``None`` is not written: a generator's ``started`` has no
``corpus``, an embedder's ``eval`` no ``loss`` when there are too few questions
for a batch. Fields a reader does not know (a newer worker's) land in ``extra``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeGuard

SENTINEL = "@@cotrag "


def _extra() -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Preparing:
    """Before the first step: converting the base, loading, tokenizing, downloading."""

    event: ClassVar[str] = "preparing"
    stage: str = ""
    """``base``, ``model``, ``tokenizing``, ``data``, ``dataset`` (remote)…"""
    message: str = ""
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)


@dataclass(frozen=True)
class Started:
    """The model is loaded and the data ready: what the run will do."""

    event: ClassVar[str] = "started"
    engine: str = ""
    device: str = ""
    dtype: str = ""
    threads: int | None = None
    base: str = ""
    rows_train: int = 0
    rows_validation: int = 0
    total: int = 0
    """Optimizer steps in the whole run."""
    start_step: int = 0
    """Above 0 when the run resumes from a checkpoint."""
    processes: int = 1
    trainable_params: int = 0
    total_params: int = 0
    resumed_from: str = ""
    kind: str | None = None
    """``embedder`` for an embedder run (a generator run leaves it out)."""
    dropped_too_long: int | None = None
    """Generator: rows left out for being longer than max_seq_len."""
    tokens_train: int | None = None
    trained_tokens: int | None = None
    """Generator: tokens the loss is computed on (the loop's blocks are masked)."""
    corpus: int | None = None
    """Embedder: passages recall is measured among."""
    skipped: dict[str, int] | None = None
    """Embedder: questions left out, by reason (no usable gold passage…)."""
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)


@dataclass(frozen=True)
class Step:
    """One optimizer step."""

    event: ClassVar[str] = "step"
    step: int = 0
    total: int = 0
    loss: float = 0.0
    lr: float = 0.0
    tokens: int = 0
    tokens_per_s: float = 0.0
    eta_s: float = 0.0
    epoch: float = 0.0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)


@dataclass(frozen=True)
class Eval:
    """Held-out figures: a generator's validation loss; an embedder's recall@k (and its
    validation loss when there are questions enough for a batch). Step 0 is the base."""

    event: ClassVar[str] = "eval"
    step: int = 0
    loss: float | None = None
    recall: dict[str, float] | None = None
    """``{"recall@1": 0.55, "recall@5": 0.83, ...}`` (embedder runs)."""
    passages: int | None = None
    """The passages recall was measured among (embedder runs)."""
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)

    @property
    def metrics(self) -> dict[str, float]:
        """Every figure in one mapping: ``loss`` and the recall@k."""
        out: dict[str, float] = dict(self.recall or {})
        if self.loss is not None:
            out["loss"] = self.loss
        return out


@dataclass(frozen=True)
class Checkpoint:
    event: ClassVar[str] = "checkpoint"
    step: int = 0
    path: str = ""
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)


@dataclass(frozen=True)
class Exporting:
    """Writing the result: adapter, merged, f16, q8_0, q4_k_m, lora, embedder, package, push."""

    event: ClassVar[str] = "exporting"
    what: str = ""
    index: int = 0
    total: int = 0
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)


@dataclass(frozen=True)
class Guarding:
    """The guard after the export: base and tuned answering held-out questions."""

    event: ClassVar[str] = "guarding"
    index: int = 0
    """Questions answered so far, over all sides."""
    total: int = 0
    side: str = ""
    """``base``, ``tuned-model`` (its own first query) or ``tuned-question`` (seeded)."""
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)


@dataclass(frozen=True)
class GuardDone:
    """The guard's verdict on the tuned model (``better``, ``same``, ``worse`` or
    ``unchecked``), in one sentence, with its paired table."""

    event: ClassVar[str] = "guard_done"
    verdict: str = "unchecked"
    sentence: str = ""
    table: dict[str, Any] = field(default_factory=dict)
    first_query: str = ""
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)


@dataclass(frozen=True)
class Done:
    """The run finished and its result is registered (``model`` is its name)."""

    event: ClassVar[str] = "done"
    model: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    """Variant → path (a remote run: paths relative to the model's folder)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    kind: str | None = None
    """``embedder`` for an embedder run."""
    remote: bool | None = None
    """A Colab run's result (the fields below describe its package)."""
    archive: str | None = None
    archive_sha256: str | None = None
    files: dict[str, Any] | None = None
    hub_repo: str | None = None
    where: str | None = None
    """``colab`` for a run trained on a Colab runtime."""
    fetched: bool | None = None
    """Its results were fetched by hand (``cotrag train fetch``)."""
    guard: str | None = None
    """The guard's verdict on the tuned model, in one sentence (a generator run that ran
    the guard)."""
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)


@dataclass(frozen=True)
class Cancelled:
    """Stopped on request after a checkpoint; Resume continues from ``checkpoint``."""

    event: ClassVar[str] = "cancelled"
    step: int = 0
    checkpoint: str = ""
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)


ERROR_KINDS = ("spec", "data", "base", "oom", "disk_full", "engine", "internal")


@dataclass(frozen=True)
class Error:
    """The run failed: ``kind`` is one of :data:`ERROR_KINDS`, ``fix`` what to change."""

    event: ClassVar[str] = "error"
    kind: str = "internal"
    message: str = ""
    fix: str = ""
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)

    def sentence(self) -> str:
        return f"{self.message or 'Training failed.'} {self.fix}".strip()


@dataclass(frozen=True)
class Log:
    event: ClassVar[str] = "log"
    message: str = ""
    extra: dict[str, Any] = field(default_factory=_extra, compare=False, repr=False)


WorkerEvent = (
    Preparing
    | Started
    | Step
    | Eval
    | Checkpoint
    | Exporting
    | Guarding
    | GuardDone
    | Done
    | Cancelled
    | Error
    | Log
)
FinalEvent = Done | Cancelled | Error
"""The events that end a run (one of them comes last)."""
Emit = Callable[[WorkerEvent], None]

_TYPES: dict[str, type[WorkerEvent]] = {
    cls.event: cls
    for cls in (
        Preparing,
        Started,
        Step,
        Eval,
        Checkpoint,
        Exporting,
        Guarding,
        GuardDone,
        Done,
        Cancelled,
        Error,
        Log,
    )
}
_FIELDS = {
    kind: {f.name for f in dataclasses.fields(cls)} - {"extra"} for kind, cls in _TYPES.items()
}


def is_final(event: WorkerEvent) -> TypeGuard[FinalEvent]:
    """``done``, ``cancelled`` or ``error``: the run ends with it."""
    return isinstance(event, Done | Cancelled | Error)


def to_dict(event: WorkerEvent) -> dict[str, Any]:
    """The event as its JSON object: ``{"event": kind, ...}``, unset (None) fields left out."""
    out: dict[str, Any] = {"event": event.event}
    for f in dataclasses.fields(event):
        if f.name == "extra":
            continue
        value = getattr(event, f.name)
        if value is not None:
            out[f.name] = value
    for key, value in event.extra.items():
        out.setdefault(key, value)
    return out


def from_dict(data: Mapping[str, Any]) -> WorkerEvent | None:
    """The event in a JSON object (None when it is not one of ours)."""
    cls = _TYPES.get(str(data.get("event")))
    if cls is None:
        return None
    known = _FIELDS[cls.event]
    values = {k: v for k, v in data.items() if k in known}
    extra = {k: v for k, v in data.items() if k not in known and k != "event"}
    try:
        return cls(**values, extra=extra)
    except TypeError:
        return None


def encode(event: WorkerEvent) -> str:
    """The wire line (without the newline)."""
    return SENTINEL + json.dumps(to_dict(event), ensure_ascii=False)


def parse_event(line: str) -> WorkerEvent | None:
    """The event on this line, or None for any other output (and for a torn line)."""
    at = line.find(SENTINEL)
    if at < 0:
        return None
    try:
        data = json.loads(line[at + len(SENTINEL) :])
    except ValueError:
        return None
    return from_dict(data) if isinstance(data, dict) else None


def read_events(path: Path) -> list[WorkerEvent]:
    """The events recorded in a run's ``events.jsonl`` (a torn last line is skipped)."""
    out: list[WorkerEvent] = []
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    data = json.loads(line)
                except ValueError:
                    continue  # a torn last line after a kill
                event = from_dict(data) if isinstance(data, dict) else None
                if event is not None:
                    out.append(event)
    except FileNotFoundError:
        pass
    return out


@dataclass(frozen=True)
class ProcessOutcome:
    """How a worker process ended (local or in the app), in the terms a user needs."""

    exit_code: int | None
    """None when it died of a signal."""
    signal: int | None = None
    cancelled: bool = False
    """The user asked it to stop."""
    final: FinalEvent | None = None
    """Its last ``done`` / ``cancelled`` / ``error`` event, if one came."""

    @property
    def error(self) -> Error | None:
        return self.final if isinstance(self.final, Error) else None

    @property
    def state(self) -> str:
        """``done``, ``cancelled``, ``failed`` or ``interrupted`` (ended without saying)."""
        if isinstance(self.final, Done):
            return "done"
        if isinstance(self.final, Cancelled) or self.cancelled:
            return "cancelled"
        if isinstance(self.final, Error):
            return "failed"
        return "interrupted"

    def sentence(self, log_file: Path | None = None) -> str:
        final, state = self.final, self.state
        if isinstance(final, Done):
            done = f"Done: the tuned model is {final.model or '?'}."
            return f"{done} {final.guard}" if final.guard else done
        if state == "cancelled":
            if isinstance(final, Cancelled):
                where = final.checkpoint or "no checkpoint yet"
                return f"Cancelled at step {final.step} ({where}); Resume continues."
            return "Cancelled at step ? (no checkpoint yet); Resume continues."
        if isinstance(final, Error):
            return final.sentence()
        how = f"signal {self.signal}" if self.signal else f"exit code {self.exit_code}"
        where = f" (its log: {log_file})" if log_file else ""
        return (
            f"The training process ended without finishing ({how}){where}: the last "
            "checkpoint is kept and Resume continues from it."
        )
