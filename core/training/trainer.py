"""The training loop the worker runs: LoRA (or full) fine-tuning with masks, checkpoints,
Cancel and Resume.

One loop serves both engines. ``torch`` loads the base with transformers and wraps it
with peft; ``unsloth`` (CUDA, its own environment) loads it with unsloth's patched
kernels, optionally in 4 bits. What the loop adds over a stock Trainer on this
workload: the loss is computed only where a token is trained (the output layer runs
on those positions, not on the passages and the prompt), rows are batched by length
so padding stays small, threads are the physical cores, and mixed precision is used
where the hardware has it (bf16 on CUDA and on CPUs with AMX; fp32 elsewhere, where
bf16 is measured slower).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.hardware import physical_cores
from core.paths import DataLayout
from core.training.base_models import ensure_hf
from core.training.data import (
    Batch,
    Prepared,
    batches_per_epoch,
    collate,
    micro_batches,
    prepare,
    total_steps,
)
from core.training.distributed import Group
from core.training.events import Checkpoint, Emit, Eval, Log, Preparing, Started, Step
from core.training.masking import IGNORE, Encoded
from core.training.preflight import Checked, check_lengths
from core.training.runs import Run
from core.training.spec import TrainSpec, unsloth_problem
from core.training.tracking import open_tracker

log = logging.getLogger(__name__)

KEEP_CHECKPOINTS = 2
EVAL_ROWS = 32
"""Validation rows a mid-run evaluation scores (the same ones each time): enough for a
curve, without stopping a CPU run for minutes."""


class EngineMissing(RuntimeError):
    pass


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    engine: str
    device: str
    dtype: str
    threads: int
    trainable: int
    total_params: int


@dataclass
class Outcome:
    state: str
    """done, cancelled."""
    step: int
    total: int
    losses: list[float] = field(default_factory=list)
    eval_loss: float | None = None
    tokens: int = 0
    seconds: float = 0.0
    loaded: Loaded | None = None
    prepared: Prepared | None = None
    checkpoint: Path | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


# -- hardware --------------------------------------------------------------------------
def cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def pick_engine(spec: TrainSpec) -> str:
    import torch

    has_cuda = torch.cuda.is_available()
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if spec.engine == "unsloth":
        problem = unsloth_problem(has_cuda, has_unsloth)
        if problem:
            raise EngineMissing(problem)
        return "unsloth"
    if spec.engine == "auto" and has_cuda and has_unsloth:
        return "unsloth"
    return "torch"


def pick_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(spec: TrainSpec, device: str) -> str:
    if spec.dtype != "auto":
        return spec.dtype
    if device == "cuda":
        return "bf16"
    if device == "cpu" and cpu_has_amx():
        return "bf16"
    return "fp32"


# -- loading ---------------------------------------------------------------------------
def load_model(spec: TrainSpec, hf_dir: Path) -> Loaded:
    import torch

    engine = pick_engine(spec)
    device = "cuda" if engine == "unsloth" else pick_device()
    dtype = pick_dtype(spec, device)
    # Processes of one CPU run share the cores.
    threads = spec.threads or max(1, physical_cores() // Group.from_env().world)
    torch.set_num_threads(threads)
    torch.manual_seed(spec.seed)
    random.seed(spec.seed)
    if engine == "unsloth":
        model, tokenizer = _load_unsloth(spec, hf_dir)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
        # Weights stay fp32 on the CPU (bf16 compute goes through autocast); on a GPU
        # they are loaded in bf16.
        weights = torch.bfloat16 if device == "cuda" and dtype == "bf16" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=weights)
        model.to(device)  # type: ignore[arg-type]
        if spec.method == "lora":
            from peft import LoraConfig, get_peft_model

            names = _present_modules(model, spec.target_modules)
            if not names:
                raise ValueError(
                    f"target_modules {spec.target_modules} match no layer of this model: "
                    "name its linear layers (e.g. q_proj, v_proj)."
                )
            config = LoraConfig(
                r=spec.lora_r,
                lora_alpha=spec.lora_alpha,
                lora_dropout=spec.lora_dropout,
                target_modules=names,
                task_type="CAUSAL_LM",
                bias="none",
            )
            model = get_peft_model(model, config)
    if spec.gradient_checkpointing and engine == "torch":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return Loaded(model, tokenizer, engine, device, dtype, threads, trainable, total)


def _present_modules(model: Any, wanted: list[str]) -> list[str]:
    suffixes = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    return [w for w in wanted if w in suffixes]


def _load_unsloth(spec: TrainSpec, hf_dir: Path) -> tuple[Any, Any]:  # pragma: no cover - GPU
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(hf_dir),
        max_seq_length=spec.max_seq_len,
        load_in_4bit=spec.load_in_4bit,
        dtype=None,
    )
    if spec.method == "lora":
        model = FastLanguageModel.get_peft_model(
            model,
            r=spec.lora_r,
            lora_alpha=spec.lora_alpha,
            lora_dropout=spec.lora_dropout,
            target_modules=spec.target_modules,
            use_gradient_checkpointing="unsloth",
            random_state=spec.seed,
        )
    return model, tokenizer


# -- the loss --------------------------------------------------------------------------
def batch_loss(model: Any, batch: Batch, device: str) -> tuple[Any, int]:
    """Summed token loss of a batch and the number of trained tokens.

    The decoder runs on every position (attention needs them), the output layer only
    on positions whose next token is trained.
    """
    import torch

    ids = torch.tensor(batch.input_ids, device=device)
    mask = torch.tensor(batch.attention_mask, device=device)
    labels = torch.tensor(batch.labels, device=device)
    causal = _causal_lm(model)
    decoder = causal.get_decoder() if hasattr(causal, "get_decoder") else None
    head = causal.get_output_embeddings() if hasattr(causal, "get_output_embeddings") else None
    shift = labels[:, 1:]
    keep = shift != IGNORE
    n = int(keep.sum().item())
    if decoder is not None and head is not None:
        hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = head(hidden[:, :-1][keep])
        loss = torch.nn.functional.cross_entropy(logits.float(), shift[keep], reduction="sum")
        return loss, n
    out = model(input_ids=ids, attention_mask=mask)  # pragma: no cover - exotic models
    logits = out.logits[:, :-1][keep]
    return torch.nn.functional.cross_entropy(logits.float(), shift[keep], reduction="sum"), n


def _causal_lm(model: Any) -> Any:
    """The transformers CausalLM inside a peft wrapper (or the model itself)."""
    inner = model
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return inner


def autocast(device: str, dtype: str) -> Any:
    import torch

    if dtype != "bf16" or device == "mps":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


def evaluate_loss(loaded: Loaded, rows: list[Encoded], spec: TrainSpec) -> float | None:
    import torch

    if not rows:
        return None
    model = loaded.model
    model.eval()
    total, count = 0.0, 0
    pad = int(loaded.tokenizer.pad_token_id)
    order = sorted(range(min(len(rows), EVAL_ROWS)), key=lambda i: len(rows[i]))
    groups = [order[i : i + spec.batch_size] for i in range(0, len(order), spec.batch_size)]
    with torch.no_grad():
        for batch in forward_batches(rows, groups, pad, loaded.device):
            with autocast(loaded.device, loaded.dtype):
                loss, n = batch_loss(model, batch, loaded.device)
            total += float(loss.item())
            count += n
    model.train()
    return total / count if count else None


# -- schedule --------------------------------------------------------------------------
def lr_factor(spec: TrainSpec, step: int, total: int) -> float:
    if spec.warmup_steps and step < spec.warmup_steps:
        return (step + 1) / spec.warmup_steps
    if spec.schedule == "constant":
        return 1.0
    span = max(1, total - spec.warmup_steps)
    progress = min(1.0, (step - spec.warmup_steps) / span)
    if spec.schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# -- checkpoints -----------------------------------------------------------------------
def trainable_state(model: Any) -> dict[str, Any]:
    return {
        name: p.detach().to("cpu").clone()
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def write_checkpoint(run: Run, step: int, state: dict[str, Any]) -> Path:
    """``state`` as ``checkpoints/step-NNNNNN/trainer.pt``, written under a temp name, synced
    and renamed: a kill never leaves a half checkpoint. Keeps the last KEEP_CHECKPOINTS."""
    import torch

    run.checkpoints.mkdir(parents=True, exist_ok=True)
    final = run.checkpoints / f"step-{step:06d}"
    tmp = run.checkpoints / f".step-{step:06d}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(state, tmp / "trainer.pt")
    with open(tmp / "trainer.pt", "rb") as f:
        os.fsync(f.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    done = sorted(p for p in run.checkpoints.iterdir() if p.name.startswith("step-"))
    for old in done[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_checkpoint(
    run: Run, loaded: Loaded, optimizer: Any, step: int, micro: int, extra: dict[str, Any]
) -> Path:
    import torch

    return write_checkpoint(
        run,
        step,
        {
            "trainable": trainable_state(loaded.model),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "micro": micro,
            "rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            **extra,
        },
    )


def load_checkpoint(path: Path, loaded: Loaded, optimizer: Any) -> dict[str, Any]:
    import torch

    state = torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)
    params = dict(loaded.model.named_parameters())
    missing = [name for name in state["trainable"] if name not in params]
    if missing:
        raise ValueError(
            f"The checkpoint {path.name} does not match this model ({len(missing)} weights "
            "unknown): was the spec's base or method changed? Start a new run."
        )
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value.to(params[name].device))
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    random.setstate(state["python_rng"])
    return state


def forward_batches(
    rows: list[Encoded], micro: list[list[int]], pad: int, device: str
) -> list[Batch]:
    """The forward passes of one optimizer step.

    On the CPU every row is its own forward pass: no padding at all, and without an
    attention mask PyTorch's fused causal attention keeps memory linear in the length
    (four padded rows of 1,700 tokens need over 14 GB; one at a time, 7 GB) and it is
    faster too (measured: 251 vs 224 tokens/s at 700 tokens). On a GPU rows are
    batched as the spec says (padded to the longest of the batch).
    """
    if device == "cpu":
        return [collate([rows[i]], pad) for indices in micro for i in indices]
    return [collate([rows[i] for i in indices], pad) for indices in micro]


# -- the loop --------------------------------------------------------------------------
@dataclass
class Job:
    run: Run
    spec: TrainSpec
    layout: DataLayout
    checked: Checked
    """The preflight's result: the dataset, its rows and the base model."""
    emit: Emit
    should_stop: Callable[[], bool]
    resume: bool = False
    group: Group | None = None
    """A :class:`core.training.distributed.Group` (None: one process)."""


def train(job: Job) -> Outcome:
    import torch

    spec, emit = job.spec, job.emit
    group = job.group or Group()
    if not job.checked.base.ready:
        emit(
            Preparing(
                stage="base",
                message=f"Converting {job.checked.base.name} to training weights (once for this model)…",
            )
        )
    hf_dir = ensure_hf(job.checked.base)
    emit(Preparing(stage="model", message="Loading the model…"))
    loaded = load_model(spec, hf_dir)
    group.start(loaded.device)
    emit(Preparing(stage="tokenizing", message="Tokenizing the dataset…"))
    prepared = prepare(job.checked.rows, loaded.tokenizer, spec)
    check_lengths(spec, prepared)
    rows = prepared.train
    total = total_steps(len(rows), spec)
    model = loaded.model
    trainable = [p for p in model.parameters() if p.requires_grad]
    group.broadcast(trainable)
    optimizer = torch.optim.AdamW(trainable, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    step, micro = 0, 0
    checkpoint = job.run.latest_checkpoint() if job.resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, loaded, optimizer)
        step, micro = int(state["step"]), int(state["micro"])
    emit(
        Started(
            engine=loaded.engine,
            device=loaded.device,
            dtype=loaded.dtype,
            threads=loaded.threads,
            base=job.checked.base.name,
            rows_train=len(rows),
            rows_validation=len(prepared.validation),
            dropped_too_long=prepared.too_long,
            tokens_train=prepared.train_tokens,
            trained_tokens=sum(r.trained_tokens for r in rows),
            total=total,
            start_step=step,
            processes=group.world,
            trainable_params=loaded.trainable,
            total_params=loaded.total_params,
            resumed_from=str(checkpoint or ""),
        )
    )
    tracker = open_tracker(spec, job.run, job.layout, lambda text: emit(Log(message=text)))
    model.train()
    pad = int(loaded.tokenizer.pad_token_id)
    per_epoch = max(1, batches_per_epoch(len(rows), spec))
    outcome = Outcome("done", step, total, loaded=loaded, prepared=prepared)
    stream = micro_batches(rows, spec, start_micro=micro)
    started = time.perf_counter()
    step_times: list[float] = []
    last_saved = step if checkpoint is not None else -1
    if group.main and spec.eval_every and step == 0:
        # Where the curve starts: the base model's validation loss.
        eval_loss = evaluate_loss(loaded, prepared.validation, spec)
        if eval_loss is not None:
            emit(Eval(step=0, loss=round(eval_loss, 5)))
            tracker.log({"eval/loss": eval_loss}, 0)
    while step < total:
        if group.agree(job.should_stop()):
            outcome.state = "cancelled"
            break
        t0 = time.perf_counter()
        group_rows = [next(stream) for _ in range(spec.grad_accum)]
        micro = group_rows[-1][0] + 1
        flat = [i for _, idx in group_rows for i in idx]
        mine = group.share(flat)
        if loaded.device == "cpu":
            batches = forward_batches(rows, [mine], pad, loaded.device)
        else:
            size = spec.batch_size
            batches = forward_batches(
                rows, [mine[j : j + size] for j in range(0, len(mine), size)], pad, loaded.device
            )
        # Every process divides by the whole step's trained tokens (the loss shifts by one:
        # a row's first label is never predicted).
        n_trained = sum(rows[i].trained_tokens - (rows[i].labels[0] != IGNORE) for i in flat)
        for g in optimizer.param_groups:
            g["lr"] = spec.learning_rate * lr_factor(spec, step, total)
        loss_sum = 0.0
        for batch in batches:
            with autocast(loaded.device, loaded.dtype):
                loss, _ = batch_loss(model, batch, loaded.device)
            (loss / max(1, n_trained)).backward()
            loss_sum += float(loss.item())
        group.sum_gradients(trainable)
        if spec.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(trainable, spec.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        dt = time.perf_counter() - t0
        step_times.append(dt)
        loss_sum, tokens_f = group.sum([loss_sum, float(sum(b.tokens for b in batches))])
        tokens = int(tokens_f)
        outcome.tokens += tokens
        mean_loss = loss_sum / max(1, n_trained)
        outcome.losses.append(mean_loss)
        recent = step_times[-10:]
        eta = (total - step) * (sum(recent) / len(recent))
        emit(
            Step(
                step=step,
                total=total,
                loss=round(mean_loss, 5),
                lr=optimizer.param_groups[0]["lr"],
                tokens=tokens,
                tokens_per_s=round(tokens / dt, 1) if dt else 0.0,
                eta_s=round(eta, 1),
                epoch=round(micro / per_epoch, 3),
                seconds=round(dt, 3),
            )
        )
        tracker.log({"train/loss": mean_loss, "train/lr": optimizer.param_groups[0]["lr"]}, step)
        if group.main and spec.eval_every and step % spec.eval_every == 0 and step < total:
            eval_loss = evaluate_loss(loaded, prepared.validation, spec)
            if eval_loss is not None:
                outcome.eval_loss = eval_loss
                emit(Eval(step=step, loss=round(eval_loss, 5)))
                tracker.log({"eval/loss": eval_loss}, step)
        if (
            group.main
            and spec.checkpoint_every
            and step % spec.checkpoint_every == 0
            and step < total
        ):
            path = save_checkpoint(
                job.run, loaded, optimizer, step, micro, {"spec": spec.to_dict()}
            )
            last_saved = step
            emit(Checkpoint(step=step, path=str(path)))
    outcome.seconds = time.perf_counter() - started
    outcome.step = step
    if group.main and step != last_saved and step > 0:
        path = save_checkpoint(job.run, loaded, optimizer, step, micro, {"spec": spec.to_dict()})
        emit(Checkpoint(step=step, path=str(path)))
    outcome.checkpoint = job.run.latest_checkpoint()
    group.close()
    if outcome.state == "done" and group.main:
        eval_loss = evaluate_loss(loaded, prepared.validation, spec)
        if eval_loss is not None:
            outcome.eval_loss = eval_loss
            emit(Eval(step=step, loss=round(eval_loss, 5)))
            tracker.log({"eval/loss": eval_loss}, step)
    tracker.close()
    return outcome
