"""The seeded first round against rag and the model-first loop, paired per question.

    python bench/loop_modes.py [--corpus DIR] [--qa FILE.jsonl] [--limit N] [--model GGUF]
                               [--penalties PRESENCE,FREQUENCY,NGRAM]

On the same knowledge base and the same questions, in one run:
- rag: one search with the question, then the answer stage;
- loop, first_query=model: the model writes every query (the loop as it was);
- loop, first_query=question: the app searches with the question first, then the model
  thinks, may search again with its own queries, vets and answers (IRCoT-style).
Prints accuracy, recall@k (any passage shown contains an expected answer), mean
rounds, protocol-error rate and seconds per question, then the paired comparison
(questions where the seeded loop wins, ties and loses against rag).

With ``--penalties`` every mode also runs with those generation penalties (presence,
frequency, no-repeat n-gram size; e.g. 0.5,0.3,4) on the same questions, and each is
compared, paired, with the same mode without them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import default_corpus, default_qa, table

MODES = (
    ("rag", "rag", "model"),
    ("loop, first_query=model", "loop", "model"),
    ("loop, first_query=question", "loop", "question"),
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--qa", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=0, help="first N questions (0 = all)")
    parser.add_argument("--model", default=None, help="GGUF (default: the bundled model)")
    parser.add_argument("--out", type=Path, default=None, help="per-question JSON report")
    parser.add_argument(
        "--modes", default="rag,model,question", help="which of rag, model, question to run"
    )
    parser.add_argument(
        "--penalties", default="", help="PRESENCE,FREQUENCY,NGRAM: also run every mode with them"
    )
    args = parser.parse_args()
    wanted = {"rag": MODES[0], "model": MODES[1], "question": MODES[2]}
    modes = [wanted[m.strip()] for m in args.modes.split(",") if m.strip()]
    corpus = args.corpus or default_corpus()

    from core.agent.loop import Agent
    from core.compare.evaluation import evaluate_item, load_qa
    from core.hardware import default_threads
    from core.knowledge.indexer import Indexer
    from core.workspace import Workspace

    items = load_qa(args.qa or default_qa())
    if args.limit:
        items = items[: args.limit]
    with tempfile.TemporaryDirectory(prefix="cotrag-bench-") as tmp:
        ws = Workspace(tmp)
        kb = ws.store.create("bench")
        for _ in Indexer(kb, ws.embedder, ws.config.chunking).run([corpus]):
            pass
        ws.config.generation.temperature = 0.0  # greedy: the modes differ only by design
        print(
            f"corpus {corpus} ({kb.count()} chunks), {len(items)} questions, "
            f"k={ws.config.retrieval.k}, method={ws.config.retrieval.method}, "
            f"llama.cpp threads={ws.config.generation.n_threads or default_threads()}",
            flush=True,
        )
        base = ws.agent("bench", model=args.model)
        configs = {"": ws.config}
        if args.penalties:
            import copy

            presence, frequency, ngram = (x.strip() for x in args.penalties.split(","))
            penalised = copy.deepcopy(ws.config)
            penalised.generation.presence_penalty = float(presence)
            penalised.generation.frequency_penalty = float(frequency)
            penalised.generation.no_repeat_ngram = int(ngram)
            configs[f" +penalties {args.penalties}"] = penalised
        modes = [
            (label + suffix, mode, first) for label, mode, first in modes for suffix in configs
        ]
        agents = {
            label + suffix: Agent(
                base.backend,
                base.retriever,
                config,
                grammar=base.grammar,
                first_query=first,  # type: ignore[arg-type]
                model_id=base.model_id,
            )
            for label, _, first in modes[:: len(configs)]
            for suffix, config in configs.items()
        }
        modes = [(label, mode, first) for label, mode, first in modes]
        results: dict[str, list] = {label: [] for label, _, _ in modes}
        started = time.perf_counter()
        for n, item in enumerate(items, 1):
            for label, mode, _ in modes:
                results[label].append(evaluate_item(agents[label], item, mode))
            marks = " ".join(
                f"{'A' if r[-1].correct else '-'}{'R' if r[-1].retrieval_hit else '-'}"
                for r in results.values()
            )
            print(f"  {n:3d}/{len(items)} {marks}  {item.question[:60]}", flush=True)
        elapsed = time.perf_counter() - started

    rows = [["mode", "accuracy", "recall@k", "mean rounds", "protocol err", "s/question"]]
    for label, _, _ in modes:
        got = results[label]
        rows.append(
            [
                label,
                f"{sum(r.correct for r in got) / len(got):.3f}",
                f"{sum(bool(r.retrieval_hit) for r in got) / len(got):.3f}",
                f"{sum(r.rounds for r in got) / len(got):.2f}",
                f"{sum(bool(r.protocol_errors) for r in got) / len(got):.3f}",
                f"{sum(r.seconds for r in got) / len(got):.1f}",
            ]
        )
    print()
    print(table(rows))
    if len(configs) > 1:
        suffix = next(s for s in configs if s)
        print("\npaired, with penalties vs without (per question):")
        for label in [m[0] for m in modes if not m[0].endswith(suffix)]:
            plain, penal = results[label], results[label + suffix]
            better = sum(p.correct and not q.correct for p, q in zip(penal, plain, strict=True))
            worse = sum(q.correct and not p.correct for p, q in zip(penal, plain, strict=True))
            print(f"  {label}: accuracy better on {better}, worse on {worse}")
    if MODES[0][0] not in results or MODES[2][0] not in results:
        print(f"\n{elapsed:.0f} s in all")
        return
    rag, seeded = results[MODES[0][0]], results[MODES[2][0]]
    print("\npaired, seeded loop vs rag (per question):")
    for name, key in (("accuracy", "correct"), ("recall", "retrieval_hit")):
        wins = sum(
            bool(getattr(s, key)) and not getattr(r, key) for s, r in zip(seeded, rag, strict=False)
        )
        losses = sum(
            not getattr(s, key) and bool(getattr(r, key)) for s, r in zip(seeded, rag, strict=False)
        )
        print(
            f"  {name}: seeded better on {wins}, worse on {losses}, same on "
            f"{len(rag) - wins - losses}"
        )
    kinds: dict[str, int] = {}
    for r in seeded:
        for kind in r.protocol_errors:
            kinds[kind] = kinds.get(kind, 0) + 1
    print(f"  seeded loop protocol errors by kind: {kinds or 'none'}")
    print(f"\n{elapsed:.0f} s in all")
    if args.out:
        args.out.write_text(
            json.dumps(
                {label: [r.__dict__ for r in got] for label, got in results.items()}, indent=1
            ),
            "utf-8",
        )


if __name__ == "__main__":
    main()
