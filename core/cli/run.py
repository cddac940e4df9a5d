"""`cotrag ask`, `cotrag eval`, `cotrag config`: the tag loop from a terminal."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

import tomli_w

from core.chat import Question, ask, keep_turn
from core.cli.terminal import Painter, paint_event, want_colour
from core.compare.evaluation import ItemResult, load_qa
from core.compare.service import evaluate_questions
from core.conversations import ConversationStore
from core.workspace import Workspace


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
    _apply_loop_overrides(ws, args)
    kb_name = args.kb if args.mode != "closed" else None
    if kb_name:
        ws.store.get(kb_name)  # a clear error before the model loads
    question = Question(
        args.question,
        mode=args.mode,
        kb=kb_name or "",
        model=args.model,
        retriever_only=args.retriever_only,
        grammar=_grammar_choice(args),
        method=args.method,
        first_query=args.first_query,
        answer_model=args.answer_model,
    )
    cancel = threading.Event()
    asking = ask(ws, question, cancel)
    painter = Painter(sys.stdout, want_colour(args.color, sys.stdout))
    try:
        for event in asking:
            if not args.json:
                paint_event(painter, event)
    except KeyboardInterrupt:
        cancel.set()
        print("\nCancelled.", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(asking.record.to_dict(), ensure_ascii=False, indent=2))
    if args.save:
        store = ConversationStore(ws.layout.conversations)
        model = str(ws.model_path(args.model))
        conv = keep_turn(store, asking.record, kb=kb_name or "", model=model)
        print(f"Saved conversation to {store.path(conv.id)}", file=sys.stderr)
    return 0


# -- eval ----------------------------------------------------------------------------
def cmd_eval(ws: Workspace, args: argparse.Namespace) -> int:
    items = load_qa(Path(args.qa))
    if args.limit:
        items = items[: args.limit]
    _apply_loop_overrides(ws, args)

    def on_item(index: int, result: ItemResult) -> None:
        hit = {True: "hit", False: "miss", None: "-"}[result.retrieval_hit]
        errs = f" errors={','.join(result.protocol_errors)}" if result.protocol_errors else ""
        print(
            f"[{index + 1}/{len(items)}] {score_marks(result)} retrieval={hit} "
            f"rounds={result.rounds} {result.seconds:.1f}s {result.id}{errs}",
            file=sys.stderr,
        )

    report = evaluate_questions(
        ws,
        items,
        mode=args.mode,
        kb=args.kb,
        model=args.model,
        grammar=_grammar_choice(args),
        method=args.method,
        first_query=args.first_query,
        answer_model=args.answer_model,
        on_item=on_item,
    )
    summary = report.summary
    if summary["questions"]:
        print(
            f"accuracy {summary['accuracy']:.3f} (first sentence), "
            f"{summary['accuracy_contains']:.3f} (contains); "
            f"median answer {summary['median_answer_words']:g} words",
            file=sys.stderr,
        )
    print(json.dumps(summary, indent=2))
    if args.out:
        write_report(Path(args.out), report.to_dict())
    return 0


def score_marks(result: ItemResult) -> str:
    """``✓`` / ``✗`` on the short answer, the containment score and the length beside it."""
    mark = "✓" if result.correct else "✗"
    contains = "✓" if result.contains else "✗"
    return f"{mark} (contains {contains}, {result.answer_words} words)"


def write_report(out: Path, data: dict[str, Any]) -> None:
    """The full per-question report of `eval` and `compare` (--out), as JSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, ensure_ascii=False, indent=2), "utf-8")
    print(f"Full report: {out}", file=sys.stderr)


# -- config --------------------------------------------------------------------------
def cmd_config(ws: Workspace, args: argparse.Namespace) -> int:
    print(f"# {ws.layout.config_file}")
    print(tomli_w.dumps(ws.config.to_dict()))
    return 0
