"""llama.cpp thread count: prompt evaluation and generation speed for 1..N threads.

    python bench/threads.py [--model GGUF] [--repeats 3]

The loop spends most of its time evaluating the passages it injects, so both figures
matter. Each setting loads the model afresh, evaluates a ~500-token prompt with nothing
cached, then generates 64 tokens (greedy); the median of the repeats is printed, next to
what ``generation.n_threads = 0`` picks on this machine (``default_threads()``).
Run it on an idle machine: that is what a user's machine sees.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import table

PASSAGE = (
    "[{n}] guide.md#{n} (Install > Options): The install command reads the package file, "
    "resolves every dependency to a version that satisfies its range, downloads the archives "
    "into the cache and links them into the project folder; options change each step."
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", default=None, help="GGUF (default: the bundled model)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from core.config import GenerationConfig
    from core.hardware import default_threads
    from core.llm.base import Sampling, StreamRequest
    from core.llm.engines import default_model_path
    from core.llm.llamacpp import LlamaCppBackend

    model = Path(args.model) if args.model else default_model_path()
    prompt_text = "\n".join(PASSAGE.format(n=n) for n in range(1, 9))
    rows = [["threads", "prompt tok/s", "generation tok/s", "prompt tokens"]]
    cpus = os.cpu_count() or 1
    for threads in range(1, cpus + 1):
        prompt_rates, gen_rates, tokens = [], [], 0
        for repeat in range(args.repeats):
            backend = LlamaCppBackend(model, GenerationConfig(n_threads=threads))
            backend.load()
            prompt = backend.chat_prompt(
                [{"role": "user", "content": f"{prompt_text}\nRun {repeat}: summarise."}]
            )
            session = backend.session(prompt, reuse_cache=False)
            request = StreamRequest(max_tokens=64, sampling=Sampling(temperature=0.0))
            for chunk in session.stream(request):
                if chunk.stats is not None:
                    stats = chunk.stats
            tokens = stats.prompt_tokens
            prompt_rates.append(stats.prompt_tokens / max(stats.prompt_seconds, 1e-9))
            gen_rates.append(stats.completion_tokens / max(stats.generation_seconds, 1e-9))
            backend.close()
        rows.append(
            [
                str(threads),
                f"{statistics.median(prompt_rates):.0f}",
                f"{statistics.median(gen_rates):.0f}",
                str(tokens),
            ]
        )
        print(f"  {threads} thread(s) done", flush=True)
    print(table(rows))
    print(
        f"\ngeneration.n_threads = 0 picks {default_threads()} thread(s) on this machine "
        f"({cpus} logical CPUs)"
    )


if __name__ == "__main__":
    main()
