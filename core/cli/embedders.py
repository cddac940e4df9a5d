"""`cotrag train-embedder` and `cotrag embedders`: tune the retriever, list what is tuned."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core.cli.terminal import confirm
from core.cli.worker_output import run_worker
from core.durations import clock
from core.errors import CotragError
from core.knowledge import embedder_catalog
from core.training import service
from core.training.events import Done
from core.training.service import PreparedRun
from core.training.spec import TrainSpec, parse_sets

if TYPE_CHECKING:
    from core.workspace import Workspace


def add_embedder_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "train-embedder",
        help="tune the search's embedder on a dataset's questions (a child process)",
        description="Tunes the sentence embedder on (question, gold chunk) pairs of a dataset, "
        "with the passages the search wrongly returned as hard negatives, and reports recall@k "
        "on the dataset's held-out documents before and after. The result is an embedder named "
        "after the run: re-embed a knowledge base with it (`cotrag kb reembed KB --embedder RUN`).",
    )
    p.add_argument("--dataset", help="dataset to learn from")
    p.add_argument(
        "--kb", default="", help="knowledge base the validation searches (default: the dataset's)"
    )
    p.add_argument("--name", help="run name (also the tuned embedder's name)")
    p.add_argument("--base", default=None, help="default (the bundled MiniLM) or a tuned embedder")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a spec field, e.g. --set epochs=1 --set batch_size=8",
    )
    p.add_argument("--resume", metavar="RUN", help="continue a cancelled or interrupted run")
    p.add_argument("--json", action="store_true", help="print the events as JSON lines")

    p = sub.add_parser("embedders", help="the embedders: bundled and tuned")
    p.add_argument("action", nargs="?", default="list", choices=["list", "show", "delete"])
    p.add_argument("name", nargs="?")
    p.add_argument("--json", action="store_true")
    p.add_argument("-y", "--yes", action="store_true", help="delete without asking")


def embedder_spec(args: argparse.Namespace) -> TrainSpec:
    spec = TrainSpec().with_preset("embedder")
    spec = replace(spec, dataset=args.dataset or "", kb=args.kb or "")
    if args.base:
        spec = replace(spec, base=args.base)
    return replace(spec, **parse_sets(spec, args.set, ("kind",)))


def cmd_train_embedder(ws: Workspace, args: argparse.Namespace) -> int:
    if args.resume:
        prepared = service.prepare_resume(ws, args.resume, kind="embedder")
        return follow_embedder_run(ws, prepared, as_json=args.json)
    if not args.dataset:
        raise CotragError("Name the dataset to learn from: cotrag train-embedder --dataset NAME.")
    return start_embedder_run(ws, embedder_spec(args), args.name, as_json=args.json)


def start_embedder_run(ws: Workspace, spec: TrainSpec, name: str | None, *, as_json: bool) -> int:
    print("Checking the job…", file=sys.stderr)
    prepared = service.prepare_run(ws, spec, name)
    print(f"Run {prepared.name}: {prepared.note}", file=sys.stderr)
    return follow_embedder_run(ws, prepared, as_json=as_json)


def follow_embedder_run(ws: Workspace, prepared: PreparedRun, *, as_json: bool) -> int:
    started = time.monotonic()
    outcome = run_worker(ws, prepared, as_json=as_json)
    if isinstance(outcome.final, Done):
        metrics = outcome.final.metrics
        before, after = metrics.get("recall_before", {}), metrics.get("recall_after", {})
        figures = "; ".join(f"{k} {before.get(k)} → {v}" for k, v in after.items())
        print(
            f"Took {clock(time.monotonic() - started, '--:--')} (min:s). On "
            f"{metrics.get('validation_questions')} held-out questions: {figures}.\n"
            f"Use it: cotrag kb reembed KB --embedder {outcome.final.model}",
            file=sys.stderr,
        )
        return 0
    if outcome.state == "cancelled":
        print(f"Resume with: cotrag train-embedder --resume {prepared.name}", file=sys.stderr)
        return 130
    return 1


def cmd_embedders(ws: Workspace, args: argparse.Namespace) -> int:
    if args.action == "list":
        entries = embedder_catalog.list_embedders(ws.layout)
        if args.json:
            print(
                json.dumps(
                    [
                        {"name": e.name, "path": str(e.path), "bundled": e.bundled, **e.info}
                        for e in entries
                    ],
                    indent=2,
                )
            )
            return 0
        for e in entries:
            metrics = e.info.get("metrics", {})
            k = e.info.get("spec", {}).get("recall_k", 5)
            recall = metrics.get(f"recall@{k}", {})
            extra = (
                f"  from {e.info.get('dataset', '?')}; recall@{k} {recall.get('before')} → {recall.get('after')}"
                if recall
                else ""
            )
            print(f"{e.name:28} {e.label if e.bundled else ''}{extra}")
        return 0
    if not args.name:
        raise CotragError(f"`cotrag embedders {args.action}` needs an embedder name.")
    if args.action == "show":
        path = embedder_catalog.resolve(ws.layout, args.name)
        print(
            json.dumps(
                {"name": args.name, "path": str(path), **embedder_catalog.read_info(path)}, indent=2
            )
        )
        return 0
    users = _kbs_using(ws, args.name)
    if users:
        raise CotragError(
            f"Embedder {args.name!r} built vectors that {', '.join(users)} still "
            "hold: remove those versions first (`cotrag kb versions KB`, then "
            "`cotrag kb remove-version KB N`)."
        )
    if not args.yes and not confirm(f"Delete the embedder {args.name!r}?"):
        return 1
    embedder_catalog.delete(ws.layout, args.name)
    print(f"Deleted embedder {args.name!r}.")
    return 0


def _kbs_using(ws: Workspace, name: str) -> list[str]:
    out = []
    for info in ws.store.list():
        kb = ws.store.get(info.name)
        if any(
            v.embedder == name and v.state != "removed" for v in kb.versions_file.read().versions
        ):
            out.append(info.name)
    return out
