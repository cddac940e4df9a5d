"""Rejection sampling: keep rate, and seconds per question with the shared prefix reused in
the KV cache and without.

    python bench/sampling.py [--corpus DIR] [--questions 10] [--samples 3]
                             [--temperature 0.7] [--model GGUF] [--threads N]

Verified template questions are generated from the corpus (default: the npm CLI's docs),
then each is sampled twice with the same seeds: once as the product does it (every search
turn first, so each finds the prompt and the seeded first ``<query_res>`` in the cache,
then the answer stages), once answering right after each search (the answer prompt pushes
the prefix out of the single-sequence cache). A run whose search turn cannot be kept gets
no answer stage in either mode, so the second mode still finds the prefix after such a
run: its saving is what the reuse adds to the product's own order, and it grows with the
share of runs that reach the answer stage. The two alternate question by question, so a
change in the machine's load falls on both. Nothing is written to a dataset.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import default_corpus, table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--model", default="", help="GGUF or model name (default: bundled)")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: auto)")
    args = parser.parse_args()
    corpus = args.corpus or default_corpus()

    from core.dataset.sampling import SAMPLED, SampleSettings
    from core.dataset.service import generator, sampler_for
    from core.dataset.spec import GenerateSpec
    from core.knowledge.indexer import Indexer
    from core.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="cotrag-bench-") as tmp:
        ws = Workspace(tmp)
        ws.config.generation.n_threads = args.threads
        kb = ws.store.create("bench")
        started = time.perf_counter()
        for _ in Indexer(kb, ws.embedder, ws.config.chunking).run([corpus]):
            pass
        indexed = time.perf_counter() - started
        spec = GenerateSpec(kb="bench", count=args.questions, unanswerable_share=0.0)
        gen, dataset, _ = generator(ws, "bench", spec, None)
        list(gen.run())
        examples = dataset.examples()[: args.questions]
        settings = SampleSettings(args.samples, args.temperature, args.model)
        samplers = {
            reuse: sampler_for(ws, "bench", settings, reuse_prefix=reuse) for reuse in (True, False)
        }
        ws.backend(args.model or None).load()
        seconds: dict[bool, list[float]] = {True: [], False: []}
        evaluated: dict[bool, int] = {True: 0, False: 0}
        outcomes: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
        runs_kept: dict[bool, int] = {True: 0, False: 0}
        why: Counter[str] = Counter()
        reused = 0
        for n, example in enumerate(examples, 1):
            order = (False, True) if n % 2 else (True, False)
            for reuse in order:
                verdict = samplers[reuse].decide(example)
                seconds[reuse].append(verdict.seconds)
                evaluated[reuse] += verdict.prompt_tokens
                outcomes[reuse][verdict.outcome] += 1
                runs_kept[reuse] += sum(not t.why for t in verdict.tried)
                if reuse:
                    reused += verdict.prefix_tokens_reused
                    why.update(t.why or "kept" for t in verdict.tried)
            print(
                f"{n}/{len(examples)}: reuse {seconds[True][-1]:.1f} s, "
                f"no reuse {seconds[False][-1]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        rows = [
            [
                "mode",
                "s / question (mean)",
                "median",
                "prompt tok evaluated",
                "questions kept",
                "runs kept",
            ]
        ]
        for reuse in (True, False):
            kept = outcomes[reuse][SAMPLED]
            rows.append(
                [
                    "prefix reused" if reuse else "no reuse",
                    f"{statistics.mean(seconds[reuse]):.1f}",
                    f"{statistics.median(seconds[reuse]):.1f}",
                    str(evaluated[reuse]),
                    f"{kept}/{len(examples)} ({kept / max(1, len(examples)):.0%})",
                    f"{runs_kept[reuse]}/{len(examples) * args.samples}",
                ]
            )
        model = ws.model_path(args.model or None).name
        print(
            f"model {model}; {len(examples)} questions x {args.samples} runs at temperature "
            f"{args.temperature}; corpus {corpus} (indexed in {indexed:.0f} s)"
        )
        print(table(rows))
        print(f"prefix tokens reused (meta['sampling']['prefix_tokens_reused']): {reused}")
        saved = evaluated[False] - evaluated[True]
        print(
            f"prompt tokens evaluated: {evaluated[True]} with reuse vs {evaluated[False]} "
            f"without ({saved} fewer, {saved / max(1, evaluated[False]):.0%}); time per "
            f"question {statistics.mean(seconds[True]):.1f} s vs "
            f"{statistics.mean(seconds[False]):.1f} s"
        )
        print(
            "why runs were not kept (reuse mode): "
            + ", ".join(f"{k} {v}" for k, v in why.most_common())
        )
        ws.close()


if __name__ == "__main__":
    main()
