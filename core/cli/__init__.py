"""`cotrag`: the core's capabilities from a terminal (scripting, CI, benchmarks)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from core import __version__
from core.cli.compare import add_compare_parser, cmd_compare
from core.cli.dataset import add_dataset_parser, cmd_dataset
from core.cli.embedders import add_embedder_parsers, cmd_embedders, cmd_train_embedder
from core.cli.kb import cmd_index, cmd_kb, cmd_search
from core.cli.kb_versions import add_version_parsers
from core.cli.models import add_models_parser, cmd_models
from core.cli.rounds import add_rounds_parser, cmd_train_rounds
from core.cli.run import cmd_ask, cmd_config, cmd_eval
from core.cli.train import add_train_parser, cmd_train
from core.errors import CotragError
from core.training.worker import main as worker_main
from core.workspace import Workspace, setup_logging

log = logging.getLogger("cotrag.cli")


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
    kb_sub.add_parser(
        "sample",
        help="make the sample knowledge base from the app's user guide (an existing one is kept)",
    )
    add_version_parsers(kb_sub)

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
        p.add_argument(
            "--model",
            help="a GGUF file, a model folder or a name from `cotrag models list` (default: "
            "the default model, `cotrag models default`)",
        )
        p.add_argument("--method", choices=["dense", "bm25", "hybrid"], default=None)
        p.add_argument("--grammar", choices=["auto", "on", "off"], default="auto")
        p.add_argument(
            "--first-query",
            choices=["auto", "question", "model"],
            default=None,
            help="who writes the first search: the app (your question) or the model "
            "(default: loop.first_query, auto = question for untuned models)",
        )
        p.add_argument(
            "--answer-model",
            default=None,
            help="the model that writes the answer from the vetted passages: base (the model "
            "a tuned model was trained from), auto (what its guard measured better), a model "
            "name or file, or '' for the searcher (default: loop.answer_model)",
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

    add_dataset_parser(sub)
    add_train_parser(sub)
    add_embedder_parsers(sub)
    add_rounds_parser(sub)
    add_models_parser(sub)
    add_compare_parser(sub)
    sub.add_parser("config", help="print the effective settings")
    return parser


_COMMANDS = {
    "kb": cmd_kb,
    "index": cmd_index,
    "search": cmd_search,
    "ask": cmd_ask,
    "eval": cmd_eval,
    "config": cmd_config,
    "dataset": cmd_dataset,
    "train": cmd_train,
    "train-embedder": cmd_train_embedder,
    "embedders": cmd_embedders,
    "train-rounds": cmd_train_rounds,
    "models": cmd_models,
    "compare": cmd_compare,
}


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["--train-worker"]:  # the frozen build's training worker
        return worker_main(given[1:])
    args = build_parser().parse_args(given)
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
    if args.command == "dataset" and args.dataset_command in ("generate", "import"):
        args.kb = args.kb or ws.config.kb or None
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
