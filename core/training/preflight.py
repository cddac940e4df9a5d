"""Everything about a job that can be checked before a process starts.

Fields (``TrainSpec.problems``), this computer for a job that runs here (everything the
worker would refuse about the engine, the GPU and 4-bit weights: :func:`machine_problems`,
a fraction of a second, before the base is loaded or converted), the dataset (exists, has
training rows), the base model (resolves), and lengths: a row whose *prompt* alone is
longer than ``max_seq_len`` can never be trained, so that is an error naming the length
to use; longer rows whose prompt fits are dropped and counted.

:func:`check_job` runs once, where a run is prepared
(:func:`core.training.service.prepare_run`); the worker, given a run that was
checked, only loads it (:func:`load_job`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.compare.evaluation import load_qa
from core.dataset.storage import Dataset, DatasetNotFound, DatasetStore
from core.errors import CotragError
from core.paths import DataLayout
from core.training.base_models import BaseModel, load_tokenizer, resolve_base
from core.training.data import Prepared, Row, dataset_rows, prepare
from core.training.gpu_env import cuda_visible
from core.training.process import gpu_env_ready
from core.training.spec import SpecError, TrainSpec, unsloth_problem


@dataclass
class Checked:
    spec: TrainSpec
    dataset: Dataset
    base: BaseModel
    rows: list[Row]
    prepared: Prepared | None = None


def check_job(
    layout: DataLayout,
    spec: TrainSpec,
    *,
    tokenizer: Any = None,
    lengths: bool = True,
    here: bool = True,
) -> Checked:
    """Raise :class:`SpecError` with every problem found, or return what was checked.

    ``here``: the job runs on this computer (not on Colab), so this computer's GPU and
    environment are checked too. ``lengths`` tokenizes every row with the base's
    tokenizer (seconds for hundreds of rows; the tokenizer is loaded from the base when
    not given).
    """
    problems = spec.problems()
    if here and spec.kind != "embedder":
        problems += machine_problems(layout, spec)
    dataset: Dataset | None = None
    base: BaseModel | None = None
    if spec.dataset.strip():
        try:
            dataset = DatasetStore(layout.datasets).open(spec.dataset)
        except (DatasetNotFound, CotragError) as exc:
            problems.append(f"dataset: {exc}")
    if spec.guard and spec.guard_qa.strip():
        try:
            load_qa(Path(spec.guard_qa))
        except CotragError as exc:
            problems.append(f"guard_qa: {exc}")
    try:
        base = resolve_base(spec.base, layout)
    except CotragError as exc:
        problems.append(f"base: {exc}")
    if problems or dataset is None or base is None:
        raise SpecError(problems or ["The job cannot start."])
    rows = dataset_rows(dataset, spec)
    train_rows = [r for r in rows if r.split != "validation"]
    if not train_rows:
        raise SpecError(
            [
                f"dataset: {spec.dataset!r} has no training rows"
                + (" for this stage" if spec.stages != "both" else "")
                + ": generate or import examples first (`cotrag dataset generate`)."
            ]
        )
    checked = Checked(spec, dataset, base, rows)
    if not lengths:
        return checked
    if tokenizer is None:
        tokenizer = load_tokenizer(base)
    checked.prepared = prepare(rows, tokenizer, spec)
    check_lengths(spec, checked.prepared)
    return checked


def machine_problems(layout: DataLayout, spec: TrainSpec) -> list[str]:
    """What the worker would refuse, or silently drop, about running ``spec`` on this
    computer (the same rules as :func:`core.training.trainer.pick_engine`), found without
    starting it: no torch import, no model loaded."""
    gpu = cuda_visible()
    # The worker runs in the GPU environment when it is set up (engine auto or unsloth),
    # else in this app's own, where unsloth is normally absent.
    unsloth = gpu_env_ready(layout) or importlib.util.find_spec("unsloth") is not None
    problems: list[str] = []
    if spec.engine == "unsloth":
        problem = unsloth_problem(gpu, unsloth)
        if problem:
            problems.append(problem)
    elif spec.load_in_4bit and spec.engine == "auto" and not (gpu and unsloth):
        where = "no NVIDIA GPU is visible" if not gpu else "the GPU environment is not set up"
        problems.append(
            f"load_in_4bit needs the GPU engine (unsloth) but {where} on this computer: "
            "turn load_in_4bit off (or pick a CPU preset)."
        )
    return problems


def load_job(layout: DataLayout, spec: TrainSpec) -> Checked:
    """The dataset, its rows and the base of a job :func:`check_job` passed (the worker's
    side: nothing is checked again; a dataset or base gone since raises as it opens)."""
    dataset = DatasetStore(layout.datasets).open(spec.dataset)
    base = resolve_base(spec.base, layout)
    return Checked(spec, dataset, base, dataset_rows(dataset, spec))


def check_lengths(spec: TrainSpec, prepared: Prepared) -> None:
    """Raise :class:`SpecError` when the rows cannot be trained at ``max_seq_len``."""
    if prepared.longest_prompt >= spec.max_seq_len:
        need = _round_up(prepared.longest_prompt + 64)
        raise SpecError(
            [
                f"max_seq_len is {spec.max_seq_len} but the longest prompt is "
                f"{prepared.longest_prompt} tokens: use max_seq_len {need} or more."
            ]
        )
    if not prepared.train:
        need = _round_up(prepared.longest_row)
        raise SpecError(
            [
                f"max_seq_len is {spec.max_seq_len}: no training row fits (the longest is "
                f"{prepared.longest_row} tokens); use max_seq_len {need}."
            ]
        )


def _round_up(n: int, step: int = 256) -> int:
    return ((n + step - 1) // step) * step
