"""Training runs on disk: what was asked, what happened, where it stopped.

    training/<run>/spec.toml         the job
    training/<run>/events.jsonl      every event the worker emitted (the loss curve, the log)
    training/<run>/state.json        running (with the worker's pid) / done / cancelled /
                                     failed, written by the worker
    training/<run>/checkpoints/step-NNNNNN/   the latest two checkpoints
    training/<run>/worker.log        the worker's other output (tracebacks, library logs)

A run whose state says running but whose worker is gone (killed, power loss) is
*interrupted*: its last checkpoint is complete (checkpoints are written to a temp
folder and renamed) and Resume continues from it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import CotragError
from core.fileio import write_atomic, write_json_atomic
from core.knowledge.embedder_catalog import embedders_dir
from core.models.installed import ModelRegistry
from core.names import check_name
from core.paths import DataLayout
from core.training.events import Done, Error, Eval, Step, WorkerEvent, read_events
from core.training.spec import TrainSpec


class RunNotFound(CotragError, FileNotFoundError):
    pass


class RunExists(CotragError, FileExistsError):
    def __init__(self, message: str, *, run: str = "") -> None:
        super().__init__(message)
        self.run = run
        """The training run that holds the name ("" when a model holds it)."""


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class Run:
    name: str
    folder: Path

    @property
    def spec_file(self) -> Path:
        return self.folder / "spec.toml"

    @property
    def events_file(self) -> Path:
        return self.folder / "events.jsonl"

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoints"

    @property
    def log_file(self) -> Path:
        return self.folder / "worker.log"

    @property
    def stop_file(self) -> Path:
        """Created to ask the worker to checkpoint and stop (works on every platform)."""
        return self.folder / "STOP"

    def spec(self) -> TrainSpec:
        return TrainSpec.load(self.spec_file)

    def raw_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def write_state(self, state: str, **fields: Any) -> None:
        data = {**self.raw_state(), "state": state, "updated": time.time(), **fields}
        write_json_atomic(self.state_file, data, indent=2)

    @property
    def state(self) -> str:
        data = self.raw_state()
        state = str(data.get("state", "created"))
        if state == "running" and not pid_alive(int(data.get("pid", 0) or 0)):
            return "interrupted"
        return state

    def worker_events(self) -> list[WorkerEvent]:
        """Every event the worker recorded, typed (a torn last line is skipped)."""
        return read_events(self.events_file)

    def latest_checkpoint(self) -> Path | None:
        if not self.checkpoints.is_dir():
            return None
        done = sorted(
            p
            for p in self.checkpoints.iterdir()
            if p.is_dir() and p.name.startswith("step-") and (p / "trainer.pt").is_file()
        )
        return done[-1] if done else None

    def summary(self) -> dict[str, Any]:
        """State, last step, last losses, the model it made: for the history list."""
        events = self.worker_events()
        last = next((e for e in reversed(events) if isinstance(e, Step)), None)
        evals = [e for e in events if isinstance(e, Eval)]
        done = next((e for e in reversed(events) if isinstance(e, Done)), None)
        error = next((e for e in reversed(events) if isinstance(e, Error)), None)
        return {
            "name": self.name,
            "state": self.state,
            "step": last.step if last else 0,
            "total": last.total if last else 0,
            "loss": last.loss if last else None,
            "eval_loss": evals[-1].loss if evals else None,
            "model": done.model if done else "",
            "error": error.message if error else "",
            "checkpoint": str(self.latest_checkpoint() or ""),
        }


class RunStore:
    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout
        self.root = layout.root / "training"
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, name: str) -> Run:
        check_name(name, "run")
        run = Run(name, self.root / name)
        if not run.spec_file.is_file():
            raise RunNotFound(f"No training run named {name!r} (see `cotrag train list`).")
        return run

    def exists(self, name: str) -> bool:
        return (self.root / name / "spec.toml").is_file()

    def create(self, name: str, spec: TrainSpec) -> Run:
        check_name(name, "run")
        if self.exists(name):
            raise RunExists(
                f"A training run named {name!r} exists: resume it with --resume {name}, "
                "or choose another name.",
                run=name,
            )
        if self._model_exists(name):
            # The run's tuned model takes the run's name.
            raise RunExists(f"A model named {name!r} exists: choose another name.")
        run = Run(name, self.root / name)
        run.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(run.spec_file, spec.dumps())
        run.write_state("created", created=time.time())
        return run

    def runs(self) -> list[Run]:
        out = [
            Run(p.name, p)
            for p in self.root.iterdir()
            if p.is_dir() and (p / "spec.toml").is_file()
        ]
        return sorted(out, key=lambda r: r.raw_state().get("created", 0), reverse=True)

    def unique_name(self, stem: str) -> str:
        stem = stem.strip() or "run"
        name, n = stem, 2
        while self.exists(name) or self._model_exists(name):
            name, n = f"{stem}-{n}", n + 1
        return name

    def _model_exists(self, name: str) -> bool:
        if (embedders_dir(self.layout) / name).exists():
            return True  # an embedder run's result takes the run's name too
        return ModelRegistry(self.layout).find(name) is not None

    def delete(self, name: str) -> None:
        run = self.get(name)
        if run.state == "running":
            raise CotragError(f"Run {name!r} is running: cancel it first.")
        shutil.rmtree(run.folder)
