"""What the Training tab's lists show — datasets, bases, runs, this computer's GPU, the colab
CLI — read in one go off the GUI thread, and the knowledge base a run searched."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core.colab.cli import ColabStatus
from core.colab.cli import status as colab_status
from core.dataset.storage import DatasetStore
from core.knowledge.embedder_catalog import list_embedders
from core.models.installed import ModelRegistry
from core.paths import DataLayout
from core.training.gpu_env import GpuStatus, gpu_status
from core.training.runs import RunStore
from desktop import embedder_runs as er

log = logging.getLogger(__name__)

BUNDLED = "default"
"""The spec's base for the bundled model (generator) or the bundled MiniLM (embedder)."""


@dataclass(frozen=True)
class TrainingLists:
    datasets: list[str]
    models: list[str]
    """Tuned generators a run can start from (merged or GGUF)."""
    labels: dict[str, str]
    """How the base list shows a model: ``name — worse than base`` (the guard's verdict)."""
    embedders: list[tuple[str, str]]
    """(name, label) of the embedders an embedder run can start from."""
    runs: list[dict[str, Any]]
    """The history's rows (:func:`desktop.embedder_runs.run_summary`), newest first."""
    gpu: GpuStatus
    colab: ColabStatus | None
    """The colab CLI's status, when the form shows the Colab rows."""


def read_lists(layout: DataLayout, *, colab: bool) -> TrainingLists:
    models = [
        e
        for e in ModelRegistry(layout).list()
        if e.kind != "bundled" and e.present and (e.merged_dir or e.default_gguf)
    ]
    return TrainingLists(
        datasets=DatasetStore(layout.datasets).names(),
        models=[e.name for e in models],
        labels={e.name: e.picker_label for e in models},
        embedders=[(e.name if not e.bundled else BUNDLED, e.label) for e in list_embedders(layout)],
        runs=[er.run_summary(r) for r in RunStore(layout).runs()],
        gpu=gpu_status(layout),
        colab=colab_status(layout) if colab else None,
    )


def run_kb(layout: DataLayout, name: str) -> str:
    """The knowledge base a run searched (its spec's, else its dataset's): two small files;
    '' when they cannot be read."""
    try:
        spec = RunStore(layout).get(name).spec()
        dataset = DatasetStore(layout.datasets).open(spec.dataset)
        return spec.kb or str(dataset.meta.get("kb", ""))
    except Exception:  # the panel keeps the knowledge base it shows
        log.debug("No knowledge base for %s", name, exc_info=True)
        return ""
