"""KV-cache reuse in the tag loop: evaluated prompt tokens and wall time, with and without it.

    python bench/loop_kv.py [--corpus DIR] [--qa FILE.jsonl] [--questions 4]

For the same questions, the loop runs with exactly 1, 3 and 6 search rounds twice:
once as the product runs it (the prompt stays in llama.cpp's KV cache; injecting
<query_res> evaluates only the new tokens) and once re-feeding the whole text every
round (how such loops are usually written: a fresh completion call per round). Both use
greedy decoding and the grammar, so both write the same tokens.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import default_corpus, default_qa, table

ROUNDS = (1, 3, 6)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--qa", type=Path, default=None)
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--model", default=None, help="GGUF (default: the bundled model)")
    args = parser.parse_args()
    corpus = args.corpus or default_corpus()

    from core.agent.events import Finished
    from core.agent.loop import Agent
    from core.compare.evaluation import load_qa
    from core.knowledge.indexer import Indexer
    from core.workspace import Workspace

    questions = [q.question for q in load_qa(args.qa or default_qa())][: args.questions]
    with tempfile.TemporaryDirectory(prefix="cotrag-bench-") as tmp:
        ws = Workspace(tmp)
        kb = ws.store.create("bench")
        for _ in Indexer(kb, ws.embedder, ws.config.chunking).run([corpus]):
            pass
        retriever = ws.retriever("bench")
        backend = ws.backend(args.model)
        ws.config.generation.temperature = 0.0
        ws.config.loop.max_block_tokens = 96
        ws.config.loop.max_total_tokens = 4096
        rows = [
            [
                "rounds",
                "mode",
                "prompt tok evaluated",
                "per round",
                "reused",
                "wall s",
                "eval ratio",
                "per-round ratio",
                "time ratio",
            ]
        ]
        for rounds in ROUNDS:
            ws.config.loop.max_rounds = rounds
            ws.config.loop.min_rounds = rounds
            measured: dict[bool, tuple[int, int, float, int]] = {}
            for reuse in (True, False):
                agent = Agent(backend, retriever, ws.config, grammar=True, reuse_cache=reuse)
                evaluated = reused = done_rounds = 0
                start = time.perf_counter()
                for question in questions:
                    for event in agent.run(question, mode="loop", retriever_only=True):
                        if isinstance(event, Finished):
                            evaluated += event.stats.prompt_tokens
                            reused += event.stats.cached_tokens
                            done_rounds += event.stats.rounds
                measured[reuse] = (evaluated, reused, time.perf_counter() - start, done_rounds)
            kv, full = measured[True], measured[False]
            kv_round = kv[0] / max(kv[3], 1)
            full_round = full[0] / max(full[3], 1)
            for reuse, (evaluated, reused, seconds, done) in ((True, kv), (False, full)):
                rows.append(
                    [
                        f"{rounds} (did {done / len(questions):.1f})",
                        "KV reuse" if reuse else "re-feed",
                        str(evaluated),
                        f"{evaluated / max(done, 1):.0f}",
                        str(reused),
                        f"{seconds:.2f}",
                        f"{full[0] / max(kv[0], 1):.2f}x" if reuse else "",
                        f"{full_round / max(kv_round, 1):.2f}x" if reuse else "",
                        f"{full[2] / kv[2]:.2f}x" if reuse else "",
                    ]
                )
        print(
            f"model: {ws.model_path(args.model).name}; {len(questions)} questions; corpus {corpus}"
        )
        print(table(rows))
        print("eval ratio: prompt tokens evaluated re-feeding / with KV reuse (higher is better).")
        print("per-round ratio: the same per search round. Batched and token-by-token evaluation")
        print("round floats differently, so greedy runs of the two modes can diverge after a")
        print("few rounds and do different numbers of rounds ('did').")


if __name__ == "__main__":
    main()
