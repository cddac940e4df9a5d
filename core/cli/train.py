"""`cotrag train`: fine-tune the generator (the models that come out: `cotrag models`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.terminal import ProgressLine, confirm
from core.durations import clock
from core.errors import CotragError
from core.training.events import (
    Done,
    Eval,
    Exporting,
    Log,
    Preparing,
    Started,
    Step,
    WorkerEvent,
    to_dict,
)

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


def _coerce(spec_value: Any, text: str) -> Any:
    if isinstance(spec_value, bool):
        return text.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(spec_value, int):
        return int(text)
    if isinstance(spec_value, float):
        return float(text)
    if isinstance(spec_value, list):
        return [t.strip() for t in text.split(",") if t.strip()]
    return text


def parse_sets(spec: Any, items: list[str], forbidden: tuple[str, ...] = ()) -> dict[str, Any]:
    """``FIELD=VALUE`` overrides of ``spec``'s fields, each coerced to the field's type."""
    from core.training.spec import SpecError

    changes: dict[str, Any] = {}
    for item in items:
        field, sep, value = item.partition("=")
        field = field.strip()
        if not sep or not hasattr(spec, field) or field in forbidden:
            extra = f" (not {', '.join(forbidden)})" if forbidden else ""
            raise SpecError([f"--set {item!r}: use FIELD=VALUE with a spec field name{extra}."])
        try:
            changes[field] = _coerce(getattr(spec, field), value)
        except ValueError as exc:
            raise SpecError([f"--set {item!r}: {exc}."]) from exc
    return changes


def build_spec(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from core.training.spec import TrainSpec

    spec = TrainSpec.load(Path(args.spec)) if args.spec else TrainSpec()
    if args.preset:
        spec = spec.with_preset(args.preset)
    if args.dataset:
        spec = replace(spec, dataset=args.dataset)
    if args.base:
        spec = replace(spec, base=args.base)
    return replace(spec, **parse_sets(spec, args.set))


def cmd_train(ws: Workspace, args: argparse.Namespace) -> int:
    from core.training.runs import RunStore

    store = RunStore(ws.layout)
    if args.action == "list":
        for run in store.runs():
            s = run.summary()
            loss = f"loss {s['loss']:.3f}" if s["loss"] is not None else ""
            print(
                f"{s['name']:24} {s['state']:12} step {s['step']}/{s['total']} {loss} {s['model']}"
            )
        return 0
    if args.action == "presets":
        from core.training.spec import PRESETS

        for name, values in PRESETS.items():
            print(name, json.dumps(values))
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
        from core.training.gpu_env import setup_gpu_env

        return setup_gpu_env(ws.layout, say=lambda line: print(line, flush=True))
    return _start(ws, args, store)


def _need_run(args: argparse.Namespace) -> str:

    if not args.run:
        raise CotragError(f"`cotrag train {args.action}` needs a run name.")
    return str(args.run)


def _start(ws: Workspace, args: argparse.Namespace, store: Any) -> int:
    from core.training.preflight import check_job

    if args.resume:
        run = store.get(args.resume)
        if run.state in ("running",):
            raise CotragError(f"Run {run.name!r} is running already.")
        if run.state == "done":
            raise CotragError(
                f"Run {run.name!r} is finished: its model is {run.summary()['model']}."
            )
        if run.spec().kind == "embedder":
            from core.cli.embedders import follow_embedder_run

            return follow_embedder_run(ws, run, resume=True, as_json=args.json)
        check_job(ws.layout, run.spec(), lengths=False)
        resume = True
    else:
        if not args.dataset and not args.spec:
            raise CotragError("Name the dataset to train on: cotrag train --dataset NAME.")
        spec = build_spec(args)
        if spec.kind == "embedder":
            from core.cli.embedders import start_embedder_run

            if args.where == "colab":
                raise CotragError("Embedder runs train on this computer (--where local).")
            return start_embedder_run(ws, spec, args.name, as_json=args.json)
        if args.where == "colab":
            from core.training.colab import check_gpu

            check_gpu(args.gpu)  # before a run is made for it
        print("Checking the job…", file=sys.stderr)
        checked = check_job(ws.layout, spec)
        prepared = checked.prepared
        assert prepared is not None
        name = args.name or store.unique_name(f"{spec.dataset}-tuned")
        run = store.create(name, spec)
        print(
            f"Run {name}: {len(prepared.train)} training rows ({prepared.train_tokens} tokens), "
            f"{len(prepared.validation)} validation rows"
            + (
                f", {prepared.too_long} longer than max_seq_len left out"
                if prepared.too_long
                else ""
            ),
            file=sys.stderr,
        )
        resume = False
    if args.where == "colab":
        if resume:
            raise CotragError("A Colab run starts afresh: resume runs on this computer only.")
        return _train_on_colab(ws, args, run)
    started = time.monotonic()
    outcome = run_worker(ws, run, resume=resume, as_json=args.json)
    if isinstance(outcome.final, Done):
        metrics = outcome.final.metrics
        print(
            f"Took {clock(time.monotonic() - started, '--:--')} (min:s); final loss "
            f"{metrics.get('final_loss')}, "
            f"validation loss {metrics.get('eval_loss')}. Ask it: cotrag ask --model "
            f'{outcome.final.model} "…"',
            file=sys.stderr,
        )
        return 0
    if outcome.state == "cancelled":
        print(f"Resume with: cotrag train --resume {run.name}", file=sys.stderr)
        return 130
    return 1


def run_worker(ws: Workspace, run: Any, *, resume: bool, as_json: bool) -> Any:
    """Start the worker for ``run`` and print its events until it ends (Ctrl-C cancels)."""
    from core.training.process import TrainProcess

    proc = TrainProcess(run, ws.layout, resume=resume)
    proc.start()
    bar = ProgressLine(sys.stderr)
    try:
        outcome = proc.wait(lambda e: print_event(e, bar, as_json=as_json))
    except KeyboardInterrupt:
        bar.clear()
        print("\nCancelling: the worker writes a checkpoint and stops…", file=sys.stderr)
        proc.cancel()
        try:
            outcome = proc.wait(lambda e: print_event(e, bar, as_json=as_json))
        except KeyboardInterrupt:
            proc.kill()
            outcome = proc.wait()
    bar.clear()
    print(outcome.sentence(run.log_file), file=sys.stderr)
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


def _train_on_colab(ws: Workspace, args: argparse.Namespace, run: Any) -> int:
    import threading

    from core.models.token import get_token
    from core.training.remote import run_on_colab

    stop = threading.Event()
    bar = ProgressLine(sys.stderr)
    print(f"Run {run.name} goes to a Colab {args.gpu} runtime (the `colab` CLI).", file=sys.stderr)

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
            run,
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
    from pathlib import Path

    from core.dataset.storage import DatasetStore
    from core.training.colab_notebook import write_export
    from core.training.preflight import check_job

    if not args.dataset or not args.out:
        raise CotragError("export-colab needs --dataset NAME and --out DIR.")
    spec = build_spec(args)
    check_job(ws.layout, spec)
    dataset = DatasetStore(ws.layout.datasets).open(spec.dataset)
    name = args.name or f"{spec.dataset}-colab"
    exported = write_export(Path(args.out), spec, dataset, name, push_repo=args.push_repo)
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
    from core.training.remote import fetch_pushed_run

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
