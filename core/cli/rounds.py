"""`cotrag train-rounds`: alternate tuning the embedder and the generator, N rounds."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING, Any

from core.cli.terminal import ProgressLine, ctrl_c_cancels
from core.errors import CotragError
from core.training.events import Error, Step
from core.training.rounds import (
    Reembedding,
    RoundDone,
    RoundsEvent,
    RoundsPlan,
    RoundStep,
    RunEvent,
    rounds_event_dict,
    run_rounds,
)
from core.training.spec import TrainSpec, parse_sets

if TYPE_CHECKING:
    from core.workspace import Workspace


def add_rounds_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train-rounds",
        help="alternate: tune the embedder, re-embed, re-trace the dataset, tune the generator",
        description="Each round tunes the embedder on the dataset, re-embeds the knowledge base "
        "with it, traces the dataset's questions again through the tuned search, and tunes the "
        "generator on those traces; each round prints its recall and validation loss. Run the "
        "same command again to continue a schedule that was stopped.",
    )
    p.add_argument("--dataset", required=True, help="the dataset of round 1")
    p.add_argument("--kb", default="", help="knowledge base (default: the dataset's)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--name", help="schedule name (its runs are NAME-r1-embedder, …)")
    p.add_argument("--base", default="default", help="the generator's base in round 1")
    p.add_argument("--generator-preset", default="cpu-quick")
    p.add_argument(
        "--embedder-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override an embedder spec field (repeatable)",
    )
    p.add_argument(
        "--generator-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a generator spec field (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print every event as a JSON line")


def _overrides(items: list[str], preset: str) -> dict[str, Any]:
    return parse_sets(TrainSpec().with_preset(preset), items, ("dataset", "base", "kind"))


def cmd_train_rounds(ws: Workspace, args: argparse.Namespace) -> int:
    name = args.name or f"{args.dataset}-rounds"
    plan = RoundsPlan(
        name=name,
        dataset=args.dataset,
        kb=args.kb,
        rounds=args.rounds,
        base=args.base,
        embedder=_overrides(args.embedder_set, "embedder"),
        generator_preset=args.generator_preset,
        generator=_overrides(args.generator_set, args.generator_preset),
    )
    cancel = threading.Event()
    bar = ProgressLine(sys.stderr)

    def show(event: RoundsEvent) -> None:
        if args.json:
            print(json.dumps(rounds_event_dict(event), ensure_ascii=False), flush=True)
            return
        worker = event.worker if isinstance(event, RunEvent) else None
        if isinstance(event, RoundStep):
            bar.clear()
            print(f"Round {event.round}: {event.step}…", file=sys.stderr)
        elif isinstance(worker, Step) and isinstance(event, RunEvent):
            bar.update(worker.step, worker.total, f"{event.run}: loss {worker.loss:.3f}")
        elif isinstance(event, Reembedding) and event.total:
            bar.update(event.done, event.total, f"re-embedding ({event.stage})")
        elif isinstance(worker, Error):
            bar.clear()
            print(f"{worker.message} {worker.fix}", file=sys.stderr)
        elif isinstance(event, RoundDone):
            bar.clear()
            print("  " + json.dumps(event.figures, ensure_ascii=False), file=sys.stderr)

    try:
        with ctrl_c_cancels(cancel):
            summaries = run_rounds(ws, plan, on_event=show, cancel=cancel)
    finally:
        bar.clear()
    if len(summaries) < plan.rounds:
        if cancel.is_set():
            print(f"Stopped; continue with the same command (--name {name}).", file=sys.stderr)
            return 130
        raise CotragError("The schedule stopped early; see the messages above.")
    if not args.json:
        print(json.dumps(summaries, indent=2, ensure_ascii=False))
    return 0
