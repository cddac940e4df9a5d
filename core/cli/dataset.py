"""`cotrag dataset …`: verified training traces from a knowledge base."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.terminal import confirm, ctrl_c_cancels, progress_bar
from core.conversations import ConversationDamaged, ConversationStore, feedback_of
from core.dataset import export as exporting
from core.dataset import rewrite, service
from core.dataset.from_chat import pairs_from_conversations
from core.dataset.importing import load_pairs
from core.dataset.pairs import ImportedPair, imported_before, pair_key
from core.dataset.progress import Accepted, GenEvent, Progress, Rejected
from core.dataset.sampling import FALLBACKS, SampleProgress
from core.dataset.spec import GenerateSpec, kind_weights
from core.dataset.storage import Dataset
from core.dataset.teacher import LICENCE_NOTICE
from core.dataset.validate import validate
from core.durations import clock
from core.errors import CotragError

if TYPE_CHECKING:
    from core.workspace import Workspace


def add_dataset_parser(sub: Any) -> None:
    ds = sub.add_parser("dataset", help="training traces: generate, import, inspect, export")
    ds_sub = ds.add_subparsers(dest="dataset_command", required=True)

    p = ds_sub.add_parser("generate", help="verified examples from a knowledge base")
    p.add_argument("--kb", help="knowledge base (default: the current one)")
    p.add_argument("--name", required=True, help="dataset name (a re-run continues it)")
    p.add_argument("--count", type=int, default=200, help="examples wanted (default 200)")
    p.add_argument(
        "--teacher",
        default="bundled",
        help="question writer: bundled (default), none (templates only), a .gguf file, or "
        "the base URL of an OpenAI-compatible endpoint",
    )
    p.add_argument("--teacher-model", default="", help="model name at an endpoint teacher")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validation", type=float, default=0.1, help="share of documents held out")
    p.add_argument(
        "--kinds",
        default="",
        help="weights, e.g. lookup=2,default=1,howto=1,twohop=1 (a bare name weighs 1); "
        "kinds: lookup, definition, default, behaviour, howto, twohop (two related chunks)",
    )
    p.add_argument("--document", action="append", default=[], help="only this document")
    p.add_argument("--exclude", action="append", default=[], help="leave this document out")
    p.add_argument(
        "--teacher-traces",
        action="store_true",
        help="let a model teacher run the search loop itself first (kept when it is right)",
    )
    p.add_argument(
        "--unanswerable", type=float, default=0.1, help="share traced without their document"
    )
    p.add_argument(
        "--samples",
        type=int,
        default=0,
        help="runs of the model to be tuned per question; its best verified run is the trace",
    )
    p.add_argument("--sample-temperature", type=float, default=0.7)
    p.add_argument("--sample-model", default="", help="the model that samples (default: yours)")
    p.add_argument("--sample-fallback", choices=["constructed", "drop"], default="constructed")
    p.add_argument(
        "--rewrite",
        action="store_true",
        help="the question writer restates each verified question in its own words (kept "
        "when it still finds its source, does not hold the answer and does not copy the "
        "source sentence)",
    )
    p.add_argument(
        "--rewrite-max-overlap",
        type=float,
        default=0.6,
        help="with --rewrite: the most a rewrite may share of its content words with the "
        "source sentence (default 0.6)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON at the end")

    p = ds_sub.add_parser(
        "import",
        help="QA pairs (JSON, JSONL, CSV, SQuAD) or saved chat conversations into a dataset",
    )
    p.add_argument("file", nargs="?", help="a .json, .jsonl or .csv file of QA pairs")
    p.add_argument(
        "--conversations",
        nargs="+",
        metavar="ID",
        help="import saved conversations instead of a file: their ids (`cotrag dataset "
        "conversations` lists them) or `all`; the user's corrected answer is used where a "
        "turn has one, else the model's; thumbs-down turns without a correction are skipped",
    )
    p.add_argument("--kb", help="knowledge base (default: the current one)")
    p.add_argument("--name", required=True)

    ds_sub.add_parser("conversations", help="the saved conversations that can be imported")
    p = ds_sub.add_parser(
        "sample",
        help="the model's own verified runs as traces (rejection sampling); a re-run goes on",
    )
    p.add_argument("name")
    p.add_argument("--samples", type=int, default=5, help="runs per question (default 5)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    p.add_argument("--model", default="", help="the model to be tuned (default: the configured)")
    p.add_argument(
        "--fallback",
        choices=list(FALLBACKS),
        default="constructed",
        help="a question with no kept run keeps its constructed trace, or is dropped",
    )
    p.add_argument("--json", action="store_true", help="print the sampling figures as JSON")

    ds_sub.add_parser("list", help="the datasets")
    p = ds_sub.add_parser("show", help="examples of a dataset")
    p.add_argument("name")
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--trace", action="store_true", help="print each example's trace")
    p = ds_sub.add_parser("stats", help="the quality report")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p = ds_sub.add_parser("validate", help="check every line of a dataset")
    p.add_argument("name")
    p = ds_sub.add_parser("delete")
    p.add_argument("name")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p = ds_sub.add_parser("export", help="write training files")
    p.add_argument("name")
    p.add_argument("--format", choices=["chat", "chatml", "instruction", "qa"], default="chat")
    p.add_argument("--out", required=True)
    p.add_argument("--split", choices=["", "train", "validation"], default="")
    p.add_argument("--card", action="store_true", help="also write a dataset card (.md)")


def _run(events: Any, cancel: threading.Event, quiet: bool) -> tuple[int, int]:
    """Print progress; Ctrl-C stops after the current example (nothing accepted is lost)."""
    interactive = sys.stderr.isatty() and not quiet
    accepted = rejected = 0
    last_print = 0.0
    with ctrl_c_cancels(cancel, "Stopping after the current example…"):
        try:
            event: GenEvent
            for event in events:
                if isinstance(event, Accepted):
                    if not interactive and not quiet:
                        ex = event.example
                        print(f"+ [{ex['kind']}] {ex['question']}  →  {ex['answer']}")
                elif isinstance(event, Rejected):
                    pass
                elif isinstance(event, Progress):
                    accepted, rejected = event.accepted, event.rejected
                    now = time.monotonic()
                    if interactive and now - last_print > 0.2:
                        last_print = now
                        sys.stderr.write(
                            f"\r[{progress_bar(event.accepted, event.target)}] {event.accepted}/"
                            f"{event.target} accepted, {event.rejected} rejected, "
                            f"{event.per_minute:.0f}/min, ETA {clock(event.eta_s, '--:--')}   "
                        )
                        sys.stderr.flush()
        finally:
            if interactive:
                sys.stderr.write("\n")
    return accepted, rejected


def _print_report(report: dict[str, Any]) -> None:
    print(
        f"{report['examples']} examples ({report['splits'].get('train', 0)} train, "
        f"{report['splits'].get('validation', 0)} validation) from {report['documents']} "
        f"documents; {report['rejected']} rejected (acceptance {report['acceptance_rate']:.0%}); "
        f"{report.get('unanswerable', 0)} unanswerable (traced without their document)"
    )
    for title, key in (
        ("kinds", "kinds"),
        ("rejections", "rejections"),
        ("questions by", "question_origins"),
        ("traces", "trace_origins"),
        ("teacher fell back to a template", "teacher_failures"),
        ("rounds per trace", "rounds"),
        ("round-trip rank of the source chunk", "round_trip_rank"),
        (f"trace length ({report['trace_tokens_unit']})", "trace_tokens"),
    ):
        values = report.get(key) or {}
        if values:
            print(f"  {title}: " + ", ".join(f"{k}: {v}" for k, v in values.items()))
    figures = report.get("rewrite")
    if figures:
        reasons = ", ".join(
            f"{rewrite.REASON_LABELS.get(k, k)}: {v}" for k, v in figures["reasons"].items()
        )
        print(
            f"  rewritten in the writer's words: {figures['rewritten']} of {figures['tried']}"
            + (f" (not kept: {reasons})" if reasons else "")
            + f"; word overlap with the source sentence, median "
            f"{figures['overlap_median_before']:.2f} before, "
            f"{figures['overlap_median_after']:.2f} after"
        )


def _import_pairs(ws: Workspace, args: argparse.Namespace) -> list[ImportedPair]:
    """The pairs of ``dataset import``: from the file, or from saved conversations (with a
    line saying what was taken and what was skipped, and why)."""
    if args.file and args.conversations:
        raise CotragError("Import a file or --conversations, not both at once.")
    if args.conversations:
        store = ConversationStore(ws.layout.conversations)
        found = pairs_from_conversations(store, list(args.conversations), args.kb)
        for warning in found.warnings:
            print(f"Warning: {warning}", file=sys.stderr)
        print(
            f"{found.conversations} conversation{'s' * (found.conversations != 1)}, "
            f"{found.turns} turn{'s' * (found.turns != 1)}: {len(found.pairs)} to import "
            f"({found.corrected} with the user's corrected answer, "
            f"{len(found.pairs) - found.corrected} with the model's answer)."
        )
        if found.skipped:
            print(found.skipped_sentence())
        if not found.pairs:
            raise CotragError(
                "No turn of these conversations can be imported (see above why each was skipped)."
            )
        return found.pairs
    if not args.file:
        raise CotragError(
            "Name a file of QA pairs to import, or --conversations ID … (or all) to import "
            "saved chat conversations."
        )
    return load_pairs(Path(args.file))


def _print_cited_notes(dataset: Dataset, pairs: list[ImportedPair]) -> None:
    """Say which corrected cited answers could not be the answer stage, and why."""
    keys = {pair_key(pair) for pair in pairs if pair.cited}
    for example in dataset.examples():
        if example.get("seed_key") in keys and example.get("cited_note"):
            print(
                f"Kept the app's cited answer for {example['question']!r} "
                f"({example.get('import_ref', '')}): {example['cited_note']}"
            )


def _sample(ws: Workspace, args: argparse.Namespace) -> int:
    """`dataset sample NAME`: each question not decided before, run by the model to be tuned;
    Ctrl-C stops after the current question and a re-run goes on."""
    cancel = threading.Event()
    job = service.sample_pass(
        ws,
        args.name,
        samples=args.samples,
        temperature=args.temperature,
        model=args.model,
        fallback=args.fallback,
        cancel=cancel,
    )
    quiet = bool(args.json)
    if not quiet:
        print(f"{job.todo} question(s) to sample, {args.samples} run(s) each.")
    interactive = sys.stderr.isatty() and not quiet
    with ctrl_c_cancels(cancel, "Stopping after the current question…"):
        try:
            for event in job.run():
                if isinstance(event, SampleProgress) and not quiet:
                    line = (
                        f"{event.done}/{event.total} questions, {event.kept} kept, "
                        f"{event.fallback} fallback, {event.dropped} dropped "
                        f"(keep rate {event.keep_rate:.0%}), {event.per_minute:.1f}/min, "
                        f"ETA {clock(event.eta_s, '--:--')}"
                    )
                    if interactive:
                        sys.stderr.write(f"\r[{progress_bar(event.done, event.total)}] {line}   ")
                        sys.stderr.flush()
                    else:
                        print(line)
        finally:
            if interactive:
                sys.stderr.write("\n")
    figures = job.dataset.meta.get("sampling", {})
    if quiet:
        print(json.dumps(figures, indent=1))
        return 0
    if cancel.is_set():
        print("Stopped; every decided question is saved. Run the same command to go on.")
    if figures:
        print(
            f"Sampled {figures['questions']} question(s) so far: {figures['kept']} with the "
            f"model's own run, {figures['fallback']} kept their constructed trace, "
            f"{figures['dropped']} dropped (keep rate {figures['keep_rate']:.0%}; "
            f"{figures['runs_kept']}/{figures['runs']} runs kept; "
            f"{figures['prefix_tokens_reused']} prompt tokens reused from the cache)."
        )
    return 0


def _list_conversations(ws: Workspace) -> int:
    store = ConversationStore(ws.layout.conversations)
    ids = store.ids()
    if not ids:
        print("No saved conversations. Ask in the chat, or with: cotrag ask QUESTION --save")
    for conv_id in ids:
        try:
            conv = store.load(conv_id)
        except ConversationDamaged as exc:
            print(f"{conv_id}  (damaged: {exc})")
            continue
        ratings = Counter(feedback_of(t) for t in conv.turns)
        corrected = sum(bool(t.get("correction")) for t in conv.turns)
        print(
            f"{conv.id}  {len(conv.turns):>3} turns  ✓{ratings['up']} ✗{ratings['down']} "
            f"corrected {corrected}  kb {conv.kb or '-'}  {conv.title}"
        )
    return 0


def cmd_dataset(ws: Workspace, args: argparse.Namespace) -> int:
    store = service.datasets(ws)
    command = args.dataset_command
    if command in ("generate", "import"):
        if not args.kb:
            raise CotragError("Name a knowledge base with --kb NAME (or `cotrag kb use NAME`).")
        cancel = threading.Event()
        if command == "generate":
            spec = GenerateSpec(
                kb=args.kb,
                count=args.count,
                seed=args.seed,
                validation_share=args.validation,
                kinds=kind_weights(args.kinds),
                documents=list(args.document),
                exclude=list(args.exclude),
                teacher_traces=args.teacher_traces,
                unanswerable_share=args.unanswerable,
                samples=args.samples,
                sample_temperature=args.sample_temperature,
                sample_model=args.sample_model,
                sample_fallback=args.sample_fallback,
                rewrite=args.rewrite,
                rewrite_max_overlap=args.rewrite_max_overlap,
            )
            teacher = service.make_teacher(ws, args.teacher, args.teacher_model)
            if teacher is not None and teacher.writes_pairs:
                print(f"Note: {LICENCE_NOTICE}", file=sys.stderr)
            gen, dataset, created = service.generator(ws, args.name, spec, teacher, cancel=cancel)
            if not created:
                print(f"Continuing dataset {args.name!r} ({len(dataset.examples())} examples).")
            events = gen.run()
        else:
            pairs = _import_pairs(ws, args)
            gen, dataset = service.importer(ws, args.name, args.kb, pairs, cancel=cancel)
            if args.conversations:
                earlier = imported_before(pairs, dataset.decided_seeds())
                if earlier:
                    print(f"{earlier} of these were imported into {args.name!r} before.")
            events = gen.run_pairs(pairs)
        _run(events, cancel, quiet=bool(getattr(args, "json", False)))
        if command == "import" and args.conversations:
            _print_cited_notes(dataset, pairs)
        report = exporting.report(dataset, ws.backend(None).count_tokens)
        if getattr(args, "json", False):
            print(json.dumps(report, indent=1))
        else:
            if cancel.is_set():
                print("Stopped; every accepted example is saved. Run the same command to go on.")
            _print_report(report)
            print(f"Dataset folder: {dataset.folder}")
        return 0
    if command == "sample":
        return _sample(ws, args)
    if command == "conversations":
        return _list_conversations(ws)
    if command == "list":
        found = service.summaries(ws)
        if not found:
            print("No datasets yet. Make one with: cotrag dataset generate --kb KB --name NAME")
        for summary in found:
            print(f"{summary.name}  {summary.examples:>6} examples  (from {summary.kb})")
        return 0
    dataset = store.open(args.name)
    if command == "show":
        for example in dataset.examples()[: args.limit]:
            print(
                f"[{example['kind']} · {example['split']} · {example['question_origin']}] "
                f"{example['question']}\n  answer: {example['answer']}  "
                f"({Path(example['source']).name})"
            )
            if args.trace:
                print(example["record"]["trace"])
                print(f"  answer stage: {example['record']['answer']}\n")
        return 0
    if command == "stats":
        report = exporting.report(dataset, ws.backend(None).count_tokens)
        if args.json:
            print(json.dumps(report, indent=1))
        else:
            _print_report(report)
        return 0
    if command == "validate":
        problems = validate(dataset)
        for problem in problems:
            print(problem)
        count = len(dataset.examples())
        print(f"{count} examples checked; {len(problems)} problem(s).")
        return 1 if problems else 0
    if command == "delete":
        if not args.yes and not confirm(f"Delete dataset {args.name!r} and its examples?"):
            return 1
        store.delete(args.name)
        print(f"Deleted dataset {args.name!r}.")
        return 0
    if command == "export":
        out = Path(args.out)
        written, card_path = service.export_to(
            dataset, args.format, out, args.split, card=args.card
        )
        print(f"Wrote {written} rows ({args.format}) to {out}.")
        if card_path is not None:
            print(f"Wrote the dataset card to {card_path}.")
        return 0
    raise CotragError(f"unknown dataset command {command!r}")
