"""`cotrag kb`, `cotrag index`, `cotrag search`: knowledge bases from a terminal."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.kb_versions import cmd_kb_versions
from core.cli.terminal import ctrl_c_cancels, progress_bar
from core.durations import clock
from core.first_run import SAMPLE_KB, SampleDone, make_sample_kb, suggested_questions
from core.knowledge import service
from core.knowledge.indexer import FileDone, IndexSummary, Progress

if TYPE_CHECKING:
    from core.workspace import Workspace


# -- kb ------------------------------------------------------------------------------
def cmd_kb(ws: Workspace, args: argparse.Namespace) -> int:
    if args.kb_command in ("reembed", "versions", "switch", "remove-version"):
        return cmd_kb_versions(ws, args)
    if args.kb_command == "create":
        service.create(ws, args.name)
        print(f"Created knowledge base {args.name!r}.")
    elif args.kb_command == "list":
        infos = service.list_kbs(ws)
        if args.json:
            print(json.dumps([_kb_info_dict(i) for i in infos], indent=2))
        elif not infos:
            print("No knowledge bases yet. Create one with: cotrag kb create NAME")
        else:
            width = max(len(i.name) for i in infos)
            for info in infos:
                mark = "*" if info.name == ws.config.kb else " "
                print(
                    f"{mark} {info.name:<{width}}  {info.documents:>5} documents  "
                    f"{info.chunks:>7} chunks"
                )
    elif args.kb_command == "rename":
        service.rename(ws, args.old, args.new)
        print(f"Renamed {args.old!r} to {args.new!r}.")
    elif args.kb_command == "delete":
        if not args.yes and sys.stdin.isatty():
            reply = input(f"Delete knowledge base {args.name!r} and its index? [y/N] ")
            if reply.strip().lower() not in ("y", "yes"):
                print("Kept.")
                return 1
        service.delete(ws, args.name)
        print(f"Deleted {args.name!r}.")
    elif args.kb_command == "use":
        service.use(ws, args.name)
        print(f"Now using {args.name!r} when no --kb is given.")
    elif args.kb_command == "docs":
        for doc in service.documents(ws, args.name):
            print(f"{doc.chunks:>5} chunks  {doc.source}")
    elif args.kb_command == "sample":
        return cmd_kb_sample(ws)
    return 0


def cmd_kb_sample(ws: Workspace) -> int:
    """The sample knowledge base from the user guide, and the questions to ask it."""
    cancel = threading.Event()
    done: SampleDone | None = None
    print(f"Indexing the user guide into {SAMPLE_KB!r}…", file=sys.stderr)
    with ctrl_c_cancels(cancel, "Stopping (the half-made sample is deleted)…"):
        for event in make_sample_kb(ws, cancel):
            if isinstance(event, SampleDone):
                done = event
    if done is None or not done.ready:
        print("Cancelled: no sample knowledge base was kept.")
        return 130
    if done.outcome == "found":
        print(f"A knowledge base named {done.name!r} exists already; it was left as it is.")
    elif done.summary is not None:
        summary = done.summary
        print(
            f"Made {done.name!r}: {summary.indexed} documents, {summary.chunks} chunks "
            f"in {summary.seconds:.1f} s."
        )
    print("Try:")
    for question in suggested_questions():
        print(f"  cotrag ask --kb {shlex.quote(done.name)} {shlex.quote(question.text)}")
    return 0


def _kb_info_dict(info: Any) -> dict[str, Any]:
    return {"name": info.name, "documents": info.documents, "chunks": info.chunks}


def cmd_index(ws: Workspace, args: argparse.Namespace) -> int:
    kb, created = service.open_kb(ws, args.kb, create=not args.no_create)
    if created:
        print(f"Created knowledge base {args.kb!r}.", file=sys.stderr)
    cancel = threading.Event()
    paths = [Path(p) for p in args.paths]
    for p in paths:
        if not p.exists():
            print(f"warning: {p} does not exist", file=sys.stderr)
    tty = sys.stderr.isatty()
    summary: IndexSummary | None = None

    last_line = 0.0
    stopping = "Stopping after the current document (Ctrl-C again to abort)…"
    with ctrl_c_cancels(cancel, stopping, again_aborts=True):
        events = service.index(
            ws, kb, paths, include=args.include, exclude=args.exclude, cancel=cancel
        )
        for event in events:
            if isinstance(event, Progress):
                now = time.monotonic()
                if tty and now - last_line > 0.1:
                    last_line = now
                    cols = shutil.get_terminal_size((100, 20)).columns
                    line = (
                        f"[{progress_bar(event.files_done, event.files_total)}] "
                        f"{event.files_done}/{event.files_total} files  "
                        f"{event.chunks_done} chunks  {event.chunks_per_s:.1f} chunks/s  "
                        f"ETA {clock(event.eta_s, '--:--')}  {Path(event.current).name}"
                    )
                    print("\r" + line[: cols - 1].ljust(cols - 1), end="", file=sys.stderr)
            elif isinstance(event, FileDone):
                if event.status == "failed" or args.verbose or not tty:
                    mark = {"indexed": "+", "unchanged": "=", "failed": "!", "removed": "-"}.get(
                        event.status, "?"
                    )
                    detail = f"  ({event.reason})" if event.reason else ""
                    chunks = f" {event.chunks} chunks" if event.status == "indexed" else ""
                    msg = f"{mark} {event.status:<9} {event.path}{chunks}{detail}"
                    print(("\r" if tty else "") + msg, file=sys.stderr)
            elif isinstance(event, IndexSummary):
                summary = event
    if tty:
        print(file=sys.stderr)
    if summary is None:
        return 1
    print(
        f"{summary.indexed} indexed, {summary.unchanged} unchanged, {summary.failed} failed, "
        f"{summary.removed} removed — {summary.chunks} chunks in {summary.seconds:.1f} s"
        + (" (cancelled; the knowledge base is consistent)" if summary.cancelled else "")
    )
    for path, reason in summary.failures:
        print(f"  failed: {path}: {reason}")
    return 130 if summary.cancelled else 0


# -- search --------------------------------------------------------------------------
def cmd_search(ws: Workspace, args: argparse.Namespace) -> int:
    hits = service.search(ws, args.kb, args.text, k=args.k, method=args.method)
    if args.json:
        print(json.dumps([_hit_dict(h) for h in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("No results.")
    for rank, hit in enumerate(hits, 1):
        heading = f" — {hit.heading}" if hit.heading else ""
        print(f"{rank}. [{hit.score:.4f}] {hit.source}#{hit.chunk_index}{heading}")
        snippet = " ".join(hit.text.split())
        print(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}")
    return 0


def _hit_dict(hit: Any) -> dict[str, Any]:
    return {
        "id": hit.id,
        "score": hit.score,
        "source": hit.source,
        "heading": hit.heading,
        "chunk_index": hit.chunk_index,
        "start": hit.start,
        "end": hit.end,
        "method": hit.method,
        "text": hit.text,
    }
