"""`cotrag`: the core's capabilities from a terminal (scripting, CI, benchmarks)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from core import __version__
from core.errors import CotragError

if TYPE_CHECKING:
    from core.workspace import Workspace

log = logging.getLogger("cotrag.cli")

_COLOURS = {
    "think": "\033[2m",  # dim
    "query": "\033[1;33m",  # bold yellow
    "query_res": "\033[36m",  # cyan
    "results": "\033[1;32m",  # bold green
    "answer": "\033[0m",
    "error": "\033[1;31m",
}
_RESET = "\033[0m"


class Painter:
    """Writes tag-coloured text when the stream is a terminal."""

    def __init__(self, stream: TextIO, colour: bool) -> None:
        self.stream = stream
        self.colour = colour

    def write(self, text: str, tag: str | None = None) -> None:
        if self.colour and tag in _COLOURS:
            self.stream.write(f"{_COLOURS[tag]}{text}{_RESET}")
        else:
            self.stream.write(text)
        self.stream.flush()


def _want_colour(choice: str, stream: TextIO) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return stream.isatty()


# -- kb ------------------------------------------------------------------------------
def cmd_kb(ws: Workspace, args: argparse.Namespace) -> int:
    store = ws.store
    if args.kb_command == "create":
        store.create(args.name)
        print(f"Created knowledge base {args.name!r}.")
    elif args.kb_command == "list":
        infos = store.list()
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
        store.rename(args.old, args.new)
        if ws.config.kb == args.old:
            ws.config.kb = args.new
            ws.save_config()
        print(f"Renamed {args.old!r} to {args.new!r}.")
    elif args.kb_command == "delete":
        if not args.yes and sys.stdin.isatty():
            reply = input(f"Delete knowledge base {args.name!r} and its index? [y/N] ")
            if reply.strip().lower() not in ("y", "yes"):
                print("Kept.")
                return 1
        store.delete(args.name)
        if ws.config.kb == args.name:
            ws.config.kb = ""
            ws.save_config()
        print(f"Deleted {args.name!r}.")
    elif args.kb_command == "use":
        store.get(args.name)  # must exist
        ws.config.kb = args.name
        ws.save_config()
        print(f"Now using {args.name!r} when no --kb is given.")
    elif args.kb_command == "docs":
        for doc in store.get(args.name).documents():
            print(f"{doc.chunks:>5} chunks  {doc.source}")
    return 0


def _kb_info_dict(info: Any) -> dict[str, Any]:
    return {"name": info.name, "documents": info.documents, "chunks": info.chunks}


# -- index ---------------------------------------------------------------------------
def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / total) if total else width
    return "#" * filled + "-" * (width - filled)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def cmd_index(ws: Workspace, args: argparse.Namespace) -> int:
    from core.knowledge.indexer import FileDone, Indexer, IndexSummary, Progress

    store = ws.store
    names = {i.name for i in store.list()}
    if args.kb not in names:
        if args.no_create:
            store.get(args.kb)  # raises KnowledgeBaseNotFound with advice
        store.create(args.kb)
        print(f"Created knowledge base {args.kb!r}.", file=sys.stderr)
    kb = store.get(args.kb)
    cancel = threading.Event()
    indexer = Indexer(kb, ws.embedder, ws.config.chunking)
    paths = [Path(p) for p in args.paths]
    for p in paths:
        if not p.exists():
            print(f"warning: {p} does not exist", file=sys.stderr)
    tty = sys.stderr.isatty()
    summary: IndexSummary | None = None

    def on_sigint(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\nStopping after the current document (Ctrl-C again to abort)…", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    last_line = 0.0
    try:
        for event in indexer.run(paths, include=args.include, exclude=args.exclude, cancel=cancel):
            if isinstance(event, Progress):
                now = time.monotonic()
                if tty and now - last_line > 0.1:
                    last_line = now
                    cols = shutil.get_terminal_size((100, 20)).columns
                    line = (
                        f"[{_bar(event.files_done, event.files_total)}] "
                        f"{event.files_done}/{event.files_total} files  "
                        f"{event.chunks_done} chunks  {event.chunks_per_s:.1f} chunks/s  "
                        f"ETA {_fmt_eta(event.eta_s)}  {Path(event.current).name}"
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
    finally:
        signal.signal(signal.SIGINT, previous)
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
    kb = ws.store.get(args.kb)
    # Load the embedder before timing: the first search would otherwise include it.
    hits = kb.search(args.text, k=args.k, method=args.method)
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


# -- ask -----------------------------------------------------------------------------
def _apply_loop_overrides(ws: Workspace, args: argparse.Namespace) -> None:
    loop = ws.config.loop
    if getattr(args, "max_rounds", None):
        loop.max_rounds = args.max_rounds
    if getattr(args, "k", None):
        ws.config.retrieval.k = args.k


def _grammar_choice(args: argparse.Namespace) -> bool | None:
    return {"on": True, "off": False}.get(getattr(args, "grammar", "auto"))


def cmd_ask(ws: Workspace, args: argparse.Namespace) -> int:
    from core.agent.events import (
        Answer,
        BlockEnd,
        BlockStart,
        Finished,
        ProtocolError,
        Retrieval,
        Token,
    )
    from core.agent.record import RunRecord

    _apply_loop_overrides(ws, args)
    kb_name = args.kb if args.mode != "closed" else None
    if kb_name:
        ws.store.get(kb_name)  # a clear error before the model loads
    agent = ws.agent(
        kb_name,
        model=args.model,
        grammar=_grammar_choice(args),
        method=args.method,
        first_query=args.first_query,
    )
    cancel = threading.Event()
    record = RunRecord(question=args.question, mode=args.mode)
    painter = Painter(sys.stdout, _want_colour(args.color, sys.stdout))
    show = not args.json
    try:
        for event in agent.run(
            args.question, mode=args.mode, retriever_only=args.retriever_only, cancel=cancel
        ):
            record.add(event)
            if not show:
                continue
            if isinstance(event, BlockStart):
                if event.tag == "answer":
                    painter.write("\n── answer ──\n", "answer")
                elif event.tag != "query_res":
                    painter.write(f"<{event.tag}>", event.tag)
            elif isinstance(event, Token):
                # The passages are shown from the Retrieval event, as a readable list.
                if event.tag != "query_res":
                    painter.write(event.text, event.tag)
            elif isinstance(event, BlockEnd):
                if event.tag == "query_res":
                    # Passages were shown from the Retrieval event; a note is shown as is.
                    if event.kind != "passages":
                        painter.write(f"<query_res>\n{event.text}\n</query_res>\n", "query_res")
                elif event.tag != "answer":
                    painter.write(f"</{event.tag}>", event.tag)
                    if event.kind == "seed":
                        painter.write("   (the app searched with your question)", "think")
                    painter.write("\n", event.tag)
            elif isinstance(event, Retrieval):
                painter.write("<query_res>\n", "query_res")
                for number, hit in zip(event.numbers, event.hits, strict=False):
                    snippet = " ".join(hit.text.split())[:160]
                    painter.write(
                        f"  [{number}] {hit.label} ({hit.score:.3f}) {snippet}…\n", "query_res"
                    )
                painter.write("</query_res>\n", "query_res")
            elif isinstance(event, ProtocolError):
                painter.write(f"\n[protocol error: {event.kind}: {event.detail}]\n", "error")
            elif isinstance(event, Answer):
                painter.write("\n")
                if event.citations:
                    painter.write(
                        "cited: " + ", ".join(f"[{n}]" for n in event.citations) + "\n", "results"
                    )
            elif isinstance(event, Finished):
                s = event.stats
                painter.write(
                    f"\n── {event.reason}: {s.rounds} rounds, {s.completion_tokens} tokens at "
                    f"{s.tokens_per_s:.1f} tok/s, {s.prompt_tokens} prompt tokens evaluated, "
                    f"{s.cached_tokens} reused from cache, {s.seconds:.1f} s ──\n",
                    "think",
                )
    except KeyboardInterrupt:
        cancel.set()
        print("\nCancelled.", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(record.to_dict(), ensure_ascii=False, indent=2))
    if args.save:
        from core.conversations import ConversationStore

        store = ConversationStore(ws.layout.conversations)
        conv = store.new(args.question, kb=kb_name or "", model=str(ws.model_path(args.model)))
        conv.turns.append(record.to_dict())
        path = store.save(conv)
        print(f"Saved conversation to {path}", file=sys.stderr)
    return 0


# -- eval ----------------------------------------------------------------------------
def cmd_eval(ws: Workspace, args: argparse.Namespace) -> int:
    from core.evaluation import evaluate, load_qa

    items = load_qa(Path(args.qa))
    if args.limit:
        items = items[: args.limit]
    _apply_loop_overrides(ws, args)
    kb_name = args.kb if args.mode != "closed" else None
    if kb_name:
        ws.store.get(kb_name)
    agent = ws.agent(
        kb_name,
        model=args.model,
        grammar=_grammar_choice(args),
        method=args.method,
        first_query=args.first_query,
    )

    def on_item(index: int, result: Any) -> None:
        mark = "✓" if result.correct else "✗"
        hit = {True: "hit", False: "miss", None: "-"}[result.retrieval_hit]
        errs = f" errors={','.join(result.protocol_errors)}" if result.protocol_errors else ""
        print(
            f"[{index + 1}/{len(items)}] {mark} retrieval={hit} rounds={result.rounds} "
            f"{result.seconds:.1f}s {result.id}{errs}",
            file=sys.stderr,
        )

    report = evaluate(
        agent,
        items,
        mode=args.mode,
        kb=kb_name or "",
        model=str(ws.model_path(args.model)),
        on_item=on_item,
    )
    summary = report.summary
    print(json.dumps(summary, indent=2))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2), "utf-8")
        print(f"Full report: {out}", file=sys.stderr)
    return 0


# -- config --------------------------------------------------------------------------
def cmd_config(ws: Workspace, args: argparse.Namespace) -> int:
    import tomli_w

    print(f"# {ws.layout.config_file}")
    print(tomli_w.dumps(ws.config.to_dict()))
    return 0


# -- parser --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cotrag",
        description="CoT-RAG Studio from the terminal: knowledge bases, search, the tag loop, eval.",
    )
    parser.add_argument("--version", action="version", version=f"cotrag {__version__}")
    parser.add_argument(
        "--data-dir",
        help="where knowledge bases, config and logs live (default: $COTRAG_DATA_DIR or the "
        "user data dir)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more detail")
    sub = parser.add_subparsers(dest="command", required=True)

    kb = sub.add_parser("kb", help="create, list, rename, delete knowledge bases")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    p = kb_sub.add_parser("create")
    p.add_argument("name")
    p = kb_sub.add_parser("list")
    p.add_argument("--json", action="store_true")
    p = kb_sub.add_parser("rename")
    p.add_argument("old")
    p.add_argument("new")
    p = kb_sub.add_parser("delete")
    p.add_argument("name")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p = kb_sub.add_parser("use", help="switch: the knowledge base used when --kb is not given")
    p.add_argument("name")
    p = kb_sub.add_parser("docs", help="list the documents of a knowledge base")
    p.add_argument("name")

    p = sub.add_parser("index", help="index files and folders into a knowledge base")
    p.add_argument("paths", nargs="+")
    p.add_argument("--kb", help="knowledge base (default: the current one; created if missing)")
    p.add_argument("--include", action="append", default=[], help="glob, repeatable")
    p.add_argument("--exclude", action="append", default=[], help="glob, repeatable")
    p.add_argument("--no-create", action="store_true", help="fail if the knowledge base is missing")

    p = sub.add_parser("search", help="search a knowledge base")
    p.add_argument("text")
    p.add_argument("--kb", help="knowledge base (default: the current one)")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--method", choices=["dense", "bm25", "hybrid"], default="hybrid")
    p.add_argument("--json", action="store_true")

    def add_run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--kb", help="knowledge base (default: the current one; not used by closed)")
        p.add_argument("--mode", choices=["loop", "rag", "closed"], default="loop")
        p.add_argument("--model", help="GGUF file (default: the bundled SmolLM2-135M-Instruct)")
        p.add_argument("--method", choices=["dense", "bm25", "hybrid"], default=None)
        p.add_argument("--grammar", choices=["auto", "on", "off"], default="auto")
        p.add_argument(
            "--first-query",
            choices=["auto", "question", "model"],
            default=None,
            help="who writes the first search: the app (your question) or the model "
            "(default: loop.first_query, auto = question for untuned models)",
        )
        p.add_argument("--max-rounds", type=int, default=None)
        p.add_argument("-k", type=int, default=None, help="passages per search")

    p = sub.add_parser("ask", help="ask a question and watch the tag loop")
    p.add_argument("question")
    add_run_options(p)
    p.add_argument("--retriever-only", action="store_true", help="stop after <results>")
    p.add_argument("--json", action="store_true", help="print one JSON object, no live trace")
    p.add_argument("--save", action="store_true", help="save as a conversation")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto")

    p = sub.add_parser("eval", help="evaluate on a QA file (JSON lines)")
    add_run_options(p)
    p.add_argument("--qa", required=True)
    p.add_argument("--out", help="write the full per-item report here (JSON)")
    p.add_argument("--limit", type=int, default=0)

    sub.add_parser("config", help="print the effective settings")
    return parser


_COMMANDS = {
    "kb": cmd_kb,
    "index": cmd_index,
    "search": cmd_search,
    "ask": cmd_ask,
    "eval": cmd_eval,
    "config": cmd_config,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from core.workspace import Workspace, setup_logging

    try:
        ws = Workspace(args.data_dir)
    except CotragError as exc:
        print(f"cotrag: {exc}", file=sys.stderr)
        return 1
    if args.command in ("index", "search", "ask", "eval") and not args.kb:
        needs_kb = args.command in ("index", "search") or args.mode != "closed"
        args.kb = ws.config.kb or None
        if needs_kb and not args.kb:
            print(
                "cotrag: name a knowledge base with --kb NAME (or pick one with `cotrag kb use NAME`)",
                file=sys.stderr,
            )
            return 2
    log_path = setup_logging(ws.layout, logging.DEBUG if args.verbose else logging.INFO)
    try:
        return _COMMANDS[args.command](ws, args)
    except CotragError as exc:
        log.info("user error: %s", exc)
        print(f"cotrag: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except Exception as exc:
        log.exception("unexpected error in %s", args.command)
        print(f"cotrag: unexpected error: {exc} (details in {log_path})", file=sys.stderr)
        return 2
    finally:
        ws.close()


if __name__ == "__main__":
    sys.exit(main())
