"""Tuning the embedder on the user's own questions: recall before and after, in one run.

    python bench/retriever_tune.py [--corpus DIR] [--data-dir DIR] [--dataset NAME]
                                   [--count 400] [--epochs 2] [--batch-size 16]

1. Indexes the corpus (the npm docs by default) into a knowledge base ``bench``
   with the bundled embedder, unless ``--data-dir`` already holds it.
2. Makes a dataset from it (template questions, no model: verified, by document
   split train / validation), unless ``--dataset`` names one made from ``bench``.
3. Measures recall@1/5/10 of dense and hybrid search with the bundled embedder on
   (a) the dataset's validation questions, which are about documents held out of the
   tuning, a found passage being the gold chunk or a chunk with the same text, and
   (b) the hand-written QA file (bench/data/npm_docs_qa.jsonl: paraphrased questions
   with expected strings, the `cotrag eval` rule), which no generated question copies.
4. Tunes the embedder with the real training worker (a child process), then
   re-embeds the knowledge base into a new version with it and switches.
5. Measures the same recall again on the same questions, prints both side by side
   with the times to tune and to re-embed, then switches the knowledge base back.
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

KS = (1, 5, 10)
METHODS = ("dense", "hybrid")


def gold_recall(kb: Any, pairs: list[Any], method: str) -> dict[int, float]:
    found = dict.fromkeys(KS, 0)
    for pair in pairs:
        hits = kb.search(pair.question, k=max(KS), method=method)
        rank = next(
            (
                r
                for r, h in enumerate(hits)
                if h.id in pair.gold_ids or " ".join(h.text.split()).casefold() in pair.gold_texts
            ),
            None,
        )
        for k in KS:
            found[k] += rank is not None and rank < k
    return {k: found[k] / max(1, len(pairs)) for k in KS}


def qa_recall(kb: Any, items: list[Any], method: str) -> dict[int, float]:
    from core.compare.evaluation import contains_any

    found = dict.fromkeys(KS, 0)
    for item in items:
        hits = kb.search(item.question, k=max(KS), method=method)
        for k in KS:
            found[k] += any(contains_any(h.text, item.answers) for h in hits[:k])
    return {k: found[k] / max(1, len(items)) for k in KS}


def measure(kb: Any, pairs: list[Any], items: list[Any]) -> dict[str, dict[int, float]]:
    out = {}
    for method in METHODS:
        kb.search("warm-up", k=1, method=method)
        out[f"held-out {method}"] = gold_recall(kb, pairs, method)
        out[f"QA file {method}"] = qa_recall(kb, items, method)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--qa", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse an indexed data dir")
    parser.add_argument("--kb", default="bench", help="the knowledge base in --data-dir")
    parser.add_argument("--dataset", default="", help="an existing dataset made from --kb")
    parser.add_argument("--count", type=int, default=400, help="questions to generate")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the tuned version serving")
    args = parser.parse_args()
    corpus = args.corpus or default_corpus()

    from core.compare.evaluation import load_qa
    from core.dataset.service import generator
    from core.dataset.spec import GenerateSpec
    from core.knowledge import reembed
    from core.knowledge.indexer import Indexer
    from core.training.embedder_data import split_pairs
    from core.training.process import TrainProcess
    from core.training.runs import RunStore
    from core.training.spec import TrainSpec
    from core.workspace import Workspace

    items = load_qa(args.qa or default_qa())
    with tempfile.TemporaryDirectory(prefix="cotrag-bench-") as tmp:
        ws = Workspace(args.data_dir or tmp)
        names = {i.name for i in ws.store.list()}
        kb = ws.store.get(args.kb) if args.kb in names else ws.store.create(args.kb)
        if kb.active_version.number != 1:
            reembed.switch_to(kb, 1)  # measure from the bundled embedder
        t0 = time.perf_counter()
        for _ in Indexer(kb, None, ws.config.chunking).run([corpus]):
            pass
        print(f"corpus: {corpus} ({kb.count()} chunks; index {time.perf_counter() - t0:.0f} s)")

        dataset_name = args.dataset or f"{args.kb}-retriever-{args.count}"
        t0 = time.perf_counter()
        spec = GenerateSpec(kb=args.kb, count=args.count, validation_share=0.2, seed=0)
        gen, dataset, _ = generator(ws, dataset_name, spec, None)
        if not args.dataset:
            for _ in gen.run():
                pass
        examples = dataset.examples()
        print(
            f"dataset: {dataset_name}, {len(examples)} examples "
            f"({time.perf_counter() - t0:.0f} s to make or read)"
        )
        train_spec = TrainSpec(dataset=dataset_name).with_preset("embedder")
        train_spec.kb = args.kb
        train_spec.epochs = args.epochs
        train_spec.batch_size = args.batch_size
        train_spec.learning_rate = args.learning_rate
        train_spec.negatives = args.negatives
        train_spec.eval_every = 0
        train_spec.checkpoint_every = 0
        train, validation, skipped = split_pairs(examples, kb, train_spec)
        print(
            f"pairs: {len(train)} train, {len(validation)} held-out (documents the tuning "
            f"never sees); left out: {skipped}; QA file: {len(items)} questions"
        )

        before = measure(kb, validation, items)

        store = RunStore(ws.layout)
        run = store.create(store.unique_name(f"{dataset_name}-embedder"), train_spec)
        t0 = time.perf_counter()
        proc = TrainProcess(run, ws.layout)
        proc.start()
        outcome = proc.wait()
        tune_s = time.perf_counter() - t0
        if outcome.state != "done":
            raise SystemExit(f"tuning failed: {outcome.sentence(run.log_file)}")
        worker_metrics = outcome.final.get("metrics", {})
        t0 = time.perf_counter()
        result = reembed.reembed(kb, run.name)
        reembed_s = time.perf_counter() - t0

        after = measure(kb, validation, items)
        if not args.keep:
            reembed.switch_to(kb, 1)

        rows = [
            ["questions", "method"] + [f"R@{k} base" for k in KS] + [f"R@{k} tuned" for k in KS]
        ]
        for key in before:
            where, method = key.rsplit(" ", 1)
            rows.append(
                [where, method]
                + [f"{before[key][k]:.3f}" for k in KS]
                + [f"{after[key][k]:.3f}" for k in KS]
            )
        print(table(rows))
        print(
            f"tune: {tune_s:.0f} s ({worker_metrics.get('steps')} steps, {len(train)} questions, "
            f"{args.epochs:g} epochs); re-embed: {reembed_s:.0f} s for {result.embedded} chunks "
            f"({result.embedded / reembed_s:.1f} chunks/s, embedder {result.version.embedder}, "
            f"backend {kb.store.embedder_for(result.version.embedder).backend})"
        )
        print(
            "worker's own validation (held-out questions among "
            f"{worker_metrics.get('passages')} passages): "
            + json.dumps(
                {
                    "before": worker_metrics.get("recall_before"),
                    "after": worker_metrics.get("recall_after"),
                }
            )
        )
        ws.close()


if __name__ == "__main__":
    main()
