"""`cotrag ask`, `cotrag eval`, `cotrag config`: the tag loop from a terminal."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.terminal import Painter, want_colour

if TYPE_CHECKING:
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
    painter = Painter(sys.stdout, want_colour(args.color, sys.stdout))
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
    from core.compare.evaluation import load_qa
    from core.compare.service import evaluate_questions

    items = load_qa(Path(args.qa))
    if args.limit:
        items = items[: args.limit]
    _apply_loop_overrides(ws, args)

    def on_item(index: int, result: Any) -> None:
        mark = "✓" if result.correct else "✗"
        hit = {True: "hit", False: "miss", None: "-"}[result.retrieval_hit]
        errs = f" errors={','.join(result.protocol_errors)}" if result.protocol_errors else ""
        print(
            f"[{index + 1}/{len(items)}] {mark} retrieval={hit} rounds={result.rounds} "
            f"{result.seconds:.1f}s {result.id}{errs}",
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
        on_item=on_item,
    )
    summary = report.summary
    print(json.dumps(summary, indent=2))
    if args.out:
        write_report(Path(args.out), report.to_dict())
    return 0


def write_report(out: Path, data: dict[str, Any]) -> None:
    """The full per-question report of `eval` and `compare` (--out), as JSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, ensure_ascii=False, indent=2), "utf-8")
    print(f"Full report: {out}", file=sys.stderr)


# -- config --------------------------------------------------------------------------
def cmd_config(ws: Workspace, args: argparse.Namespace) -> int:
    import tomli_w

    print(f"# {ws.layout.config_file}")
    print(tomli_w.dumps(ws.config.to_dict()))
    return 0
