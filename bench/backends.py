"""Generator backends side by side on the same model: llama.cpp, transformers, mlx-lm.

    python bench/backends.py [--hf DIR] [--mlx DIR] [--threads 1] [--repeats 3]

The bundled SmolLM2-135M runs as its GGUF in llama.cpp and as the Hugging Face folder
dequantized from it (``--hf``; default: the one training uses, written on first use)
in transformers, and in mlx-lm when ``--mlx`` names an MLX conversion of that folder.
For each: a ~500-token prompt evaluated with nothing cached, 64 generated tokens
(greedy), and a resumed stream after appending a ~60-token passage (what the tag
loop does after each search; only the passage is evaluated). The baseline row is
transformers' own ``model.generate`` on the same prompt: our token loop should not
be slower than the library's. Medians of the repeats; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import table

PASSAGE = (
    "[{n}] guide.md#{n} (Install > Options): The install command reads the package file, "
    "resolves every dependency to a version that satisfies its range, downloads the archives "
    "into the cache and links them into the project folder; options change each step."
)
GENERATE = 64


def measure(backend: Any, prompt: str, repeats: int) -> tuple[float, float, float, int]:
    """Median prompt tok/s, generation tok/s, resume seconds; prompt tokens."""
    from core.llm.base import Sampling, StreamRequest

    greedy = Sampling(temperature=0.0, top_p=1.0, repeat_penalty=1.0, seed=1)
    prompt_rates, gen_rates, resumes, tokens = [], [], [], 0
    for _ in range(repeats):
        session = backend.session(prompt, reuse_cache=False)
        *_, final = session.stream(StreamRequest(max_tokens=GENERATE, sampling=greedy))
        stats = final.stats
        tokens = stats.prompt_tokens
        prompt_rates.append(stats.prompt_tokens / stats.prompt_seconds)
        gen_rates.append(stats.tokens_per_s)
        # The same sequence with the cache kept: append a passage and resume.
        session = backend.session(prompt)
        list(session.stream(StreamRequest(max_tokens=8, sampling=greedy)))
        session.append("\n<query_res>\n" + PASSAGE.format(n=9) + "\n</query_res>\n")
        started = time.perf_counter()
        *_, final = session.stream(StreamRequest(max_tokens=1, sampling=greedy))
        resumes.append(time.perf_counter() - started)
    return (
        statistics.median(prompt_rates),
        statistics.median(gen_rates),
        statistics.median(resumes),
        tokens,
    )


def library_generate(folder: Path, prompt: str, threads: int, repeats: int) -> float:
    """transformers' own loop, greedy: generation tok/s after the prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    rates = []
    with torch.inference_mode():
        for _ in range(repeats):
            started = time.perf_counter()
            model.generate(ids, max_new_tokens=1, do_sample=False)
            prefill = time.perf_counter() - started
            started = time.perf_counter()
            out = model.generate(
                ids, max_new_tokens=GENERATE, min_new_tokens=GENERATE, do_sample=False
            )
            elapsed = time.perf_counter() - started - prefill
            rates.append((out.shape[1] - ids.shape[1] - 1) / elapsed)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--hf", default=None, help="HF folder (default: dequantized bundled)")
    parser.add_argument("--mlx", default=None, help="MLX folder of the same model (optional)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from core.config import GenerationConfig
    from core.errors import BackendNotInstalled
    from core.llm.engines import create_backend, default_model_path

    if args.hf:
        hf = Path(args.hf)
    else:
        from core.paths import DataLayout
        from core.training.base_models import ensure_hf, resolve_base

        hf = ensure_hf(resolve_base("default", DataLayout.at()))
    config = GenerationConfig(n_ctx=2048, n_threads=args.threads)
    models: list[tuple[str, str | Path]] = [
        ("llama.cpp", default_model_path()),
        ("transformers", hf),
    ]
    if args.mlx:
        models.append(("mlx", f"mlx:{args.mlx}"))
    rows = [["engine", "prompt tok/s", "generation tok/s", "resume s", "prompt tokens"]]
    text = ""
    for name, ref in models:
        try:
            backend = create_backend(ref, config)
            backend.load()
        except BackendNotInstalled as exc:
            rows.append([name, str(exc), "", "", ""])
            continue
        text = text or backend.chat_prompt(
            [{"role": "user", "content": "\n".join(PASSAGE.format(n=n) for n in range(1, 9))}]
        )
        prompt_rate, gen_rate, resume, tokens = measure(backend, text, args.repeats)
        rows.append([name, f"{prompt_rate:.0f}", f"{gen_rate:.1f}", f"{resume:.3f}", str(tokens)])
        backend.close()
    baseline = library_generate(hf, text, args.threads, args.repeats)
    rows.append(["transformers generate()", "", f"{baseline:.1f}", "", ""])
    print(f"threads={args.threads}, {GENERATE} generated tokens, median of {args.repeats}")
    print(table(rows))


if __name__ == "__main__":
    main()
