"""Training speed: the worker against a plain transformers + peft loop, same rows, same steps.

    python bench/train.py [--data-dir DIR --dataset NAME] [--steps 20] [--batch 4]
                          [--max-seq-len 1024] [--corpus DIR]

Both train the bundled model with the same LoRA (r 16 on every linear layer), the same
rows in the same order and the same number of optimizer steps, in the same run:
- plain: batches padded to their longest row, the full forward with ``labels=`` (the
  output layer over every position), AdamW: what a first script or a stock Trainer does;
- worker: ``cotrag-train-worker`` as the app runs it (one row per forward pass on the
  CPU, no padding, the output layer only where a token is trained).
Prints training tokens/s of each (all tokens of the rows, padding not counted), the
ratio, and the peak memory of each process. Without --dataset a dataset is generated
from the corpus with template questions (no model needed).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import default_corpus, table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--dataset", default="")
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-seq-len", type=int, default=1024)
    args = parser.parse_args()

    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="cotrag-train-bench-")
        args.data_dir = Path(tmp.name)
    from core.training.spec import TrainSpec
    from core.workspace import Workspace

    ws = Workspace(args.data_dir)
    dataset = args.dataset or _make_dataset(ws, args)
    spec = TrainSpec(
        dataset=dataset,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        learning_rate=2e-4,
        max_steps=args.steps,
        batch_size=args.batch,
        warmup_steps=2,
        max_seq_len=args.max_seq_len,
        eval_every=0,
        checkpoint_every=0,
        exports=["lora"],
    )
    from core.hardware import physical_cores

    print(
        f"{args.steps} steps of {args.batch} rows, max_seq_len {args.max_seq_len}, "
        f"{physical_cores()} physical cores",
        flush=True,
    )
    worker = _worker(ws, spec)
    plain = _plain(ws, spec)
    rows = [
        ["", "tokens", "seconds", "tokens/s", "peak memory"],
        [
            "plain loop",
            str(plain["tokens"]),
            f"{plain['seconds']:.1f}",
            f"{plain['tokens_per_s']:.0f}",
            f"{plain['rss_gb']:.1f} GB",
        ],
        [
            "worker",
            str(worker["tokens"]),
            f"{worker['seconds']:.1f}",
            f"{worker['tokens_per_s']:.0f}",
            f"{worker['rss_gb']:.1f} GB",
        ],
    ]
    print(table(rows))
    print(f"worker / plain: {worker['tokens_per_s'] / plain['tokens_per_s']:.2f}x")
    ws.close()
    if tmp is not None:
        tmp.cleanup()


def _make_dataset(ws: Any, args: argparse.Namespace) -> str:
    from core.dataset.service import generator
    from core.dataset.spec import GenerateSpec
    from core.knowledge.indexer import Indexer

    kb = ws.store.create("bench")
    for _ in Indexer(kb, ws.embedder, ws.config.chunking).run([args.corpus or default_corpus()]):
        pass
    gen, _, _ = generator(ws, "bench", GenerateSpec(kb="bench", count=120), None)
    for _ in gen.run():
        pass
    ws.release(None)
    return "bench"


def _rows(ws: Any, spec: Any) -> tuple[list[Any], Any]:
    from core.training.base_models import ensure_hf, resolve_base
    from core.training.data import dataset_rows, prepare
    from core.training.preflight import check_job

    checked = check_job(ws.layout, spec, lengths=False)
    hf = ensure_hf(resolve_base(spec.base, ws.layout))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(hf))
    return prepare(dataset_rows(checked.dataset, spec), tokenizer, spec).train, hf


def _plain(ws: Any, spec: Any) -> dict[str, float]:
    """The loop a first script writes: padded batches, full logits, HF's own loss."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from core.training.data import collate, micro_batches

    rows, hf = _rows(ws, spec)
    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_pretrained(str(hf))
    model = get_peft_model(
        model,
        LoraConfig(
            r=spec.lora_r,
            lora_alpha=spec.lora_alpha,
            lora_dropout=0.0,
            target_modules=spec.target_modules,
            task_type="CAUSAL_LM",
        ),
    )
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=spec.learning_rate
    )
    stream = micro_batches(rows, spec)
    tokens, seconds = 0, 0.0
    for _ in range(spec.max_steps):
        _, idx = next(stream)
        batch = collate([rows[i] for i in idx], 0)
        t0 = time.perf_counter()
        out = model(
            input_ids=torch.tensor(batch.input_ids),
            attention_mask=torch.tensor(batch.attention_mask),
            labels=torch.tensor(batch.labels),
        )
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds += time.perf_counter() - t0
        tokens += batch.tokens
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "rss_gb": rss}


def _worker(ws: Any, spec: Any) -> dict[str, float]:
    from core.training.events import Done, Step
    from core.training.process import TrainProcess
    from core.training.runs import RunStore

    store = RunStore(ws.layout)
    run = store.create(store.unique_name("speed"), spec)
    proc = TrainProcess(run, ws.layout)
    proc.start()
    steps: list[Step] = []
    outcome = proc.wait(lambda e: steps.append(e) if isinstance(e, Step) else None)
    if outcome.state != "done":
        raise SystemExit(outcome.sentence(run.log_file))
    from core.models.installed import ModelRegistry

    assert isinstance(outcome.final, Done)
    ModelRegistry(ws.layout).delete(outcome.final.model)
    tokens = sum(e.tokens for e in steps)
    seconds = sum(e.seconds for e in steps)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "rss_gb": rss}


if __name__ == "__main__":
    main()
