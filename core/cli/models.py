"""`cotrag models`: the installed models (bundled, pulled, added, tuned) and the hub.

cotrag models list | show NAME | delete NAME | default [NAME] | add PATH | guard NAME
cotrag models search TEXT | files REPO | pull REPO [FILE] | pending | login | logout
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from core.cli.terminal import ProgressLine, confirm
from core.durations import clock
from core.errors import CotragError, DownloadCancelled
from core.models import service
from core.models.client import hub_client
from core.models.installed import ModelEntry
from core.models.pull import PullProgress
from core.models.token import clear_token, set_token
from core.training.guard import SIDE_WORDS, check_model, unchecked
from core.workspace import Workspace


def add_models_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = sub.add_parser(
        "models", help="installed models (list, default, delete) and the hub (search, pull)"
    )
    msub = m.add_subparsers(dest="models_command", required=True)
    q = msub.add_parser("list", help="installed models with format, size, quantization")
    q.add_argument("--json", action="store_true")
    q = msub.add_parser("show", help="everything recorded of one model")
    q.add_argument("name")
    q = msub.add_parser("delete", help="delete a model (a pulled one leaves the hub cache)")
    q.add_argument("name")
    q.add_argument("-y", "--yes", action="store_true")
    q = msub.add_parser("default", help="show or set the model used when none is chosen")
    q.add_argument("name", nargs="?")
    q = msub.add_parser(
        "guard", help="check a tuned model against its base on its dataset's held-out questions"
    )
    q.add_argument("name")
    q.add_argument("--questions", type=int, default=40, help="the most held-out questions asked")
    q.add_argument(
        "--qa",
        default="",
        metavar="FILE",
        help="ask the questions of this QA file (cotrag eval's format) instead",
    )
    q.add_argument("--json", action="store_true")
    q = msub.add_parser("add", help="register a .gguf file or a model folder where it is")
    q.add_argument("path")
    q.add_argument("--name")
    q = msub.add_parser("search", help="search the hub")
    q.add_argument("text", nargs="?", default="")
    q.add_argument("--library", help="e.g. gguf, transformers, mlx")
    q.add_argument("--sort", choices=["downloads", "likes", "recent"], default="downloads")
    q.add_argument("--limit", type=int, default=20)
    q.add_argument("--json", action="store_true")
    q = msub.add_parser("files", help="a hub repository's files, sizes and quantizations")
    q.add_argument("repo")
    q.add_argument("--revision", default="main")
    q.add_argument("--json", action="store_true")
    q = msub.add_parser("pull", help="download a model into the hub cache and register it")
    q.add_argument("repo")
    q.add_argument("file", nargs="?", help="a .gguf file (default: the preferred quantization)")
    q.add_argument("--revision", default="main")
    q.add_argument("--name", help="the name in `cotrag models list`")
    q.add_argument("--discard", action="store_true", help="drop a paused pull and its partials")
    msub.add_parser("pending", help="pulls that were paused or cut off (resume with pull)")
    msub.add_parser("login", help="keep a hub access token in the OS keyring")
    msub.add_parser("logout", help="remove the hub access token from the keyring")


def cmd_models(ws: Workspace, args: argparse.Namespace) -> int:
    command = args.models_command
    if command == "list":
        return _list(ws, service.installed(ws), args.json)
    if command == "show":
        entry = service.find(ws, args.name)
        print(json.dumps(_as_dict(entry, ws), indent=2, ensure_ascii=False))
        return 0
    if command == "delete":
        service.find(ws, args.name)
        if not args.yes and not confirm(f"Delete the model {args.name!r} and its files?"):
            return 1
        deleted = service.delete(ws, args.name)
        print(deleted.message)
        if deleted.was_default:
            print("The default is the bundled model again.")
        return 0
    if command == "default":
        if not args.name:
            print(ws.config.model or "default")
            return 0
        service.set_default(ws, args.name)
        print(f"The default model is now {args.name}.")
        entry = service.find(ws, args.name)
        if entry.verdict == "worse":
            print(f"Note: {entry.guard.get('sentence', 'it is worse than its base.')}")
        return 0
    if command == "guard":
        return _guard(ws, args)
    if command == "add":
        entry = service.add_local(ws, Path(args.path), args.name)
        print(f"Added {entry.name}: {entry.format}, {entry.size_bytes / 1e6:.0f} MB.")
        return 0
    if command == "search":
        return _search(args)
    if command == "files":
        return _files(ws, args)
    if command == "pull":
        return _pull(ws, args)
    if command == "pending":
        return _pending(ws)
    if command == "login":
        token = getpass.getpass("Hub access token (input hidden): ").strip()
        if not token:
            raise CotragError("No token given: nothing changed.")
        set_token(token)
        print("Token kept in the OS keyring.")
        return 0
    if command == "logout":
        clear_token()
        print("Token removed from the OS keyring.")
        return 0
    return 2


def _as_dict(entry: ModelEntry, ws: Workspace) -> dict[str, object]:
    return {
        "name": entry.name,
        "kind": entry.kind,
        "format": entry.format,
        "size_bytes": entry.size_bytes,
        "quantization": entry.quantization,
        "licence": entry.licence,
        "chat_template": entry.chat_template,
        "lineage": entry.lineage,
        "present": entry.present,
        "default": service.default_name(ws) == entry.name,
        "reference": entry.reference if entry.present else "",
        "variants": {k: str(v) for k, v in entry.variants.items()},
        "info": entry.info,
    }


def _list(ws: Workspace, entries: list[ModelEntry], as_json: bool) -> int:
    if as_json:
        print(json.dumps([_as_dict(e, ws) for e in entries], indent=2, ensure_ascii=False))
        return 0
    default = service.default_name(ws)
    print(f"  {'NAME':30} {'KIND':7} {'FORMAT':7} {'SIZE':>9}  {'QUANT':14} {'LICENCE':12} FROM")
    for e in entries:
        mark = "*" if e.name == default else " "
        lineage = f"{e.lineage} ({e.verdict_note})" if e.verdict_note else e.lineage
        size = f"{e.size_bytes / 1e6:,.0f} MB" if e.present else "missing"
        template = "" if e.chat_template or e.format in ("unknown",) else " (no chat template)"
        print(
            f"{mark} {e.name:30} {e.kind:7} {e.format:7} {size:>9}  "
            f"{(e.quantization or '-')[:14]:14} {(e.licence or '?')[:12]:12} {lineage}{template}"
        )
    print("* the default (`cotrag models default NAME` changes it)")
    return 0


def _guard(ws: Workspace, args: argparse.Namespace) -> int:
    """Base vs the tuned model on its dataset's held-out questions; the verdict is kept in
    its model.json (Ctrl-C stops and records it unchecked)."""
    bar = ProgressLine(sys.stderr)
    stop = threading.Event()

    def on_item(index: int, total: int, side: str) -> None:
        bar.update(index, total, SIDE_WORDS.get(side, side))

    try:
        result = check_model(
            ws, args.name, limit=args.questions, qa_file=args.qa, on_item=on_item, cancel=stop
        )
    except KeyboardInterrupt:
        stop.set()
        bar.clear()
        print("Stopped: the model stays unchecked.", file=sys.stderr)
        unchecked(ws, args.name, "the check was stopped before it finished.")
        return 130
    bar.clear()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(result.sentence)
        if result.first_query == "model":
            print("Its own first search did better than the app's: auto lets it search first.")
        elif result.first_query == "question":
            print("Its own first search did no better: auto lets the app search first.")
    return 0


def _search(args: argparse.Namespace) -> int:
    models = service.search(
        hub_client(), args.text, library=args.library, sort=args.sort, limit=args.limit
    )
    if args.json:
        print(json.dumps([asdict(m) for m in models], indent=2))
        return 0
    if not models:
        print("No models found.")
        return 0
    for m in models:
        gated = "  gated" if m.gated else ""
        library = m.library or "-"
        print(f"{m.repo_id:50} {library:14} ↓{m.downloads:<9} ♥{m.likes:<6}{gated}")
    return 0


def _files(ws: Workspace, args: argparse.Namespace) -> int:
    client = hub_client()
    if args.json:
        print(json.dumps(asdict(client.files(args.repo, revision=args.revision)), indent=2))
        return 0
    listing = service.repo_files(
        ws, client, args.repo, revision=args.revision, weigh=service.is_large
    )
    repo = listing.repo
    print(f"{repo.repo_id} at {repo.commit[:10]} · licence {repo.licence or 'not stated'}")
    for f in repo.files:
        warnings = listing.warnings.get(f.path, [])
        quant = f.quantization or ""
        warn = f"  ! {warnings[0]}" if warnings else ""
        print(f"  {f.path:60} {f.size / 1e6:10,.1f} MB  {f.format:11} {quant:8}{warn}")
    return 0


def _pull(ws: Workspace, args: argparse.Namespace) -> int:
    client = hub_client()
    if args.discard:
        if not service.discard_paused(ws, client, args.repo, args.file):
            raise CotragError(f"No paused pull of {args.repo} (see `cotrag models pending`).")
        print(f"Dropped the paused pull of {args.repo} and its partial files.")
        return 0
    prepared = service.prepare_pull(
        ws, client, args.repo, args.file, revision=args.revision, name=args.name
    )
    plan = prepared.plan
    if prepared.resumed:
        print(f"Resuming the pull of {plan.repo_id} ({', '.join(plan.files[:3])}).")
    elif plan.note:
        print(f"{plan.repo_id}: {plan.note}.")
    for warning in prepared.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    line = ProgressLine(sys.stderr)
    cancel = threading.Event()

    def show(p: PullProgress) -> None:
        rate = p.bytes_per_s / 1e6
        line.update(
            int(p.done / 1e6),
            max(1, int(p.total / 1e6)),
            f"MB  {rate:5.1f} MB/s  {clock(p.eta_s, '--:--')} left  {p.file}",
        )

    try:
        entry = service.run(ws, client, plan, progress=show, cancel=cancel)
    except KeyboardInterrupt:
        cancel.set()
        line.clear()
        print(f"\nPaused; resume with: {service.resume_command(plan)}", file=sys.stderr)
        return 130
    except DownloadCancelled:
        line.clear()
        print(f"Paused; resume with: cotrag models pull {plan.repo_id}", file=sys.stderr)
        return 130
    line.clear()
    print(f"Pulled {entry.name} ({entry.format}, {entry.size_bytes / 1e6:,.0f} MB).")
    print(f"Chat with it: cotrag ask --model {entry.name} 'your question'")
    return 0


def _pending(ws: Workspace) -> int:
    pulls = service.paused(ws, hub_client)
    if not pulls:
        print("No paused pulls.")
        return 0
    for pull in pulls:
        plan = pull.plan
        print(
            f"{plan.repo_id:40} {plan.files[0]:40} {pull.on_disk / 1e6:,.0f} of "
            f"{plan.total_bytes / 1e6:,.0f} MB  ({service.resume_command(plan)})"
        )
    return 0
