"""Pushing folders to a private hub repo, and pulling a Colab run's results back.

A remote run's results go to the hub as one commit under ``<run>/`` in the push repo:
the tuned model's files at ``<run>/<path>`` and, in the same commit, the manifest
``<run>/cotrag-manifest.json`` (``{"model": name, "files": {path: {size, sha256}}}``,
the one the results tar carries). One commit per run means the manifest appears
together with every file it lists, so waiting for the manifest is waiting for the
whole run; a folder per run means two runs pushed to one repo never mix.

:func:`pull_results` downloads each listed file with our resumable downloader (into
the standard hub cache, so an interrupted pull resumes), checks it against the
manifest's sha256 and assembles the model folder the way
:func:`core.colab.results.extract_results` does, so
:func:`core.colab.results.register_remote_model` takes it unchanged.

Pushing goes through the real ``huggingface_hub`` client (``create_repo`` and one
``create_commit``); errors become sentences through :func:`core.models.hub.hub_errors`.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from core.colab.errors import DamagedResults
from core.colab.manifest import MANIFEST_NAME, file_sha256, make_manifest
from core.errors import CotragError, HubError, HubFileNotFound, HubRepoNotFound, HubUnreachable
from core.models.download import download_file
from core.models.hub import HubClient, RepoFiles, hub_errors
from core.models.transfer import DownloadProgress

DEFAULT_MESSAGE = "Pushed from CoT-RAG Studio"
WAIT_TIMEOUT_S = 12 * 3600.0
"""Longer than a Colab session lives: past this the results are not coming."""


class PushRefused(HubError, PermissionError):
    """No token, or one the hub will not let write to the repository."""


class NothingToPush(CotragError, FileNotFoundError):
    """The folder to push is missing or empty."""


class ResultsNotFound(HubFileNotFound):
    """The push repo holds no (complete) results for the run."""


class ResultsTimeout(CotragError, TimeoutError):
    """The run's results did not appear on the hub within the time allowed."""


class WaitStopped(CotragError, InterruptedError):
    """The user stopped waiting for the results (nothing was downloaded)."""


@dataclass(frozen=True)
class WaitProgress:
    """One look at the push repo while waiting for a run's results."""

    repo_id: str
    run_name: str
    checks: int
    waited_s: float
    note: str
    """What the last look found, as a sentence ("not created yet", "no results yet"…)."""


def results_path(run_name: str, rel: str = "") -> str:
    """Where a run's file ``rel`` lives in the push repo: ``<run>/<rel>``."""
    _check_run_name(run_name)
    return f"{run_name}/{rel}" if rel else run_name


def manifest_path(run_name: str) -> str:
    """``<run>/cotrag-manifest.json``: committed with the run's files, so it marks them whole."""
    return results_path(run_name, MANIFEST_NAME)


# -- pushing ------------------------------------------------------------------------------
def push_folder(
    client: HubClient,
    folder: Path,
    repo_id: str,
    *,
    private: bool = True,
    message: str = DEFAULT_MESSAGE,
    path_in_repo: str = "",
    extra: Mapping[str, bytes] | None = None,
) -> str:
    """Push every file under ``folder`` (to ``path_in_repo/``) in one commit; returns its sha.

    The repository is created (private unless told otherwise) when missing; an existing
    one keeps its visibility. ``extra`` adds files from memory (path below
    ``path_in_repo`` → bytes) to the same commit. Files the hub already holds unchanged
    are not sent again; when nothing changed, no commit is made and the current sha is
    returned.
    """
    from huggingface_hub import CommitOperationAdd

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not files and not extra:
        raise NothingToPush(f"{folder} holds no files to push: pick the folder of a model.")
    _require_token(client, repo_id)
    prefix = f"{path_in_repo.strip('/')}/" if path_in_repo.strip("/") else ""
    operations = [
        CommitOperationAdd(
            path_in_repo=prefix + p.relative_to(folder).as_posix(), path_or_fileobj=str(p)
        )
        for p in files
    ]
    operations += [
        CommitOperationAdd(path_in_repo=prefix + rel, path_or_fileobj=data)
        for rel, data in (extra or {}).items()
    ]
    with _write_errors(client, repo_id):
        api = client._api()
        # Asked first rather than relying on create_repo(exist_ok=True): a token that may
        # push but not create then still pushes, with no refused create on the way.
        if not api.repo_exists(repo_id, repo_type="model", token=client.auth):
            api.create_repo(
                repo_id, private=private, exist_ok=True, repo_type="model", token=client.auth
            )
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=message,
            repo_type="model",
            token=client.auth,
        )
    return str(info.oid)


def push_results(
    client: HubClient,
    model_dir: Path,
    repo_id: str,
    run_name: str,
    *,
    model: str | None = None,
    private: bool = True,
    message: str | None = None,
) -> str:
    """A run's tuned model folder to ``<run>/`` of ``repo_id`` with its manifest, in one
    commit: the layout :func:`wait_for_results` and :func:`pull_results` read, which the
    notebook's push cell is to write. Returns the commit sha."""
    manifest = make_manifest(Path(model_dir), model)
    return push_folder(
        client,
        Path(model_dir),
        repo_id,
        private=private,
        message=message or f"CoT-RAG Studio run {run_name}",
        path_in_repo=results_path(run_name),
        extra={MANIFEST_NAME: json.dumps(manifest, indent=1).encode("utf-8")},
    )


def _require_token(client: HubClient, repo_id: str) -> None:
    if not client.token:
        raise PushRefused(
            f"Pushing to {repo_id} needs a Hugging Face access token with write permission: "
            "set one (`cotrag models login`)."
        )


@contextmanager
def _write_errors(client: HubClient, repo_id: str) -> Iterator[None]:
    """:func:`hub_errors`, plus the refusals only a write meets (a read-only token)."""
    from huggingface_hub import errors as hf

    with hub_errors(client, repo_id):
        try:
            yield
        except hf.HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else None
            if isinstance(e, hf.RepositoryNotFoundError) or status not in (401, 403):
                raise
            raise PushRefused(
                f"The hub refused to let this access token write to {repo_id}: set a token "
                "with write permission (`cotrag models login`)."
            ) from e
        except RuntimeError as e:
            # An LFS upload failing is re-raised by the library as a RuntimeError.
            if isinstance(e.__cause__, hf.HfHubHTTPError | OSError):
                raise HubError(
                    f"Uploading to {repo_id} failed ({e.__cause__}): check the connection "
                    "and push again (files already sent are not sent twice)."
                ) from e
            raise


# -- waiting for a run's results ----------------------------------------------------------
def wait_for_results(
    client: HubClient,
    repo_id: str,
    run_name: str,
    *,
    poll_s: float = 30.0,
    timeout_s: float = WAIT_TIMEOUT_S,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[WaitProgress], None] | None = None,
) -> RepoFiles:
    """Look at ``repo_id`` every ``poll_s`` seconds until the run's manifest is there.

    Returns the repository's files at the commit that holds it. A repository not
    created yet, or a hub out of reach for a while, is waited through (a notebook run
    lasts hours; the network may not hold all of them); a refused token is not.
    Raises :class:`WaitStopped` when ``should_stop`` says so, :class:`ResultsTimeout`
    after ``timeout_s``.
    """
    wanted = manifest_path(run_name)
    started = time.monotonic()
    checks = 0
    while True:
        checks += 1
        try:
            listing = client.files(repo_id)
        except HubRepoNotFound:
            note = f"{repo_id} does not exist yet (or this token cannot read it)."
        except HubUnreachable as e:
            note = str(e)
        else:
            if listing.file(wanted) is not None:
                return listing
            note = f"No results of {run_name} in {repo_id} yet."
        waited = time.monotonic() - started
        if progress is not None:
            progress(WaitProgress(repo_id, run_name, checks, waited, note))
        if waited + poll_s > timeout_s:
            raise ResultsTimeout(
                f"The results of {run_name} did not reach {repo_id} in "
                f"{timeout_s / 3600:.1f} h: check the notebook's output (its last cell pushes "
                "them), then wait again."
            )
        if _sleep(poll_s, should_stop):
            raise WaitStopped(f"Stopped waiting for the results of {run_name} in {repo_id}.")


def _sleep(seconds: float, should_stop: Callable[[], bool] | None) -> bool:
    """Sleep ``seconds``, looking at ``should_stop`` every 0.2 s; True when it said stop."""
    end = time.monotonic() + seconds
    while True:
        if should_stop is not None and should_stop():
            return True
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, 0.2))


# -- pulling a run's results --------------------------------------------------------------
def pull_results(
    client: HubClient,
    repo_id: str,
    run_name: str,
    into: Path,
    *,
    revision: str = "main",
    journal_dir: Path | None = None,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """The run's tuned model folder, downloaded from ``repo_id`` and checked: ``into/<model>``.

    Every file the manifest lists is downloaded with :func:`download_file` (resumable,
    into the hub cache; ``journal_dir`` lists a paused one), all at the commit the
    manifest was read from, and checked against the manifest's sha256. The folder is
    assembled beside its final place and renamed when whole: on any failure nothing is
    left in ``into``. Raises :class:`ResultsNotFound` when the run is not in the repo,
    :class:`~core.colab.errors.DamagedResults` when a file does not match, and the
    downloader's errors (:class:`~core.errors.DownloadCorrupt`,
    :class:`~core.errors.DownloadCancelled`, …) as they are.
    """
    listing = client.files(repo_id, revision)
    wanted = manifest_path(run_name)
    if listing.file(wanted) is None:
        raise ResultsNotFound(
            f"{repo_id} holds no results of {run_name}: wait until the notebook's last cell "
            "has pushed them, or check the repo it pushes to."
        )

    def fetch(path: str) -> Path:
        return download_file(
            client,
            repo_id,
            path,
            revision=listing.commit,
            progress=progress,
            cancel=cancel,
            journal_dir=journal_dir,
        )

    model, files = _read_manifest(fetch(wanted), run_name, repo_id)
    missing = [rel for rel in files if listing.file(results_path(run_name, rel)) is None]
    if missing:
        raise DamagedResults(
            f"The results of {run_name} in {repo_id} lack {missing[0]}: push them again."
        )
    cached = {rel: fetch(results_path(run_name, rel)) for rel in files}

    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    tmp = into / f".{run_name}.pull"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, source in cached.items():
            dest = tmp / model / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            _copy_out(source, dest)
            if file_sha256(dest) != files[rel].get("sha256"):
                raise DamagedResults(
                    f"The file {rel} of {run_name} pulled from {repo_id} is damaged (its "
                    "sha256 differs from the manifest's): push the results again."
                )
        (tmp / model).mkdir(parents=True, exist_ok=True)
        target = into / model
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp / model, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_manifest(
    path: Path, run_name: str, repo_id: str
) -> tuple[str, dict[str, dict[str, Any]]]:
    """The model's name and its files from a pushed manifest, every path kept inside."""
    damaged = DamagedResults(
        f"The manifest of {run_name} in {repo_id} cannot be read: push the results again."
    )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise damaged from e
    if not isinstance(data, dict):
        raise damaged
    model = str(data.get("model") or "")
    files = data.get("files")
    if not model or "/" in model or "\\" in model or model.startswith(".") or not files:
        raise damaged
    if not isinstance(files, dict) or not all(isinstance(f, dict) for f in files.values()):
        raise damaged
    for rel in files:
        parts = PurePosixPath(rel).parts
        if not parts or rel.startswith("/") or ".." in parts or "\\" in rel:
            raise damaged
    return model, files


def _copy_out(source: Path, dest: Path) -> None:
    """A copy of the cached blob. Not a hard link: the registry's files are rewritten in
    place now and then, and through a link that would damage the hub cache's blob."""
    shutil.copyfile(source.resolve(), dest)


def _check_run_name(run_name: str) -> None:
    if not run_name or "/" in run_name or "\\" in run_name or run_name.startswith("."):
        raise ValueError(f"{run_name!r} is not a run name: use the run's folder name.")
