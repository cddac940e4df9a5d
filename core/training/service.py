"""Training, one entry per use case: prepare a run once, then launch it.

The CLI (``cotrag train``, ``cotrag train-embedder``) and the Training tab both start
here. :func:`prepare_run` checks the job once — the spec's fields, the dataset and its
rows, the base, and for a generator every row's length with the base's tokenizer; for
an embedder its question/passage pairs and the held-out corpus — and writes the run
folder. What comes back, a :class:`PreparedRun`, is what a launcher takes: here
:func:`run_local` (wait for it, the CLI) or :func:`local_command` (the app's QProcess);
on a Colab GPU :func:`core.colab.service.run_on_colab`. The worker then reads the
run's ``spec.toml`` once and loads the job it describes without checking it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import CotragError
from core.knowledge.embedder_catalog import check_new_name
from core.training.embedder_data import EmbedderChecked, check_embedder_job
from core.training.events import ProcessOutcome, WorkerEvent
from core.training.preflight import Checked, check_job
from core.training.process import TrainProcess, worker_command
from core.training.runs import Run, RunStore
from core.training.spec import TrainSpec

if TYPE_CHECKING:
    from core.paths import DataLayout
    from core.workspace import Workspace


class RunBusy(CotragError, RuntimeError):
    """The run is running already, or finished: it cannot be started again."""


@dataclass(frozen=True)
class PreparedRun:
    """A run whose job was checked and whose folder is written: ready to launch."""

    run: Run
    spec: TrainSpec
    resume: bool = False
    """Continue from the run's last checkpoint."""
    checked: Checked | None = None
    """A generator job: its dataset, rows and base (with the rows' lengths for a new run)."""
    embedder: EmbedderChecked | None = None
    """An embedder job: its pairs and held-out corpus (a new run only)."""

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def kind(self) -> str:
        """``generator`` or ``embedder``."""
        return self.spec.kind

    @property
    def note(self) -> str:
        """What the run will train on, in a sentence ('' for a resumed run)."""
        prepared = self.checked.prepared if self.checked is not None else None
        if prepared is not None:
            return (
                f"{len(prepared.train)} training rows ({prepared.train_tokens} tokens), "
                + (
                    f"{len(prepared.validation)} validation rows"
                    if prepared.validation
                    else "no validation rows (the dataset holds out no document: no "
                    "validation loss)"
                )
                + (
                    f", {prepared.too_long} longer than max_seq_len left out"
                    if prepared.too_long
                    else ""
                )
            )
        if self.embedder is not None:
            e = self.embedder
            skipped = ", ".join(f"{n} {why}" for why, n in e.skipped.items())
            return (
                f"{len(e.train)} training questions, {len(e.validation)} held-out questions "
                f"searched among {len(e.corpus.ids)} passages"
                + (f" (left out: {skipped})" if skipped else "")
            )
        return ""


def runs(ws: Workspace) -> RunStore:
    return RunStore(ws.layout)


def default_name(ws: Workspace, spec: TrainSpec) -> str:
    """A free run name for ``spec``: ``<dataset>-tuned`` or ``<dataset>-embedder``."""
    suffix = "embedder" if spec.kind == "embedder" else "tuned"
    return runs(ws).unique_name(f"{spec.dataset}-{suffix}")


def prepare_run(
    ws: Workspace, spec: TrainSpec, name: str | None = None, *, here: bool = True
) -> PreparedRun:
    """Check a new job once and create its run (``name``, else :func:`default_name`).

    ``here``: it runs on this computer (not on Colab), whose GPU and environment are
    checked too. Raises :class:`core.training.spec.SpecError` with every problem found
    (fields, this computer, dataset, base, lengths), or the run store's errors for a name
    that is taken.
    """
    if spec.kind == "embedder":
        embedder = check_embedder_job(ws.layout, spec, ws.store)
        name = name or default_name(ws, spec)
        check_new_name(ws.layout, name)
        return PreparedRun(runs(ws).create(name, spec), spec, embedder=embedder)
    checked = check_job(ws.layout, spec, here=here)
    name = name or default_name(ws, spec)
    return PreparedRun(runs(ws).create(name, spec), spec, checked=checked)


def prepare_resume(ws: Workspace, name: str, *, kind: str | None = None) -> PreparedRun:
    """A stopped run (cancelled, interrupted, failed), checked to continue from its last
    checkpoint. ``kind``: the kind the caller resumes (``embedder`` / ``generator``)."""
    run = runs(ws).get(name)
    spec = run.spec()
    if kind == "embedder" and spec.kind != "embedder":
        raise CotragError(f"Run {name!r} tunes a generator: resume it with cotrag train.")
    if run.state == "running":
        raise RunBusy(f"Run {name!r} is running already.")
    if run.state == "done":
        if spec.kind == "embedder":
            raise RunBusy(f"Run {name!r} is finished: its embedder is {name}.")
        raise RunBusy(f"Run {name!r} is finished: its model is {run.summary()['model']}.")
    checked = None if spec.kind == "embedder" else check_job(ws.layout, spec, lengths=False)
    return PreparedRun(run, spec, resume=True, checked=checked)


def local_command(layout: DataLayout, prepared: PreparedRun) -> list[str]:
    """The worker's command line for the run (for a process runner of the caller's own)."""
    return worker_command(prepared.run, resume=prepared.resume, layout=layout)


def start_local(layout: DataLayout, prepared: PreparedRun) -> TrainProcess:
    """The run's worker, started on this computer."""
    proc = TrainProcess(prepared.run, layout, resume=prepared.resume)
    proc.start()
    return proc


def run_local(
    layout: DataLayout,
    prepared: PreparedRun,
    on_event: Callable[[WorkerEvent], None] | None = None,
    *,
    on_interrupt: Callable[[], None] | None = None,
) -> ProcessOutcome:
    """Run the worker to its end. A first Ctrl-C asks it for a checkpoint and a clean
    stop (``on_interrupt`` is told); a second one kills it."""
    proc = start_local(layout, prepared)
    try:
        return proc.wait(on_event)
    except KeyboardInterrupt:
        if on_interrupt is not None:
            on_interrupt()
        proc.cancel()
        try:
            return proc.wait(on_event)
        except KeyboardInterrupt:
            proc.kill()
            return proc.wait()
