"""A training run's events on the terminal: progress line, sentences, or JSON lines.

Shared by `cotrag train` and `cotrag train-embedder` (local and Colab runs print alike).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from core.cli.terminal import ProgressLine
from core.durations import clock
from core.training import service
from core.training.events import (
    Eval,
    Exporting,
    GuardDone,
    Guarding,
    Log,
    Preparing,
    ProcessOutcome,
    Started,
    Step,
    WorkerEvent,
    to_dict,
)
from core.training.guard import SIDE_WORDS
from core.training.service import PreparedRun

if TYPE_CHECKING:
    from core.workspace import Workspace


def run_worker(ws: Workspace, prepared: PreparedRun, *, as_json: bool) -> ProcessOutcome:
    """Run the worker for a prepared run, printing its events until it ends (Ctrl-C
    cancels)."""
    bar = ProgressLine(sys.stderr)

    def cancelling() -> None:
        bar.clear()
        print("\nCancelling: the worker writes a checkpoint and stops…", file=sys.stderr)

    outcome = service.run_local(
        ws.layout,
        prepared,
        lambda e: print_event(e, bar, as_json=as_json),
        on_interrupt=cancelling,
    )
    bar.clear()
    print(outcome.sentence(prepared.run.log_file), file=sys.stderr)
    return outcome


def print_event(event: WorkerEvent, bar: ProgressLine, *, as_json: bool) -> None:
    """One worker event on the terminal (or as a JSON line), for local and remote runs."""
    if as_json:
        print(json.dumps(to_dict(event), ensure_ascii=False), flush=True)
        return
    if isinstance(event, Preparing | Log):
        bar.clear()
        print(event.message, file=sys.stderr)
    elif isinstance(event, Started):
        bar.clear()
        threads = f", {event.threads} threads" if event.threads else ""
        print(
            f"Training on {event.device} ({event.engine}, "
            f"{event.dtype}{threads}): {event.total} steps"
            + (f", resuming at step {event.start_step}" if event.start_step else ""),
            file=sys.stderr,
        )
    elif isinstance(event, Step):
        eta = clock(float(event.eta_s), "--:--")
        bar.update(
            int(event.step),
            int(event.total),
            f"loss {event.loss:.3f}  {event.tokens_per_s:.0f} tok/s  ETA {eta}",
        )
    elif isinstance(event, Eval):
        bar.clear()
        parts = []
        if event.loss is not None:
            parts.append(f"validation loss {event.loss:.3f}")
        if event.recall:
            parts.append(
                ", ".join(f"{k} {v:.3f}" for k, v in event.recall.items())
                + f" (among {event.passages if event.passages is not None else '?'} passages)"
            )
        print(f"  step {event.step}: " + "; ".join(parts), file=sys.stderr)
    elif isinstance(event, Exporting):
        bar.clear()
        print(f"Exporting {event.what} ({event.index}/{event.total})…", file=sys.stderr)
    elif isinstance(event, Guarding):
        side = SIDE_WORDS.get(event.side, event.side)
        bar.update(int(event.index), int(event.total), f"guard: {side}")
    elif isinstance(event, GuardDone):
        bar.clear()  # the verdict ends the run's last line (ProcessOutcome.sentence)
