"""Training rows from a dataset: which rows, which split, encoded, in length-grouped batches.

The rows are the dataset's ``chat`` export (the search turn and the answer stage of
each example, with the spans the loss is on). The split is the dataset's own: a row is a
validation row exactly when its example's ``split`` is ``validation`` (the documents the
dataset held out, :mod:`core.dataset.draws`), so training, Compare and the dataset's report
count the same examples. A dataset without validation examples trains without a
validation loss rather than with a split of its own.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from core.agent.record import RunRecord
from core.dataset import export as exporting
from core.dataset.storage import Dataset
from core.training import raft
from core.training.masking import IGNORE, Encoded, encode
from core.training.spec import TrainSpec


@dataclass
class Row:
    id: str
    stage: str
    split: str
    messages: list[dict[str, str]]
    train_spans: list[list[int]]
    reader: str = ""
    """A RAFT-style reader row: ``gold`` (the gold passage among distractors) or ``absent``
    (distractors only, answered "The documents do not say."); empty for the dataset's own."""


@dataclass
class Prepared:
    train: list[Encoded] = field(default_factory=list)
    validation: list[Encoded] = field(default_factory=list)
    too_long: int = 0
    """Rows dropped because they do not fit in max_seq_len."""
    longest_prompt: int = 0
    longest_row: int = 0
    nothing_to_learn: int = 0
    """Rows without a single trained token (dropped)."""

    @property
    def train_tokens(self) -> int:
        return sum(len(e) for e in self.train)


def dataset_rows(dataset: Dataset, spec: TrainSpec) -> list[Row]:
    rows: list[Row] = []
    examples = dataset.examples()
    for example in examples:
        for row in exporting.rows(example):
            if spec.stages != "both" and row["stage"] != spec.stages:
                continue
            rows.append(
                Row(
                    id=str(row["id"]),
                    stage=str(row["stage"]),
                    split=str(row.get("split") or "train"),
                    messages=row["messages"],
                    train_spans=row["train_spans"],
                )
            )
    if spec.raft_rows > 0 and spec.stages != "search":
        rows.extend(_reader_rows(examples, spec))
    # The validation rows stay the dataset's own: its loss compares runs with and without.
    return [r for r in rows if not (r.reader and r.split == "validation")]


def _reader_rows(examples: list[dict[str, Any]], spec: TrainSpec) -> list[Row]:
    """The RAFT-style answer-stage rows of every example (see :mod:`core.training.raft`)."""
    records = [RunRecord.from_dict(e["record"]) for e in examples]
    held_out = {str(e.get("source", "")) for e in examples if e.get("split") == "validation"}
    pool = raft.Pool(
        (r for e, r in zip(examples, records, strict=True) if e.get("split") != "validation"),
        held_out,
    )
    out: list[Row] = []
    for example, record in zip(examples, records, strict=True):
        made = raft.reader_rows(
            example,
            record,
            pool,
            count=spec.raft_rows,
            absent_share=spec.raft_absent_share,
            seed=spec.seed,
        )
        for row in made:
            answer = row.messages[-1]["content"]
            out.append(
                Row(
                    id=str(example.get("id", "")),
                    stage="answer",
                    split=str(example.get("split") or "train"),
                    messages=row.messages,
                    train_spans=[[0, len(answer)]],
                    reader="absent" if row.absent else "gold",
                )
            )
    return out


def dataset_hash(dataset: Dataset) -> str:
    """sha256 of the examples file: which exact examples a model was trained on."""
    h = hashlib.sha256()
    try:
        with dataset.examples_file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        pass
    return h.hexdigest()


def prepare(rows: list[Row], tokenizer: Any, spec: TrainSpec) -> Prepared:
    out = Prepared()
    for row in rows:
        enc = encode(tokenizer, row.messages, row.train_spans, mask_retrieved=spec.mask_retrieved)
        if row.reader and len(enc) > spec.max_seq_len:
            out.too_long += 1  # an extra reader row never decides the job's max_seq_len
            continue
        out.longest_prompt = max(out.longest_prompt, enc.prompt_tokens)
        out.longest_row = max(out.longest_row, len(enc))
        if len(enc) > spec.max_seq_len:
            out.too_long += 1
            continue
        if enc.trained_tokens == 0:
            out.nothing_to_learn += 1
            continue
        (out.validation if row.split == "validation" else out.train).append(enc)
    return out


@dataclass
class Batch:
    input_ids: list[list[int]]
    labels: list[list[int]]
    attention_mask: list[list[int]]

    @property
    def tokens(self) -> int:
        return sum(sum(m) for m in self.attention_mask)

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for row in self.labels for label in row)


def collate(rows: list[Encoded], pad_id: int) -> Batch:
    """Right-padded to the longest row of the batch (not to max_seq_len)."""
    width = max(len(r) for r in rows)
    ids, labels, mask = [], [], []
    for r in rows:
        pad = width - len(r)
        ids.append(r.input_ids + [pad_id] * pad)
        labels.append(r.labels + [IGNORE] * pad)
        mask.append([1] * len(r) + [0] * pad)
    return Batch(ids, labels, mask)


def epoch_order(rows: list[Encoded], spec: TrainSpec, epoch: int) -> list[list[int]]:
    """Indices of each batch of one epoch, the same for the same seed and epoch.

    With ``group_by_length`` rows are shuffled, cut into mega-batches of 50 batches,
    sorted by length inside each, then the batches themselves are shuffled: little
    padding, and still a random order of what is learned.
    """
    rng = random.Random(spec.seed * 1000 + epoch)
    order = list(range(len(rows)))
    rng.shuffle(order)
    size = spec.batch_size
    if spec.group_by_length:
        mega = size * 50
        grouped: list[int] = []
        for i in range(0, len(order), mega):
            part = sorted(order[i : i + mega], key=lambda j: len(rows[j]), reverse=True)
            grouped.extend(part)
        order = grouped
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    if spec.group_by_length:
        rng.shuffle(batches)
    return batches


def batches_per_epoch(n_rows: int, spec: TrainSpec) -> int:
    return (n_rows + spec.batch_size - 1) // spec.batch_size


def total_steps(n_rows: int, spec: TrainSpec) -> int:
    """Optimizer steps of the run."""
    if spec.max_steps:
        return spec.max_steps
    micro = batches_per_epoch(n_rows, spec) * spec.epochs
    return max(1, int(micro // spec.grad_accum))


def micro_batches(
    rows: list[Encoded], spec: TrainSpec, start_micro: int = 0
) -> Iterator[tuple[int, list[int]]]:
    """(micro-batch index, row indices) from ``start_micro`` on, epoch after epoch."""
    per_epoch = batches_per_epoch(len(rows), spec)
    if per_epoch == 0:
        return
    epoch = start_micro // per_epoch
    index = start_micro
    while True:
        order = epoch_order(rows, spec, epoch)
        for batch in order[index - epoch * per_epoch :]:
            yield index, batch
            index += 1
        epoch += 1
