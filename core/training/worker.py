"""The training child process: ``cotrag-train-worker RUN_DIR [--resume]``.

Its own console script (the frozen app runs it as ``cotrag-studio --train-worker``,
where ``python -m`` does not exist). It reads ``RUN_DIR/spec.toml``, trains, exports
and registers the tuned model, printing one event per line (see
:mod:`core.training.events`) on its original stdout and appending each to
``events.jsonl``. Everything else that writes to stdout (libraries, llama.cpp's C
code) is sent to stderr, so the event channel stays clean.

Stopping: SIGINT, SIGTERM or a ``STOP`` file in the run folder → the current step
ends, a checkpoint is written, ``cancelled`` is emitted and the process exits 3.
Exit codes: 0 done, 1 failed (an ``error`` event says why), 3 cancelled.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from core.errors import CotragError
from core.knowledge import embedder_catalog
from core.models.installed import ModelRegistry
from core.paths import DataLayout
from core.training.base_models import BaseModelError
from core.training.data import dataset_hash
from core.training.distributed import Group
from core.training.embedder_data import check_embedder_job
from core.training.embedder_trainer import finish_embedder, train_embedder
from core.training.events import (
    Cancelled,
    Done,
    Emit,
    Error,
    GuardDone,
    Guarding,
    Preparing,
    WorkerEvent,
    encode,
    to_dict,
)
from core.training.finish import export_model
from core.training.preflight import load_job
from core.training.runs import Run
from core.training.spec import SpecError, TrainSpec
from core.training.trainer import EngineMissing, Job, train

EXIT_DONE, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 3


class Channel:
    """The event channel: the process's real stdout (fd 1 is pointed at stderr)."""

    def __init__(self, run_events: Path) -> None:
        sys.stdout.flush()
        self.out: TextIO = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self.events = run_events.open("a", encoding="utf-8")
        self.lock = threading.Lock()

    def emit(self, event: WorkerEvent) -> None:
        line = encode(event)
        with self.lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):
                pass  # the app went away: the events file still gets it
            self.events.write(json.dumps(to_dict(event), ensure_ascii=False) + "\n")
            self.events.flush()


def classify(exc: BaseException) -> tuple[str, str, str]:
    """(kind, sentence, what to change) for an exception that ended a run."""
    text = str(exc)
    if isinstance(exc, SpecError):
        return "spec", text, "Fix the spec and start again."
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return (
            "oom",
            "Training ran out of memory.",
            "Turn on gradient_checkpointing, lower max_seq_len (longer rows are left out), "
            "or lower batch_size (raise grad_accum to keep the same effective batch); on a "
            "GPU turn on load_in_4bit.",
        )
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return (
            "disk_full",
            f"The disk is full ({getattr(exc, 'filename', '') or 'while writing'}).",
            "Free some space (a tuned model needs about three times its base model's size "
            "during export), or delete old runs and models, then Resume.",
        )
    if isinstance(exc, EngineMissing):
        return "engine", text, "Change the engine in the spec, or set up the GPU environment."
    if isinstance(exc, BaseModelError):
        return "base", text, "Choose another base model."
    if isinstance(exc, CotragError):
        return "data", text, "See the message above."
    return "internal", f"{type(exc).__name__}: {text}", "See worker.log in the run folder."


def _silent(event: WorkerEvent) -> None:
    pass


def run(run_dir: Path, resume: bool) -> int:
    run = Run(run_dir.name, run_dir)
    # <data dir>/training/<run>: the layout is two levels up.
    layout = DataLayout(run_dir.parent.parent)
    group = Group.from_env()
    if not group.main:
        # The other processes of a data-parallel run say nothing and write nothing.
        sys.stdout.flush()
        os.dup2(2, 1)
        return _train(run, run.spec(), layout, _silent, lambda: False, resume, group)
    channel = Channel(run.events_file)
    emit = channel.emit
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run.stop_file.unlink(missing_ok=True)

    def should_stop() -> bool:
        if run.stop_file.exists():
            stop.set()
        return stop.is_set()

    run.write_state("running", pid=os.getpid(), resume=resume)
    try:
        spec = run.spec()
        if spec.kind == "embedder":
            return _train_embedder(run, spec, layout, emit, should_stop, resume)
        return _train(run, spec, layout, emit, should_stop, resume, group)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            run.write_state("cancelled")
            emit(Cancelled(step=0, checkpoint=str(run.latest_checkpoint() or "")))
            return EXIT_CANCELLED
        kind, message, fix = classify(exc)
        traceback.print_exc(file=sys.stderr)
        run.write_state("failed", error=message, kind=kind)
        emit(Error(kind=kind, message=message, fix=fix))
        return EXIT_FAILED


def _train(
    run: Run,
    spec: TrainSpec,
    layout: DataLayout,
    emit: Emit,
    should_stop: Callable[[], bool],
    resume: bool,
    group: Group,
) -> int:
    checked = load_job(layout, spec)
    base = checked.base
    job = Job(run, spec, layout, checked, emit, should_stop, resume=resume, group=group)
    outcome = train(job)
    if not group.main:
        return EXIT_CANCELLED if outcome.state == "cancelled" else EXIT_DONE
    if outcome.state == "cancelled":
        checkpoint = str(outcome.checkpoint or "")
        run.write_state("cancelled", step=outcome.step, checkpoint=checkpoint)
        emit(Cancelled(step=outcome.step, checkpoint=checkpoint))
        return EXIT_CANCELLED
    dataset_info = {
        "name": checked.dataset.name,
        "hash": dataset_hash(checked.dataset),
        "examples": len(checked.dataset.examples()),
        "kb": checked.dataset.meta.get("kb", ""),
    }
    entry = export_model(ModelRegistry(layout), run.name, spec, base, outcome, dataset_info, emit)
    outputs = {k: str(v) for k, v in entry.variants.items()}
    metrics = entry.info.get("metrics", {})
    # The model is exported: the run is done, whatever happens to the guard below.
    run.write_state("done", model=entry.name)
    guard = _guard(layout, entry.name, spec, emit, should_stop) if spec.guard else None
    emit(Done(model=entry.name, outputs=outputs, metrics=metrics, guard=guard))
    return EXIT_DONE


def _guard(
    layout: DataLayout, name: str, spec: TrainSpec, emit: Emit, should_stop: Callable[[], bool]
) -> str:
    """Base vs tuned on the held-out questions (see :mod:`core.training.guard`). Cancel
    leaves the model exported and unchecked; a failure of the guard fails nothing."""
    # Deferred: the workspace brings the knowledge stack (Chroma, the embedder), which a
    # run that does not guard (a Colab runtime's) never needs.
    from core.training.guard import check_model, unchecked
    from core.workspace import Workspace

    emit(Preparing(stage="guard", message="Checking the tuned model against its base…"))
    cancel = threading.Event()

    def on_item(index: int, total: int, side: str) -> None:
        emit(Guarding(index=index, total=total, side=side))
        if should_stop():
            cancel.set()

    ws = Workspace(layout.root)
    try:
        if should_stop():
            cancel.set()
        result = check_model(
            ws,
            name,
            limit=spec.guard_questions,
            qa_file=spec.guard_qa,
            on_item=on_item,
            cancel=cancel,
        )
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        why = f"the check failed ({type(exc).__name__}: {exc})."
        result = unchecked(ws, name, why)
    finally:
        ws.close()
    emit(
        GuardDone(
            verdict=result.verdict,
            sentence=result.sentence,
            table=result.table,
            first_query=result.first_query,
        )
    )
    return result.sentence


def _train_embedder(
    run: Run,
    spec: TrainSpec,
    layout: DataLayout,
    emit: Emit,
    should_stop: Callable[[], bool],
    resume: bool,
) -> int:
    installed = embedder_catalog.embedders_dir(layout) / run.name
    info = embedder_catalog.read_info(installed)
    if info.get("run") == run.name and not embedder_catalog.missing_files(installed):
        # Killed after the embedder was installed, before the run said so: it is done.
        run.write_state("done", model=run.name, embedder=run.name)
        emit(
            Done(
                model=run.name,
                kind="embedder",
                outputs={"embedder": str(installed)},
                metrics=info.get("metrics", {}),
            )
        )
        return EXIT_DONE
    emit(Preparing(stage="data", message="Reading the dataset's questions and passages…"))
    checked = check_embedder_job(layout, spec)
    outcome = train_embedder(run, checked, emit, should_stop, resume=resume)
    if outcome.state == "cancelled":
        checkpoint = str(run.latest_checkpoint() or "")
        run.write_state("cancelled", step=outcome.step, checkpoint=checkpoint)
        emit(Cancelled(step=outcome.step, checkpoint=checkpoint))
        return EXIT_CANCELLED
    name, path, metrics = finish_embedder(layout, run, checked, outcome, emit)
    run.write_state("done", model=name, embedder=name)
    emit(Done(model=name, kind="embedder", outputs={"embedder": str(path)}, metrics=metrics))
    return EXIT_DONE


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cotrag-train-worker", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="the run folder (with spec.toml)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    run_dir = args.run_dir.resolve()
    if not (run_dir / "spec.toml").is_file():
        error = Error(
            kind="spec",
            message=f"{run_dir} has no spec.toml.",
            fix="Create the run with `cotrag train`.",
        )
        print(encode(error), flush=True)
        return EXIT_FAILED
    code = run(run_dir, args.resume)
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
