"""`cotrag compare`: two models (or modes) on the same questions, paired per question."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.cli.run import score_marks, write_report
from core.compare.evaluation import ItemResult
from core.compare.pairs import Side
from core.compare.service import CompareRequest, compare_models, load_items
from core.errors import CotragError
from core.workspace import Workspace


def add_compare_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="compare two models on a QA file or a dataset's validation split, paired",
    )
    p.add_argument("--kb", help="knowledge base (default: the current one)")
    p.add_argument(
        "--qa",
        required=True,
        help="a QA file (JSON lines with question and answers), or dataset:NAME for a "
        "dataset's validation split",
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        help="twice: A then B; NAME or NAME@mode (e.g. --model default@rag --model my-tuned)",
    )
    p.add_argument("--mode", choices=["loop", "rag", "closed"], default="loop")
    p.add_argument("--first-query", choices=["auto", "question", "model"], default=None)
    p.add_argument(
        "--answer-model",
        default=None,
        help="the model that writes each side's answer: base (a tuned side's base model), "
        "auto (what a tuned side's guard measured better), a model name or file, or '' for "
        "the side's own model (default: loop.answer_model)",
    )
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", help="write the full report here (JSON)")


def cmd_compare(ws: Workspace, args: argparse.Namespace) -> int:
    if len(args.model) != 2:
        raise CotragError("Give --model exactly twice: the model A and the model B.")
    a, b = (Side.parse(m, args.mode) for m in args.model)
    items = load_items(ws, args.qa)
    if args.limit:
        items = items[: args.limit]
    request = CompareRequest(
        a,
        b,
        kb=args.kb or ws.config.kb or "",
        first_query=args.first_query,
        answer_model=args.answer_model,
    )

    def on_item(side: int, index: int, result: ItemResult) -> None:
        label = (a, b)[side].label
        print(
            f"[{label} {index + 1}/{len(items)}] {score_marks(result)} {result.id}",
            file=sys.stderr,
        )

    result = compare_models(ws, request, items, on_item=on_item)
    table = result.table
    sa, sb = (r.summary for r in result.reports)
    rows = [
        ("", "A: " + a.label, "B: " + b.label),
        ("accuracy (first sentence)", sa.get("accuracy"), sb.get("accuracy")),
        ("accuracy (contains)", sa.get("accuracy_contains"), sb.get("accuracy_contains")),
        ("median answer words", sa.get("median_answer_words"), sb.get("median_answer_words")),
        ("recall@k", sa.get("recall_at_k"), sb.get("recall_at_k")),
        ("mean rounds", sa.get("mean_rounds"), sb.get("mean_rounds")),
        ("protocol-error rate", sa.get("protocol_error_rate"), sb.get("protocol_error_rate")),
        ("s/question", sa.get("seconds_per_question"), sb.get("seconds_per_question")),
    ]
    for row in rows:
        print(f"{row[0]:26} {row[1]!s:>28} {row[2]!s:>28}")
    print(f"\npaired over {table['questions']} questions:")
    for label, t in (("first sentence", table), ("contains", table["contains"])):
        print(
            f"  {label:15} both right {t['both']}, only A {t['only_a']}, only B "
            f"{t['only_b']}, neither {t['neither']}; McNemar exact p = {t['mcnemar_p']}"
        )
    if args.out:
        write_report(Path(args.out), result.to_dict())
    return 0
