"""Tune the retriever's sentence embedder on a dataset: the worker's second job kind.

The loss of sentence-transformers' MultipleNegativesRankingLoss over (question, gold chunk,
hard negatives): each question must score its own chunk above the other questions'
chunks in the batch and above the passages the search wrongly returned for it; a
candidate with the same text as one of the question's own gold chunks is masked. The
loop is ours (not ``SentenceTransformerTrainer``) so it speaks the worker's events,
stops between steps on Cancel, and checkpoints in the run folder like a generator
run: ``step``, ``eval`` (validation loss and recall@1/k/10 on held-out documents),
``checkpoint``, then ``done`` with the tuned embedder's name.

The result is a plain sentence-transformers folder under ``<data>/embedders/<run>``:
the fast runtimes (OpenVINO, ONNX) export it on first use exactly like the bundled
model, after checking their vectors against torch's.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.hardware import physical_cores
from core.knowledge import embedder_catalog
from core.knowledge.embedder_catalog import BUNDLED_LABEL, bundled_name
from core.knowledge.embedder_runtimes import (
    load_sentence_transformer as _load_sentence_transformer,
)
from core.training.embedder_data import Corpus, EmbedderChecked, Pair
from core.training.events import (
    Checkpoint,
    Emit,
    Eval,
    Exporting,
    Log,
    Preparing,
    Started,
    Step,
)
from core.training.trainer import lr_factor, write_checkpoint

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.paths import DataLayout
    from core.training.runs import Run
    from core.training.spec import TrainSpec

SCALE = 20.0
"""Cosine similarities are multiplied by this before the softmax (sentence-transformers'
default for this loss)."""
RECALL_KS = (1, 5, 10)


@dataclass
class EmbedderOutcome:
    state: str
    step: int
    total: int
    losses: list[float] = field(default_factory=list)
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    model: Any = None


def _threads(spec: TrainSpec) -> int:
    return spec.threads or physical_cores() or os.cpu_count() or 1


def recall_at(
    model: Any, pairs: list[Pair], corpus: Corpus, ks: tuple[int, ...]
) -> dict[str, float]:
    """Share of ``pairs`` whose gold chunk (or a twin of it) is in the top k of ``corpus``."""
    import torch

    if not pairs or not corpus.ids:
        return {}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        docs = model.encode(
            corpus.texts, batch_size=32, normalize_embeddings=True, convert_to_tensor=True
        )
        queries = model.encode(
            [p.question for p in pairs],
            batch_size=32,
            normalize_embeddings=True,
            convert_to_tensor=True,
        )
        scores = queries @ docs.T
        depth = min(max(ks), len(corpus.ids))
        top = torch.topk(scores, depth, dim=1).indices.tolist()
    if was_training:
        model.train()
    found = dict.fromkeys(ks, 0)
    for pair, ranked in zip(pairs, top, strict=True):
        rank = next(
            (
                r
                for r, i in enumerate(ranked)
                if corpus.ids[i] in pair.gold_ids or corpus.raw[i] in pair.gold_texts
            ),
            None,
        )
        for k in ks:
            if rank is not None and rank < k:
                found[k] += 1
    return {f"recall@{k}": round(found[k] / len(pairs), 4) for k in ks}


@dataclass
class Batch:
    questions: list[Pair]
    columns: list[list[str]]
    """[questions, positives, negatives 1..n]: every column as long as the batch."""
    plain: list[list[str]]
    """Normalised raw texts of the candidate columns (positives, negatives), to mask twins."""


def make_batch(
    pairs: list[Pair], n_neg: int, pool: list[tuple[str, str]], rng: random.Random
) -> Batch:
    """A question with fewer hard negatives than ``n_neg`` gets random passages from the other
    questions' gold chunks (a twin of its own answer is masked out of its loss anyway)."""
    columns: list[list[str]] = [[p.question for p in pairs], [p.positive for p in pairs]]
    plain: list[list[str]] = [[p.positive_text for p in pairs]]
    for j in range(n_neg):
        column, texts = [], []
        for p in pairs:
            if j < len(p.negatives):
                column.append(p.negatives[j])
                texts.append(p.negative_texts[j])
                continue
            for _ in range(20):
                text, raw = rng.choice(pool)
                if raw not in p.gold_texts:
                    break
            column.append(text)
            texts.append(raw)
        columns.append(column)
        plain.append(texts)
    return Batch(pairs, columns, plain)


def contrastive_loss(model: Any, batch: Batch, device: str) -> tuple[Any, int]:
    """The loss of sentence-transformers' MultipleNegativesRankingLoss (cross-entropy over
    scaled cosine similarities; each question's own positive is the target, every other
    candidate in the batch a negative), with one change: a candidate whose text is one of
    the question's gold texts (another question's copy of the same chunk; documentation
    repeats itself) is masked, not pushed away. Returns the loss and the batch's tokens."""
    import torch
    import torch.nn.functional as F

    tokens = 0
    embeddings = []
    tokenize = getattr(model, "preprocess", model.tokenize)
    for texts in batch.columns:
        feats = tokenize(texts)
        feats = {k: v.to(device) if hasattr(v, "to") else v for k, v in feats.items()}
        tokens += int(feats["attention_mask"].sum())
        embeddings.append(F.normalize(model(feats)["sentence_embedding"], dim=-1))
    queries, candidates = embeddings[0], torch.cat(embeddings[1:])
    scores = queries @ candidates.T * SCALE
    plain = [t for column in batch.plain for t in column]
    size = len(batch.questions)
    mask = torch.tensor(
        [
            [j != i and plain[j] in pair.gold_texts for j in range(len(plain))]
            for i, pair in enumerate(batch.questions)
        ],
        device=scores.device,
    )
    scores = scores.masked_fill(mask, float("-inf"))
    target = torch.arange(size, device=scores.device)
    return F.cross_entropy(scores, target), tokens


def validation_loss(model: Any, pairs: list[Pair], spec: TrainSpec, device: str) -> float | None:
    import torch

    if len(pairs) < 2:
        return None
    rng = random.Random(spec.seed)
    pool = [(p.positive, p.positive_text) for p in pairs]
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for lo in range(0, len(pairs), spec.batch_size):
            part = pairs[lo : lo + spec.batch_size]
            if len(part) < 2:
                continue
            loss, _ = contrastive_loss(model, make_batch(part, spec.negatives, pool, rng), device)
            total += float(loss) * len(part)
            count += len(part)
    if was_training:
        model.train()
    return total / count if count else None


def total_steps(rows: int, spec: TrainSpec) -> int:
    if spec.max_steps:
        return spec.max_steps
    return max(1, math.ceil(spec.epochs * math.ceil(rows / spec.batch_size)))


def _order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1000003 + epoch).shuffle(order)
    return order


def _save_checkpoint(run: Run, model: Any, optimizer: Any, step: int) -> Path:
    import torch

    return write_checkpoint(
        run,
        step,
        {
            "weights": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "step": step,
            "rng": torch.get_rng_state(),
            "kind": "embedder",
        },
    )


def _load_checkpoint(path: Path, model: Any, optimizer: Any) -> int:
    import torch

    state = torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)
    if state.get("kind") != "embedder":
        raise ValueError(
            f"The checkpoint {path.name} is not an embedder's: was the run's kind changed? "
            "Start a new run."
        )
    model.load_state_dict(state["weights"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return int(state["step"])


def train_embedder(
    run: Run,
    checked: EmbedderChecked,
    emit: Emit,
    should_stop: Callable[[], bool],
    *,
    resume: bool = False,
) -> EmbedderOutcome:
    import torch

    spec = checked.spec
    torch.set_num_threads(_threads(spec))
    torch.manual_seed(spec.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    label = BUNDLED_LABEL if checked.base_name == bundled_name() else checked.base_name
    emit(Preparing(stage="model", message=f"Loading the embedder {label}…"))
    model = _load_sentence_transformer(checked.base_path, device)
    model.max_seq_length = min(int(model.max_seq_length or 256), spec.max_seq_len)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    train_pairs = checked.train
    total = total_steps(len(train_pairs), spec)
    step = 0
    checkpoint = run.latest_checkpoint() if resume else None
    if checkpoint is not None:
        step = _load_checkpoint(checkpoint, model, optimizer)
    per_epoch = max(1, math.ceil(len(train_pairs) / spec.batch_size))
    pool = [(p.positive, p.positive_text) for p in train_pairs]
    emit(
        Started(
            kind="embedder",
            engine="sentence-transformers",
            device=device,
            dtype="fp32",
            threads=_threads(spec),
            base=label,
            rows_train=len(train_pairs),
            rows_validation=len(checked.validation),
            corpus=len(checked.corpus.ids),
            skipped=checked.skipped,
            total=total,
            start_step=step,
            processes=1,
            trainable_params=sum(p.numel() for p in params),
            total_params=sum(p.numel() for p in model.parameters()),
            resumed_from=str(checkpoint or ""),
        )
    )
    outcome = EmbedderOutcome("done", step, total, model=model)
    ks = tuple(sorted({*RECALL_KS, spec.recall_k}))

    def evaluate(at: int) -> dict[str, float]:
        emit(Log(message=f"Searching {len(checked.validation)} held-out questions…"))
        recall = recall_at(model, checked.validation, checked.corpus, ks)
        loss = validation_loss(model, checked.validation, spec, device)
        emit(
            Eval(
                step=at,
                loss=None if loss is None else round(loss, 5),
                recall=recall,
                passages=len(checked.corpus.ids),
            )
        )
        return recall

    outcome.before = (_first_recall(run) if resume else {}) or evaluate(step)
    model.train()
    started = time.perf_counter()
    step_times: list[float] = []
    last_saved = step if checkpoint is not None else -1
    rng = random.Random(spec.seed + step)
    while step < total:
        if should_stop():
            outcome.state = "cancelled"
            break
        t0 = time.perf_counter()
        epoch, within = divmod(step, per_epoch)
        order = _order(len(train_pairs), spec.seed, epoch)
        batch = [
            train_pairs[i] for i in order[within * spec.batch_size : (within + 1) * spec.batch_size]
        ]
        if len(batch) < 2:  # a last batch of one has no in-batch negatives: borrow another
            other = next(
                train_pairs[i]
                for i in _order(len(train_pairs), spec.seed, epoch + 1)
                if train_pairs[i] is not batch[0]
            )
            batch = [*batch, other]
        for g in optimizer.param_groups:
            g["lr"] = spec.learning_rate * lr_factor(spec, step, total)
        loss, tokens = contrastive_loss(model, make_batch(batch, spec.negatives, pool, rng), device)
        loss.backward()
        if spec.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        dt = time.perf_counter() - t0
        step_times.append(dt)
        value = float(loss.item())
        outcome.losses.append(value)
        recent = step_times[-10:]
        emit(
            Step(
                step=step,
                total=total,
                loss=round(value, 5),
                lr=optimizer.param_groups[0]["lr"],
                tokens=tokens,
                tokens_per_s=round(tokens / dt, 1) if dt else 0.0,
                eta_s=round((total - step) * sum(recent) / len(recent), 1),
                epoch=round(step / per_epoch, 3),
                seconds=round(dt, 3),
            )
        )
        if spec.eval_every and step % spec.eval_every == 0 and step < total:
            evaluate(step)
        if spec.checkpoint_every and step % spec.checkpoint_every == 0 and step < total:
            path = _save_checkpoint(run, model, optimizer, step)
            last_saved = step
            emit(Checkpoint(step=step, path=str(path)))
    outcome.seconds = time.perf_counter() - started
    outcome.step = step
    if step != last_saved and step > 0:
        path = _save_checkpoint(run, model, optimizer, step)
        emit(Checkpoint(step=step, path=str(path)))
    if outcome.state == "done":
        outcome.after = evaluate(step)
    return outcome


def _first_recall(run: Run) -> dict[str, float]:
    """The base's recall from an earlier start of this run (a resume does not redo it)."""
    for event in run.worker_events():
        if isinstance(event, Eval) and event.step == 0 and event.recall:
            return dict(event.recall)
    return {}


def finish_embedder(
    layout: DataLayout,
    run: Run,
    checked: EmbedderChecked,
    outcome: EmbedderOutcome,
    emit: Emit,
) -> tuple[str, Path, dict[str, Any]]:
    """Save the tuned embedder under the run's name and record where it came from."""
    emit(Exporting(what="embedder", index=1, total=1))
    staged = embedder_catalog.embedders_dir(layout) / f".{run.name}.part"
    shutil.rmtree(staged, ignore_errors=True)
    outcome.model.save(str(staged))
    k = checked.spec.recall_k
    metrics: dict[str, Any] = {
        "recall_before": outcome.before,
        "recall_after": outcome.after,
        f"recall@{k}": {
            "before": outcome.before.get(f"recall@{k}"),
            "after": outcome.after.get(f"recall@{k}"),
        },
        "validation_questions": len(checked.validation),
        "passages": len(checked.corpus.ids),
        "train_questions": len(checked.train),
        "seconds": round(outcome.seconds, 1),
        "steps": outcome.step,
    }
    info = {
        "kind": "embedder",
        "base": checked.base_name,
        "dataset": checked.dataset.name,
        "kb": checked.kb_name,
        "run": run.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": metrics,
        "spec": checked.spec.to_dict(),
    }
    try:
        path = embedder_catalog.install(layout, staged, run.name, info)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return run.name, path, metrics
