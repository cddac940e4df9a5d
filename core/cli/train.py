"""`cotrag train`: fine-tune the generator (the models that come out: `cotrag models`)."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.embedders import follow_embedder_run, start_embedder_run
from core.cli.terminal import ProgressLine, confirm
from core.cli.worker_output import print_event, run_worker
from core.colab.service import check_colab_job, export_notebook, fetch_pushed_run, run_on_colab
from core.durations import loss_text, took
from core.errors import CotragError
from core.models.token import get_token
from core.training import service
from core.training.events import Done
from core.training.gpu_env import setup_gpu_env
from core.training.runs import RunStore
from core.training.service import PreparedRun
from core.training.spec import PRESET_NOTES, PRESETS, TrainSpec, parse_sets

if TYPE_CHECKING:
    from core.workspace import Workspace


def add_train_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune the model on a dataset (LoRA, in a child process)",
        description="Start a run (`cotrag train --dataset NAME`), resume one "
        "(`cotrag train --resume RUN`), or: list, show RUN, delete RUN, setup-gpu.",
    )
    p.add_argument(
        "action",
        nargs="?",
        default="start",
        choices=[
            "start",
            "list",
            "show",
            "delete",
            "setup-gpu",
            "presets",
            "export-colab",
            "fetch",
        ],
    )
    p.add_argument("run", nargs="?", help="the run, for show and delete")
    p.add_argument("--dataset", help="dataset to train on")
    p.add_argument("--base", default=None, help="default, a .gguf, a model folder or a model name")
    p.add_argument("--preset", default="cpu-quick", help="cpu-quick, cpu-full or gpu-standard")
    p.add_argument("--spec", help="a spec TOML file (the preset and --set apply on top)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a spec field, e.g. --set max_steps=20 --set exports=lora,q8_0",
    )
    p.add_argument("--name", help="run name (also the tuned model's name)")
    p.add_argument("--resume", metavar="RUN", help="continue a cancelled or interrupted run")
    p.add_argument(
        "--where",
        choices=["local", "colab"],
        default="local",
        help="this computer (a child process) or a Colab GPU runtime (the `colab` CLI)",
    )
    p.add_argument("--gpu", default="T4", help="the Colab GPU: T4, L4, G4, A100 or H100")
    p.add_argument("--out", help="export-colab: the folder for the notebook and the dataset")
    p.add_argument(
        "--push-repo",
        metavar="REPO",
        help="Colab: push the results to this private hub repo (the app pulls them from there)",
    )
    p.add_argument("--repo", help="fetch: the hub repo a Colab run pushed its results to")
    p.add_argument("--json", action="store_true", help="print the events as JSON lines")
    p.add_argument("-y", "--yes", action="store_true", help="delete without asking")


def build_spec(args: argparse.Namespace) -> TrainSpec:
    spec = TrainSpec.load(Path(args.spec)) if args.spec else TrainSpec()
    if args.preset:
        spec = spec.with_preset(args.preset)
    if args.dataset:
        spec = replace(spec, dataset=args.dataset)
    if args.base:
        spec = replace(spec, base=args.base)
    return replace(spec, **parse_sets(spec, args.set))


def cmd_train(ws: Workspace, args: argparse.Namespace) -> int:
    store = service.runs(ws)
    if args.action == "list":
        for run in store.runs():
            s = run.summary()
            loss = f"loss {s['loss']:.3f}" if s["loss"] is not None else ""
            print(
                f"{s['name']:24} {s['state']:12} step {s['step']}/{s['total']} {loss} {s['model']}"
            )
        return 0
    if args.action == "presets":
        for name, values in PRESETS.items():
            print(f"{name}: {PRESET_NOTES.get(name, '')}\n  {json.dumps(values)}")
        return 0
    if args.action == "show":
        run = store.get(_need_run(args))
        print(json.dumps({**run.summary(), "spec": run.spec().to_dict()}, indent=2))
        return 0
    if args.action == "delete":
        name = _need_run(args)
        if not args.yes and not confirm(f"Delete the run {name!r} and its checkpoints?"):
            return 1
        store.delete(name)
        print(f"Deleted run {name!r} (its tuned model, if any, is kept).")
        return 0
    if args.action == "export-colab":
        return _export_colab(ws, args)
    if args.action == "fetch":
        return _fetch(ws, args)
    if args.action == "setup-gpu":
        return setup_gpu_env(ws.layout, say=lambda line: print(line, flush=True))
    return _start(ws, args, store)


def _need_run(args: argparse.Namespace) -> str:
    if not args.run:
        raise CotragError(f"`cotrag train {args.action}` needs a run name.")
    return str(args.run)


def _start(ws: Workspace, args: argparse.Namespace, store: RunStore) -> int:
    if args.resume:
        prepared = service.prepare_resume(ws, args.resume)
        if prepared.kind == "embedder":
            return follow_embedder_run(ws, prepared, as_json=args.json)
    else:
        if not args.dataset and not args.spec:
            raise CotragError("Name the dataset to train on: cotrag train --dataset NAME.")
        spec = build_spec(args)
        if spec.kind == "embedder":
            if args.where == "colab":
                raise CotragError("Embedder runs train on this computer (--where local).")
            return start_embedder_run(ws, spec, args.name, as_json=args.json)
        if args.where == "colab":
            check_colab_job(spec, args.gpu)  # before a run is made for it
        print("Checking the job…", file=sys.stderr)
        prepared = service.prepare_run(ws, spec, args.name, here=args.where != "colab")
        print(f"Run {prepared.name}: {prepared.note}", file=sys.stderr)
    if args.where == "colab":
        if prepared.resume:
            raise CotragError("A Colab run starts afresh: resume runs on this computer only.")
        return _train_on_colab(ws, args, prepared)
    started = time.monotonic()
    outcome = run_worker(ws, prepared, as_json=args.json)
    if isinstance(outcome.final, Done):
        metrics = outcome.final.metrics
        print(
            f"Took {took(time.monotonic() - started)}; final loss "
            f"{loss_text(metrics.get('final_loss'))}, "
            f"validation loss {loss_text(metrics.get('eval_loss'))}. Ask it: cotrag ask --model "
            f'{outcome.final.model} "…"',
            file=sys.stderr,
        )
        return 0
    if outcome.state == "cancelled":
        print(f"Resume with: cotrag train --resume {prepared.name}", file=sys.stderr)
        return 130
    return 1


def _train_on_colab(ws: Workspace, args: argparse.Namespace, prepared: PreparedRun) -> int:
    stop = threading.Event()
    bar = ProgressLine(sys.stderr)
    print(
        f"Run {prepared.name} goes to a Colab {args.gpu} runtime (the `colab` CLI).",
        file=sys.stderr,
    )

    def on_log(stream: str, line: str) -> None:
        if args.verbose or stream == "stderr":
            bar.clear()
            print(f"  colab: {line}", file=sys.stderr)

    try:
        token = get_token()
    except CotragError:
        token = None
    try:
        result = run_on_colab(
            ws.layout,
            prepared,
            args.gpu,
            on_event=lambda e: print_event(e, bar, as_json=args.json),
            on_log=on_log,
            should_stop=stop.is_set,
            hub_token=token,
            push_repo=args.push_repo,
        )
    except KeyboardInterrupt:
        stop.set()
        bar.clear()
        print("\nCancelled: the runtime is stopped and released.", file=sys.stderr)
        return 130
    bar.clear()
    print(result.sentence(), file=sys.stderr)
    if result.model is not None:
        print(f'Ask it: cotrag ask --model {result.model.name} "…"', file=sys.stderr)
        return 0
    return 130 if result.state == "cancelled" else 1


def _export_colab(ws: Workspace, args: argparse.Namespace) -> int:
    if not args.dataset or not args.out:
        raise CotragError("export-colab needs --dataset NAME and --out DIR.")
    spec = build_spec(args)
    name = args.name or f"{spec.dataset}-colab"
    exported = export_notebook(ws, spec, Path(args.out), name, push_repo=args.push_repo)
    print(f"Wrote {exported.notebook} and {exported.dataset.name} ({exported.readme.name} says how")
    if args.push_repo:
        print(f"to upload them). The notebook pushes its results to {args.push_repo}; then")
        print(f"`cotrag train fetch {name} --repo {args.push_repo}` waits for and pulls them.")
    else:
        print("to upload them). The results come back as a .tar: `cotrag models add` registers")
        print("the folder it unpacks to, or let `cotrag train --where colab` do all of it.")
    return 0


def _fetch(ws: Workspace, args: argparse.Namespace) -> int:
    """A notebook run by hand pushed its results: wait for them, pull, check, register."""
    if not args.repo or not args.run:
        raise CotragError("fetch needs the repo and the run: cotrag train fetch RUN --repo REPO.")
    print(f"Waiting for the results of {args.run} on {args.repo} (Ctrl-C stops)…", file=sys.stderr)
    try:
        entry = fetch_pushed_run(ws.layout, args.repo, args.run, name=args.name)
    except KeyboardInterrupt:
        print("\nStopped; the same command resumes the pull.", file=sys.stderr)
        return 130
    print(f'Registered {entry.name}: cotrag ask --model {entry.name} "…"', file=sys.stderr)
    return 0
