"""Does tuning on generated traces lift the loop? Base vs tuned, paired per question.

    python bench/tune_quality.py [--corpus DIR] [--qa FILE] [--count 300] [--preset cpu-quick]
                                 [--set FIELD=VALUE ...] [--data-dir DIR --kb KB --dataset NAME]
                                 [--model NAME] [--limit N] [--out R.json]

1. Index the corpus (the npm CLI's docs by default) and generate a dataset from it with
   the dataset generator and the bundled teacher: its own questions, never the QA file's.
   (With --data-dir/--kb/--dataset an existing knowledge base and dataset are used.)
2. Train with the preset (cpu-quick by default) through the real worker process.
   (--model NAME skips training and compares an existing tuned model.)
3. On the QA file: base loop (first search seeded with the question, as untuned models
   run), tuned loop (the tuned model writes its own queries), base rag, and the tuned
   model with the app-seeded first search (so a loss is traced to the queries or to the
   vetting and answer). Greedy decoding.
Prints accuracy, recall@k, rounds, protocol-error rate, s/question for each, and the
paired tables (tuned loop vs base loop, tuned loop vs base rag) with McNemar's p.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import default_corpus, default_qa, table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--qa", type=Path, default=None)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--preset", default="cpu-quick")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--kb", default="")
    parser.add_argument("--dataset", default="")
    parser.add_argument("--model", default="", help="an existing tuned model (skip training)")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="cotrag-tune-")
        args.data_dir = Path(tmp.name)
    from core.workspace import Workspace

    ws = Workspace(args.data_dir)
    kb = args.kb or "bench"
    if not args.kb:
        from core.knowledge.indexer import Indexer

        corpus = args.corpus or default_corpus()
        store_kb = ws.store.create(kb)
        t0 = time.perf_counter()
        for _ in Indexer(store_kb, ws.embedder, ws.config.chunking).run([corpus]):
            pass
        print(f"indexed {corpus}: {store_kb.count()} chunks in {time.perf_counter() - t0:.0f} s")
    dataset = args.dataset or "bench-traces"
    if not args.dataset:
        from core.dataset.service import generator, make_teacher
        from core.dataset.spec import GenerateSpec

        t0 = time.perf_counter()
        spec = GenerateSpec(kb=kb, count=args.count)
        gen, _, _ = generator(ws, dataset, spec, make_teacher(ws, "bundled"))
        for _ in gen.run():
            pass
        print(f"dataset {dataset}: generated in {time.perf_counter() - t0:.0f} s")
    ws.release(None)

    model = args.model or _train(ws, dataset, args)
    items = _items(args)
    ws.config.generation.temperature = 0.0
    from core.compare.evaluation import evaluate
    from core.compare.pairs import Side, compare

    def agent_for(side: Side) -> Any:
        return ws.agent(kb, model=None if side.model == "default" else side.model)

    def release(side: Side) -> None:
        ws.release(None if side.model == "default" else side.model)

    def progress(side: int, index: int, result: Any) -> None:
        if (index + 1) % 10 == 0:
            print(f"  [{('base loop', 'tuned loop')[side]}] {index + 1}/{len(items)}", flush=True)

    t0 = time.perf_counter()
    loops = compare(
        agent_for,
        Side("default", "loop"),
        Side(model, "loop"),
        items,
        kb=kb,
        release=release,
        on_item=progress,
    )
    rag = evaluate(ws.agent(kb), items, mode="rag", kb=kb, model="default")
    ws.release(None)
    # Which stage fails: the tuned model again, with the app writing the first search.
    seeded = evaluate(
        ws.agent(kb, model=model, first_query="question"), items, mode="loop", kb=kb, model=model
    )
    print(f"evaluated in {time.perf_counter() - t0:.0f} s")
    base_loop, tuned_loop = loops.reports
    reports = [
        ("base loop (seeded)", base_loop),
        ("tuned loop", tuned_loop),
        ("base rag", rag),
        ("tuned loop, app-seeded", seeded),
    ]
    rows = [["", "accuracy", "recall@k", "mean rounds", "protocol-error rate", "s/question"]]
    for label, report in reports:
        s = report.summary
        rows.append(
            [
                label,
                f"{s['accuracy']:.3f}",
                f"{s['recall_at_k']:.3f}",
                f"{s['mean_rounds']:.2f}",
                f"{s['protocol_error_rate']:.3f}",
                f"{s['seconds_per_question']:.1f}",
            ]
        )
    print(table(rows))
    from core.compare.pairs import Comparison

    vs_rag = Comparison(Side(model, "loop"), Side("default", "rag"), kb, [tuned_loop, rag])
    for title, comparison in (
        ("tuned loop vs base loop", loops),
        ("tuned loop vs base rag", vs_rag),
    ):
        t = comparison.table
        if title.endswith("base loop"):
            t = {**t, "only_a": t["only_b"], "only_b": t["only_a"]}
        print(
            f"{title}: both {t['both']}, only tuned {t['only_a']}, only base {t['only_b']}, "
            f"neither {t['neither']}; McNemar p = {t['mcnemar_p']}"
        )
    errors: dict[str, int] = {}
    for item in tuned_loop.items:
        for kind in item.protocol_errors:
            errors[kind] = errors.get(kind, 0) + 1
    print(f"tuned loop protocol errors by kind: {errors}")
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "model": model,
                    "loops": loops.to_dict(),
                    "rag": rag.to_dict(),
                    "tuned_seeded": seeded.to_dict(),
                    "tuned_vs_rag": vs_rag.table,
                },
                ensure_ascii=False,
                indent=2,
            ),
            "utf-8",
        )
    ws.close()
    if tmp is not None:
        tmp.cleanup()


def _items(args: argparse.Namespace) -> list[Any]:
    from core.compare.evaluation import load_qa

    items = load_qa(args.qa or default_qa())
    return items[: args.limit] if args.limit else items


def _train(ws: Any, dataset: str, args: argparse.Namespace) -> str:
    from core.cli.train import build_spec
    from core.training.events import Done, Eval, Step, WorkerEvent
    from core.training.preflight import check_job
    from core.training.process import TrainProcess
    from core.training.runs import RunStore

    spec = build_spec(
        argparse.Namespace(spec=None, preset=args.preset, dataset=dataset, base=None, set=args.set)
    )
    checked = check_job(ws.layout, spec)
    assert checked.prepared is not None
    store = RunStore(ws.layout)
    name = store.unique_name(f"{dataset}-{args.preset}")
    run = store.create(name, spec)
    print(
        f"training {name}: {len(checked.prepared.train)} rows, "
        f"{checked.prepared.train_tokens} tokens, preset {args.preset} {args.set}",
        flush=True,
    )
    proc = TrainProcess(run, ws.layout)
    proc.start()
    t0 = time.perf_counter()

    def on_event(event: WorkerEvent) -> None:
        if isinstance(event, Step) and (event.step % 10 == 0 or event.step == 1):
            print(
                f"  step {event.step}/{event.total} loss {event.loss:.3f} "
                f"{event.tokens_per_s:.0f} tok/s",
                flush=True,
            )
        elif isinstance(event, Eval) and event.loss is not None:
            print(f"  validation loss {event.loss:.3f} at step {event.step}", flush=True)

    outcome = proc.wait(on_event)
    print(f"{outcome.sentence(run.log_file)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if outcome.state != "done":
        raise SystemExit(1)
    assert isinstance(outcome.final, Done)
    return outcome.final.model


if __name__ == "__main__":
    main()
