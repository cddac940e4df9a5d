"""A training job: one dataclass, saved as TOML next to the run, checked before it starts.

Every problem is a sentence naming the field and the fix, so a bad value is
caught in the form (or by ``cotrag train``) and never half-way into a run.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from core.errors import CotragError

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
EXPORTS = ("lora", "merged", "f16", "q8_0", "q4_k_m")
"""What a finished run writes: the adapter (always), its GGUF, the merged HF folder
(always, it is what the GGUF files are made from) and merged GGUF files."""
ENGINES = ("auto", "torch", "unsloth")
DTYPES = ("auto", "fp32", "bf16")
SCHEDULES = ("cosine", "linear", "constant")
STAGES = ("both", "search", "answer")


def unsloth_problem(cuda: bool, unsloth: bool) -> str:
    """Why engine ``unsloth`` cannot train where a CUDA GPU is (not) visible and unsloth
    is (not) installed; ``""`` when it can. The preflight and the worker both ask it."""
    if not cuda:
        return (
            "engine is unsloth but no NVIDIA GPU is visible on this computer: set engine "
            "to auto (it trains on the CPU here) or torch."
        )
    if not unsloth:
        return (
            "engine is unsloth but the GPU environment is not set up: set it up (the "
            "Training tab's button or `cotrag train setup-gpu`) or set engine to auto."
        )
    return ""


TRACKERS = ("none", "mlflow", "tensorboard")
KINDS = ("generator", "embedder")


class SpecError(CotragError, ValueError):
    """The spec cannot run; ``problems`` holds one sentence per bad field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


@dataclass
class TrainSpec:
    dataset: str = ""
    """Dataset name (see `cotrag dataset list`)."""
    kind: str = "generator"
    """``generator`` (the model that reasons and searches) or ``embedder`` (the retriever's
    sentence embedder, tuned on the dataset's questions and the chunks that answer them)."""
    base: str = "default"
    """``default`` (the bundled model), a GGUF file, a Hugging Face model folder, or a
    registry name. For an embedder: ``default`` (the bundled MiniLM) or a tuned embedder."""
    method: str = "lora"
    """``lora`` (an adapter on frozen weights) or ``full`` (every weight; tiny models only)."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(ALL_LINEAR))
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = 0
    """Optimizer steps; 0 = as many as ``epochs`` take."""
    batch_size: int = 4
    grad_accum: int = 1
    warmup_steps: int = 5
    schedule: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_seq_len: int = 2048
    load_in_4bit: bool = False
    """4-bit base weights (QLoRA): GPU engine only."""
    seed: int = 42
    validation_share: float = 0.1
    """Embedder runs: share of documents held out when the dataset has no validation split.
    Generator runs follow the dataset's own split (:mod:`core.training.data`)."""
    eval_every: int = 20
    """Steps between validation losses (0 = only at the end)."""
    checkpoint_every: int = 20
    """Steps between checkpoints (0 = only on Cancel and at the end)."""
    mask_retrieved: bool = True
    """No loss on what the loop wrote (passages, notes, closed tags)."""
    stages: str = "both"
    """Which rows to train on: the search turn, the answer stage, or both."""
    raft_rows: int = 0
    """Extra answer-stage rows per example (0 = off), RAFT-style: the gold passage at a
    random place among other real passages of the knowledge base, renumbered."""
    raft_absent_share: float = 0.2
    """Share of those rows without the gold passage, answered "The documents do not say."."""
    engine: str = "auto"
    """``auto``: unsloth when CUDA and its environment are present, else torch + peft."""
    dtype: str = "auto"
    threads: int = 0
    """CPU threads per process (0 = the physical cores, shared by the processes)."""
    processes: int = 0
    """Data-parallel processes (0 = one per GPU when there are several, else one)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: far less memory for long rows, about a
    third more compute."""
    group_by_length: bool = True
    """Batch rows of similar length together (less padding, same masks)."""
    exports: list[str] = field(default_factory=lambda: ["lora", "q8_0"])
    tracking: str = "none"
    negatives: int = 3
    """Embedder runs: hard negatives per question (passages the search returned that do not
    answer it), next to the other questions' answers in the batch."""
    recall_k: int = 5
    """Embedder runs: the k of the validation recall@k reported during the run."""
    eval_passages: int = 1000
    """Embedder runs: passages the validation questions are searched among (the held-out
    documents' chunks, the retrieved distractors, then a sample of the rest)."""
    kb: str = ""
    """Embedder runs: the knowledge base the validation searches (default: the dataset's)."""
    guard: bool = True
    """Generator runs: after the export, the base and the tuned model answer the dataset's
    held-out questions and the verdict (better / no different / worse) is recorded."""
    guard_questions: int = 40
    """The most held-out questions the guard asks (each is answered three times)."""
    guard_qa: str = ""
    """A QA file (``cotrag eval``'s format) whose questions the guard asks instead of the
    dataset's held-out ones: questions as users ask them give the verdict that holds."""

    # -- TOML ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(
                [f"Unknown field {name!r} in the training spec: remove it." for name in unknown]
            )
        try:
            return cls(**data)
        except TypeError as exc:  # pragma: no cover - dataclass signature errors
            raise SpecError([str(exc)]) from exc

    def dumps(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def load(cls, path: Path) -> TrainSpec:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpecError([f"Cannot read the spec {path}: {exc.strerror or exc}."]) from exc
        except tomllib.TOMLDecodeError as exc:
            raise SpecError([f"{path} is not valid TOML: {exc}."]) from exc
        return cls.from_dict(data)

    def with_preset(self, name: str) -> TrainSpec:
        """This spec with a preset's values (dataset and base are kept)."""
        if name not in PRESETS:
            raise SpecError([f"Unknown preset {name!r}: use one of {', '.join(PRESETS)}."])
        return replace(self, **PRESETS[name])

    # -- checks ----------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Field-level problems (the dataset and the base are checked by the preflight)."""
        out: list[str] = []

        def need(cond: bool, message: str) -> None:
            if not cond:
                out.append(message)

        need(bool(self.dataset.strip()), "dataset is empty: choose a dataset to train on.")
        need(self.kind in KINDS, f"kind is {self.kind!r}: use generator or embedder.")
        if self.kind == "embedder":
            need(
                0 <= self.negatives <= 32,
                f"negatives is {self.negatives}: use 0 to 32 hard negatives per question.",
            )
            need(1 <= self.recall_k <= 100, f"recall_k is {self.recall_k}: use 1 to 100.")
            need(
                self.eval_passages >= 20,
                f"eval_passages is {self.eval_passages}: use 20 or more.",
            )
            need(
                self.method == "full",
                "method must be full for an embedder (every weight of the small encoder is "
                'tuned); set method = "full".',
            )
        need(self.method in ("lora", "full"), f"method is {self.method!r}: use lora or full.")
        need(self.lora_r >= 1, f"lora_r is {self.lora_r}: use 1 or more (8 to 64 is usual).")
        need(self.lora_alpha >= 1, f"lora_alpha is {self.lora_alpha}: use 1 or more.")
        need(
            0.0 <= self.lora_dropout < 1.0,
            f"lora_dropout is {self.lora_dropout}: use 0 up to (not including) 1.",
        )
        need(
            self.method == "full" or bool(self.target_modules),
            "target_modules is empty: name the layers the adapter goes on (e.g. q_proj, v_proj).",
        )
        need(
            0.0 < self.learning_rate <= 0.1,
            f"learning_rate is {self.learning_rate}: use a positive value up to 0.1 "
            "(2e-4 is usual for LoRA).",
        )
        need(
            self.epochs > 0 or self.max_steps > 0,
            "epochs and max_steps are both 0: set epochs (e.g. 1) or max_steps.",
        )
        need(self.epochs >= 0, f"epochs is {self.epochs}: use 0 or more.")
        need(self.max_steps >= 0, f"max_steps is {self.max_steps}: use 0 (by epochs) or more.")
        need(self.batch_size >= 1, f"batch_size is {self.batch_size}: use 1 or more.")
        need(self.grad_accum >= 1, f"grad_accum is {self.grad_accum}: use 1 or more.")
        need(self.warmup_steps >= 0, f"warmup_steps is {self.warmup_steps}: use 0 or more.")
        need(
            self.schedule in SCHEDULES,
            f"schedule is {self.schedule!r}: use one of {', '.join(SCHEDULES)}.",
        )
        need(self.weight_decay >= 0, f"weight_decay is {self.weight_decay}: use 0 or more.")
        need(self.max_grad_norm >= 0, f"max_grad_norm is {self.max_grad_norm}: use 0 or more.")
        need(
            64 <= self.max_seq_len <= 131072,
            f"max_seq_len is {self.max_seq_len}: use 64 to 131072 tokens.",
        )
        need(
            0.0 <= self.validation_share < 0.9,
            f"validation_share is {self.validation_share}: use 0 up to 0.9.",
        )
        need(self.eval_every >= 0, f"eval_every is {self.eval_every}: use 0 or more.")
        need(
            self.checkpoint_every >= 0,
            f"checkpoint_every is {self.checkpoint_every}: use 0 or more.",
        )
        need(self.stages in STAGES, f"stages is {self.stages!r}: use both, search or answer.")
        need(
            0 <= self.raft_rows <= 16,
            f"raft_rows is {self.raft_rows}: use 0 (off) up to 16 extra reader rows per example.",
        )
        need(
            0.0 <= self.raft_absent_share <= 1.0,
            f"raft_absent_share is {self.raft_absent_share}: use 0 up to 1.",
        )
        need(self.engine in ENGINES, f"engine is {self.engine!r}: use one of {', '.join(ENGINES)}.")
        need(self.dtype in DTYPES, f"dtype is {self.dtype!r}: use one of {', '.join(DTYPES)}.")
        need(self.threads >= 0, f"threads is {self.threads}: use 0 (automatic) or more.")
        need(
            0 <= self.processes <= 64,
            f"processes is {self.processes}: use 0 (one per GPU) up to 64.",
        )
        need(
            1 <= self.guard_questions <= 1000,
            f"guard_questions is {self.guard_questions}: use 1 to 1000.",
        )
        bad = [e for e in self.exports if e not in EXPORTS]
        need(not bad, f"exports has {', '.join(bad)}: use any of {', '.join(EXPORTS)}.")
        need(
            self.tracking in TRACKERS,
            f"tracking is {self.tracking!r}: use one of {', '.join(TRACKERS)}.",
        )
        need(
            not (self.load_in_4bit and self.engine == "torch"),
            "load_in_4bit needs the GPU engine (unsloth): turn it off or set engine to auto.",
        )
        need(
            not (self.method == "full" and "lora" in self.exports),
            "exports has lora but method is full: a full fine-tune has no adapter; "
            "remove lora from exports.",
        )
        return out

    def check(self) -> None:
        problems = self.problems()
        if problems:
            raise SpecError(problems)


PRESET_NOTES: dict[str, str] = {
    "embedder": "Tunes the bundled MiniLM search embedder on the dataset's questions: "
    "a few minutes on this computer.",
    "cpu-quick": "A first tuned model in minutes on a laptop CPU: 60 short LoRA steps "
    "on the bundled model.",
    "cpu-full": "The whole dataset twice, with every export: an hour or more on a CPU.",
    "gpu-standard": "For an NVIDIA GPU with unsloth: 4-bit base weights, longer examples, "
    "three passes over the dataset.",
}
"""What each preset is for, in one line (the Training tab and `cotrag train presets`)."""

PRESETS: dict[str, dict[str, Any]] = {
    # The bundled MiniLM embedder on a CPU: a few minutes for a few hundred questions.
    "embedder": {
        "kind": "embedder",
        "method": "full",
        "learning_rate": 3e-5,
        "epochs": 2.0,
        "max_steps": 0,
        "batch_size": 16,
        "grad_accum": 1,
        "warmup_steps": 5,
        "schedule": "linear",
        "weight_decay": 0.01,
        "max_seq_len": 256,
        "eval_every": 20,
        "checkpoint_every": 20,
        "negatives": 3,
        "engine": "torch",
        "exports": [],
    },
    # Minutes on the bundled 135M model on a laptop CPU: a first tuned model to compare.
    "cpu-quick": {
        "kind": "generator",
        "method": "lora",
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.0,
        "learning_rate": 1e-3,
        "epochs": 1.0,
        "max_steps": 60,
        "batch_size": 4,
        "grad_accum": 1,
        "warmup_steps": 5,
        "max_seq_len": 2048,
        "eval_every": 20,
        "checkpoint_every": 20,
        "engine": "auto",
        "exports": ["lora", "q8_0"],
    },
    # The whole dataset, twice, every export: an hour or more on a CPU.
    "cpu-full": {
        "kind": "generator",
        "method": "lora",
        "lora_r": 32,
        "lora_alpha": 64,
        "lora_dropout": 0.05,
        "learning_rate": 5e-4,
        "epochs": 2.0,
        "max_steps": 0,
        "batch_size": 4,
        "grad_accum": 2,
        "warmup_steps": 10,
        "max_seq_len": 2048,
        "eval_every": 50,
        "checkpoint_every": 50,
        "engine": "auto",
        "exports": ["lora", "f16", "q8_0", "q4_k_m"],
    },
    # unsloth on an NVIDIA GPU: 4-bit base, longer sequences, three epochs.
    "gpu-standard": {
        "kind": "generator",
        "method": "lora",
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.0,
        "learning_rate": 2e-4,
        "epochs": 3.0,
        "max_steps": 0,
        "batch_size": 8,
        "grad_accum": 2,
        "warmup_steps": 10,
        "max_seq_len": 4096,
        "load_in_4bit": True,
        "eval_every": 50,
        "checkpoint_every": 100,
        "engine": "auto",
        "exports": ["lora", "f16", "q8_0", "q4_k_m"],
    },
}


def _coerce(spec_value: Any, text: str) -> Any:
    if isinstance(spec_value, bool):
        return text.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(spec_value, int):
        return int(text)
    if isinstance(spec_value, float):
        return float(text)
    if isinstance(spec_value, list):
        return [t.strip() for t in text.split(",") if t.strip()]
    return text


def parse_sets(spec: Any, items: list[str], forbidden: tuple[str, ...] = ()) -> dict[str, Any]:
    """``FIELD=VALUE`` overrides of ``spec``'s fields, each coerced to the field's type."""
    changes: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not hasattr(spec, name) or name in forbidden:
            extra = f" (not {', '.join(forbidden)})" if forbidden else ""
            raise SpecError([f"--set {item!r}: use FIELD=VALUE with a spec field name{extra}."])
        try:
            changes[name] = _coerce(getattr(spec, name), value)
        except ValueError as exc:
            raise SpecError([f"--set {item!r}: {exc}."]) from exc
    return changes
