"""Experiment tracking for a generator run (the spec's ``tracking``): TensorBoard or
MLflow, each optional; without one a run records nothing beyond its own events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.paths import DataLayout
from core.training.runs import Run
from core.training.spec import TrainSpec


class Tracker:
    """Records nothing: the base of the real ones."""

    def log(self, values: dict[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


class _TensorBoard(Tracker):
    def __init__(self, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder))

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class _MLflow(Tracker):
    def __init__(self, store: Path, run_name: str, params: dict[str, Any]) -> None:
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(store.as_uri())
        mlflow.set_experiment("cotrag-studio")
        mlflow.start_run(run_name=run_name)
        mlflow.log_params({k: str(v)[:250] for k, v in params.items()})

    def log(self, values: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics(values, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


def open_tracker(
    spec: TrainSpec, run: Run, layout: DataLayout, say: Callable[[str], None]
) -> Tracker:
    """The spec's tracker (``tracking``), or one that records nothing when it is ``none``
    or its library is not installed (``say`` tells why)."""
    kind = spec.tracking
    try:
        if kind == "tensorboard":
            return _TensorBoard(run.folder / "tensorboard")
        if kind == "mlflow":
            return _MLflow(layout.root / "mlruns", run.name, spec.to_dict())
    except ImportError:
        say(
            f"{kind} is not installed (pip install 'cotrag-studio[tracking]'): "
            "training goes on without it."
        )
    return Tracker()
