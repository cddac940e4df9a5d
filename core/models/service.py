"""The model use cases of one workspace: list, add, delete and choose installed models;
search the hub, read a repository's files, and pull (plan, run with progress, pause by
cancelling, resume, discard). `cotrag models` and the Models tab both start here.

A workspace is handed in as a :class:`Host` (``core.workspace`` sits above this package
and is never imported here)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from core.config import AppConfig
from core.errors import CotragError, ModelNotFound
from core.models.hub import HubClient, HubFile, HubModel, RepoFiles, SortKey
from core.models.installed import ModelEntry, ModelRegistry
from core.models.pull import (
    PullPlan,
    PullProgress,
    bytes_on_disk,
    discard_pull,
    pending_pulls,
    plan_pull,
    run_pull,
)
from core.paths import DataLayout

LARGE_FILE = 50_000_000
"""Bytes above which any file of a repository is checked against the disk and memory."""


class Host(Protocol):
    """What the model use cases need of a workspace."""

    layout: DataLayout
    config: AppConfig

    def save_config(self) -> None: ...

    def release(self, model: str | None = None) -> None:
        """Close a loaded model (its files are about to go)."""
        ...


# -- installed models -------------------------------------------------------------------


def registry(ws: Host) -> ModelRegistry:
    return ModelRegistry(ws.layout)


def installed(ws: Host) -> list[ModelEntry]:
    """The bundled model, then pulled and added ones, then tuned ones."""
    return registry(ws).list()


def default_name(ws: Host) -> str:
    """The name of the model used when none is chosen (``default``: the bundled one)."""
    return ws.config.model or "default"


def find(ws: Host, name: str) -> ModelEntry:
    entry = registry(ws).find(name)
    if entry is None:
        raise ModelNotFound(f"No model named {name!r} (see `cotrag models list`).")
    return entry


def add_local(ws: Host, path: Path, name: str | None = None) -> ModelEntry:
    """Register a GGUF file or a model folder where it is (nothing is copied)."""
    return registry(ws).add_local(path, name)


def set_default(ws: Host, name: str) -> None:
    """Make ``name`` the model used when none is chosen; a name that does not resolve to
    a runnable file raises and nothing is saved."""
    registry(ws).resolve(name)
    ws.config.model = "" if name == "default" else name
    ws.save_config()


@dataclass(frozen=True)
class Deleted:
    message: str
    """What went, and what stayed, in a sentence."""
    was_default: bool
    """The model was the default: the bundled model is the default again."""


def delete(ws: Host, name: str) -> Deleted:
    """Remove a model (a loaded copy is closed first); the default falls back to the
    bundled model when it was this one."""
    entry = find(ws, name)
    if entry.kind == "bundled":
        raise CotragError("The bundled model ships with the app and cannot be deleted.")
    if entry.present:
        ws.release(entry.name)
    message = registry(ws).delete(entry.name)
    was_default = ws.config.model.split(":", 1)[0] == entry.name
    if was_default:
        ws.config.model = ""
        ws.save_config()
    return Deleted(message, was_default)


# -- the hub ----------------------------------------------------------------------------


def search(
    client: HubClient, text: str, *, library: str | None, sort: SortKey, limit: int
) -> list[HubModel]:
    return client.search(text, library=library, sort=sort, limit=limit)


def is_weights(file: HubFile) -> bool:
    """The files the Models tab says fit or not: model weights with a size."""
    return file.format in ("gguf", "safetensors") and file.size > 0


def is_large(file: HubFile) -> bool:
    return file.size > LARGE_FILE


@dataclass
class RepoListing:
    repo: RepoFiles
    warnings: dict[str, list[str]] = field(default_factory=dict)
    """For each file weighed, why it may not fit here (an empty list: it fits)."""


def repo_files(
    ws: Host,
    client: HubClient,
    repo_id: str,
    *,
    revision: str = "main",
    weigh: Callable[[HubFile], bool] = is_weights,
) -> RepoListing:
    """A repository's files, those ``weigh`` picks checked against the disk and memory."""
    repo = client.files(repo_id, revision=revision)
    dest = ws.layout.models
    warnings = {f.path: client.fit_warnings(f, dest=dest) for f in repo.files if weigh(f)}
    return RepoListing(repo, warnings)


# -- pulls ------------------------------------------------------------------------------


@dataclass
class PreparedPull:
    plan: PullPlan
    resumed: bool
    """A paused pull of the same files is continued (its plan was remembered)."""
    warnings: list[str] = field(default_factory=list)
    """Why the model may not fit on this disk or in this memory."""


@dataclass
class PausedPull:
    plan: PullPlan
    on_disk: int
    """Bytes already downloaded (whole files and partial ones)."""


def paused_pulls_of(ws: Host, repo_id: str, filename: str | None = None) -> list[PullPlan]:
    """Paused pulls of ``repo_id`` (of ``filename`` when one is named)."""
    return [
        p
        for p in pending_pulls(ws.layout)
        if p.repo_id == repo_id and (not filename or p.files[0] == filename)
    ]


def paused(ws: Host, client_factory: Callable[[], HubClient]) -> list[PausedPull]:
    """Pulls that were paused or cut off, with what is on disk (read offline; the client,
    made only when there is one, knows the cache)."""
    plans = pending_pulls(ws.layout)
    if not plans:
        return []
    client = client_factory()
    return [PausedPull(p, bytes_on_disk(client, p, ws.layout)) for p in plans]


def prepare_pull(
    ws: Host,
    client: HubClient,
    repo_id: str,
    filename: str | None = None,
    *,
    revision: str = "main",
    name: str | None = None,
) -> PreparedPull:
    """The pull to run: a paused one of the same files, or a new plan (which files, which
    quantization). A name given here replaces a paused pull's (a clash found on the
    first try can be mended)."""
    resumed = paused_pulls_of(ws, repo_id, filename)
    if resumed:
        plan = resumed[0]
        if name and name != plan.name:
            plan.name = name
    else:
        plan = plan_pull(client, repo_id, filename, revision=revision, name=name)
    warnings: list[str] = []
    if plan.kind == "gguf":
        size_file = HubFile(plan.files[0], plan.total_bytes, None, None, "gguf", None)
        warnings = client.fit_warnings(size_file, dest=ws.layout.models)
    return PreparedPull(plan, bool(resumed), warnings)


def run(
    ws: Host,
    client: HubClient,
    plan: PullPlan,
    *,
    progress: Callable[[PullProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> ModelEntry:
    """Download what is missing and register the model. Setting ``cancel`` pauses: it
    raises DownloadCancelled and the pull stays listed in :func:`paused`."""
    return run_pull(client, plan, ws.layout, progress=progress, cancel=cancel)


def discard(ws: Host, client: HubClient, plan: PullPlan) -> None:
    """Drop a pull and its partial files (files already complete stay in the hub cache)."""
    discard_pull(client, plan, ws.layout)


def discard_paused(ws: Host, client: HubClient, repo_id: str, filename: str | None = None) -> int:
    """Drop the paused pulls of ``repo_id`` (of ``filename``); how many there were."""
    plans = paused_pulls_of(ws, repo_id, filename)
    for plan in plans:
        discard(ws, client, plan)
    return len(plans)


def resume_command(plan: PullPlan) -> str:
    """The command that resumes ``plan`` from a terminal."""
    return f"cotrag models pull {plan.repo_id}" + (
        f" {plan.files[0]}" if plan.kind == "gguf" else ""
    )
