"""The Dataset tab's long runs as background work: generate, sample, import.

Each function returns the ``work(push, cancel)`` a :class:`desktop.tasks.Job` runs off the
GUI thread: it calls the dataset service, pushes ``("existing", examples)`` and the run's
events as they come, and returns the dataset's quality report. :func:`done_line` is the
sentence the form shows when a run ends.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.dataset import export as exporting
from core.dataset import service
from core.dataset.importing import load_pairs
from core.dataset.sampling import SampleProgress
from core.dataset.teacher import Teacher
from core.workspace import Workspace
from desktop.dataset_form import ENDPOINT, GenerateRequest
from desktop.dataset_sampling import SampleRequest
from desktop.tasks import Push, Work


def with_sampling(request: GenerateRequest, wanted: SampleRequest) -> GenerateRequest:
    """``request`` whose generation also samples the model's own runs as ``wanted``."""
    spec = replace(
        request.spec,
        samples=wanted.samples,
        sample_temperature=wanted.temperature,
        sample_model=wanted.model,
        sample_fallback=wanted.fallback,
    )
    return replace(request, spec=spec)


def generate_work(ws: Workspace, request: GenerateRequest) -> Work:
    def work(push: Push, cancel: threading.Event) -> dict[str, Any]:
        gen, dataset, _ = service.generator(
            ws, request.name, request.spec, _teacher(ws, request), cancel=cancel
        )
        push(("existing", dataset.examples()))
        for event in gen.run():
            push(event)
        return exporting.report(dataset)

    return work


def sample_work(ws: Workspace, name: str, wanted: SampleRequest) -> Work:
    """The model to be tuned samples every question of ``name`` not decided before."""

    def work(push: Push, cancel: threading.Event) -> dict[str, Any]:
        job = service.sample_pass(
            ws,
            name,
            samples=wanted.samples,
            temperature=wanted.temperature,
            model=wanted.model,
            fallback=wanted.fallback,
            cancel=cancel,
        )
        for event in job.run():
            if isinstance(event, SampleProgress):
                push(event)
        push(("existing", job.dataset.examples()))
        return exporting.report(job.dataset)

    return work


def import_work(ws: Workspace, name: str, kb: str, path: Path) -> Work:
    def work(push: Push, cancel: threading.Event) -> dict[str, Any]:
        pairs = load_pairs(path)
        gen, dataset = service.importer(ws, name, kb, pairs, cancel=cancel)
        push(("existing", dataset.examples()))
        for event in gen.run_pairs(pairs):
            push(event)
        return exporting.report(dataset)

    return work


def done_line(report: dict[str, Any], *, stopped: bool, seconds: float, asked: int = 0) -> str:
    """``40 examples, 3 rejected; 12 of 40 questions kept the model's own run (95 s).``
    A run that ended short of the ``asked`` size (not stopped) says why."""
    prefix = "Stopped: every accepted example is saved. " if stopped else ""
    sampled = report.get("sampling") or {}
    kept = (
        f"; {sampled.get('kept', 0)} of {sampled['questions']} questions kept the model's own run"
        if sampled.get("questions")
        else ""
    )
    short = (
        f" Only {report['examples']} of the {asked} asked for: each passage long enough to "
        "ask about gives one question at most. Add documents to the knowledge base for more."
        if asked and not stopped and report["examples"] < asked
        else ""
    )
    return (
        f"{prefix}{report['examples']} examples, {report['rejected']} rejected{kept} "
        f"({seconds:.0f} s).{short}"
    )


def _teacher(ws: Workspace, request: GenerateRequest) -> Teacher | None:
    """The question writer the form chose (loaded in the run's thread: it may be slow)."""
    if request.teacher == ENDPOINT:
        return service.endpoint_teacher(request.url, request.model, request.key)
    return service.make_teacher(ws, request.teacher)
