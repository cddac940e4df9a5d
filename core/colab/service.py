"""Training on Colab, one entry per use case: launch a prepared run on a Colab GPU,
export a job as a notebook to run by hand, fetch what such a notebook pushed.

A Colab run is kept like a local one. It is prepared the same way
(:func:`core.training.service.prepare_run`: checked once, its folder written), has the
same folder (``training/<run>/``: spec, events, state), the same events (the notebook
runs the real worker remotely and its sentinel lines are parsed the same way), and the
tuned model lands in the same registry, with ``trained_on.where = colab``. The notebook
and the dataset file are written into the run folder (``colab-job/``), so what ran
remotely can be read, and rerun by hand.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.colab.cli import check_gpu
from core.colab.errors import ColabError
from core.colab.hub_results import pull_results, wait_for_results
from core.colab.notebook import ExportedJob, write_export
from core.colab.results import register_remote_model
from core.colab.runtime import RemoteJob, RemoteOutcome, run_remote
from core.dataset.storage import DatasetStore
from core.errors import CotragError, DownloadCancelled
from core.models.client import hub_client
from core.models.installed import ModelEntry, ModelRegistry
from core.models.pull import downloads_dir
from core.paths import DataLayout
from core.training.events import Done, Error, WorkerEvent, to_dict
from core.training.preflight import check_job
from core.training.runs import Run, RunStore
from core.training.service import PreparedRun
from core.training.spec import TrainSpec

if TYPE_CHECKING:
    from core.workspace import Workspace

JOB_FOLDER = "colab-job"


@dataclass
class ColabRun:
    outcome: RemoteOutcome
    model: ModelEntry | None = None

    @property
    def state(self) -> str:
        return self.outcome.state

    def sentence(self) -> str:
        if self.model is not None:
            return f"{self.outcome.sentence} The model is {self.model.name}."
        return self.outcome.sentence


def check_colab_job(spec: TrainSpec, gpu: str) -> str:
    """Refuse, before a run is made for it, a job Colab cannot take; the GPU's name as the
    Colab CLI spells it."""
    if spec.kind == "embedder":
        raise ColabError("Embedder runs train on this computer (--where local).")
    return check_gpu(gpu)


def run_on_colab(
    layout: DataLayout,
    prepared: PreparedRun,
    gpu: str,
    *,
    on_event: Callable[[WorkerEvent], None] | None = None,
    on_log: Callable[[str, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    hub_token: str | None = None,
    push_repo: str | None = None,
    executable: Path | None = None,
    auth: str = "oauth2",
) -> ColabRun:
    """Train the prepared run on a Colab runtime with ``gpu``; register the model when it
    is done.

    Every event is appended to the run's ``events.jsonl`` as the local worker does, so the
    run history, the loss chart and ``cotrag train show`` read a remote run the same way.
    """
    if prepared.resume:
        raise ColabError("A Colab run starts afresh: resume runs on this computer only.")
    gpu = check_colab_job(prepared.spec, gpu)
    run, spec = prepared.run, prepared.spec
    dataset = DatasetStore(layout.datasets).open(spec.dataset)
    exported = write_export(run.folder / JOB_FOLDER, spec, dataset, run.name, push_repo=push_repo)
    run.write_state("running", pid=os.getpid(), where="colab", gpu=gpu)
    events = run.events_file.open("a", encoding="utf-8")

    def record(event: WorkerEvent) -> None:
        events.write(json.dumps(to_dict(event), ensure_ascii=False) + "\n")
        events.flush()
        if on_event is not None:
            on_event(event)

    def relay(event: WorkerEvent) -> None:
        if not isinstance(event, Done):  # written below, once registered under its local name
            record(event)

    try:
        outcome = run_remote(
            RemoteJob(
                run_folder=run.folder,
                notebook=exported.notebook,
                dataset=exported.dataset,
                gpu=gpu,
                hub_token=hub_token,
                # Pushed results come back through the hub (resumable, checked), not
                # through the CLI's download, which holds a whole file in memory.
                download=not push_repo,
            ),
            executable=executable,
            layout=layout,
            on_event=relay,
            on_log=on_log,
            should_stop=should_stop,
            auth=auth,
        )
        model: ModelEntry | None = None
        if outcome.state == "done" and outcome.model_dir is None and outcome.hub_repo:
            outcome = _pull_pushed(layout, run, outcome, hub_token, should_stop)
        if outcome.state == "done" and outcome.model_dir is not None:
            registry = ModelRegistry(layout)
            name = run.name
            if registry.find(name) is not None:  # taken since the run started
                name = registry.unique_name(name)
            model = register_remote_model(registry, outcome.model_dir, name=name, gpu=gpu)
            final = outcome.final if isinstance(outcome.final, Done) else Done()
            record(dataclasses.replace(final, model=model.name, where="colab"))
            run.write_state("done", model=model.name)
        elif outcome.state == "cancelled":
            run.write_state("cancelled", message=outcome.sentence)
        else:
            record(Error(kind=outcome.kind or "remote", message=outcome.sentence))
            run.write_state("failed", message=outcome.sentence, kind=outcome.kind)
        return ColabRun(outcome, model)
    except BaseException:
        run.write_state("failed", message="the remote run stopped with an error (see the log)")
        raise
    finally:
        events.close()


def _pull_pushed(
    layout: DataLayout,
    run: Run,
    outcome: RemoteOutcome,
    hub_token: str | None,
    should_stop: Callable[[], bool] | None,
) -> RemoteOutcome:
    """The results the notebook pushed, pulled from the hub into a model folder."""
    try:
        model_dir = pull_pushed_results(
            layout, outcome.hub_repo, run.name, run.folder, hub_token=hub_token,
            should_stop=should_stop,
        )  # fmt: skip
    except DownloadCancelled as exc:
        return dataclasses.replace(outcome, state="cancelled", sentence=str(exc))
    except CotragError as exc:
        return dataclasses.replace(
            outcome,
            state="failed",
            kind="download",
            sentence=f"The run finished and pushed its results to {outcome.hub_repo}, but "
            f"pulling them failed: {exc} `cotrag train fetch {run.name} --repo "
            f"{outcome.hub_repo}` tries again.",
        )
    return dataclasses.replace(outcome, model_dir=model_dir)


def pull_pushed_results(
    layout: DataLayout,
    repo_id: str,
    run_name: str,
    into: Path,
    *,
    hub_token: str | None = None,
    wait: bool = False,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[object], None] | None = None,
) -> Path:
    """A run's results from ``repo_id`` (``<run>/`` and its manifest) as a model folder
    under ``into``; with ``wait``, polls until the run has pushed them (a notebook run by
    hand). Files go through our resumable download into the hub cache, each checked."""
    client = hub_client()
    if hub_token:
        client.token = hub_token
    revision = "main"
    if wait:
        revision = wait_for_results(
            client, repo_id, run_name, should_stop=should_stop, progress=progress
        ).commit
    cancel = threading.Event()

    def on_progress(p: object) -> None:
        if should_stop is not None and should_stop():
            cancel.set()
        if progress is not None:
            progress(p)

    return pull_results(
        client, repo_id, run_name, into / "pulled", revision=revision,
        journal_dir=downloads_dir(layout), progress=on_progress, cancel=cancel,
    )  # fmt: skip


def fetch_pushed_run(
    layout: DataLayout,
    repo_id: str,
    run_name: str,
    *,
    name: str | None = None,
    wait: bool = True,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[object], None] | None = None,
) -> ModelEntry:
    """For a notebook exported and run by hand: wait for its results on the hub, pull,
    check and register them (the model takes ``name``, else the run's name)."""
    with tempfile.TemporaryDirectory(dir=layout.models) as tmp:
        model_dir = pull_pushed_results(
            layout, repo_id, run_name, Path(tmp), wait=wait, should_stop=should_stop,
            progress=progress,
        )  # fmt: skip
        registry = ModelRegistry(layout)
        wanted = name or run_name
        entry = register_remote_model(
            registry,
            model_dir,
            name=registry.unique_name(wanted) if registry.find(wanted) else wanted,
            gpu="colab (by hand)",
        )
    _mark_fetched(layout, run_name, entry)
    return entry


def _mark_fetched(layout: DataLayout, run_name: str, entry: ModelEntry) -> None:
    """A run of this app whose pull failed earlier is done once its results are fetched."""
    store = RunStore(layout)
    if not store.exists(run_name):
        return
    run = store.get(run_name)
    if run.state == "done":
        return
    with run.events_file.open("a", encoding="utf-8") as events:
        done = Done(model=entry.name, where="colab", fetched=True)
        events.write(json.dumps(to_dict(done)) + "\n")
    run.write_state("done", model=entry.name)


def export_notebook(
    ws: Workspace,
    spec: TrainSpec,
    out_dir: Path,
    name: str | None = None,
    *,
    push_repo: str | None = None,
) -> ExportedJob:
    """The job, checked once, as ``train.ipynb`` + the dataset file + a README in
    ``out_dir``, to run by hand on Colab (the run is named ``name``, else
    ``<dataset>-colab``)."""
    check_job(ws.layout, spec, here=False)
    dataset = DatasetStore(ws.layout.datasets).open(spec.dataset)
    run_name = name or f"{spec.dataset}-colab"
    return write_export(Path(out_dir), spec, dataset, run_name, push_repo=push_repo)
