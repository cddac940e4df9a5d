"""Pushing to and pulling a Colab run's results from the hub, against the loopback hub.

The real ``huggingface_hub`` client creates the repo and commits (preupload, LFS batch,
the PUT of each object, the NDJSON commit) to :mod:`tests.hub_server`; the pull goes
through our resumable downloader, and the folder it makes is registered as a model.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants

from core.colab.errors import DamagedResults
from core.colab.hub_results import (
    PushRefused,
    ResultsNotFound,
    ResultsTimeout,
    WaitProgress,
    WaitStopped,
    make_manifest,
    manifest_path,
    pull_results,
    push_folder,
    push_results,
    results_path,
    wait_for_results,
)
from core.colab.manifest import MANIFEST_NAME
from core.colab.results import register_remote_model
from core.errors import DownloadCorrupt, HubRepoNotFound
from core.models.download import download_file
from core.models.hub import HubClient
from core.models.installed import ModelRegistry
from core.paths import DataLayout
from tests.hub_server import TOKEN, Faults, HubServer

REPO = "me/cotrag-results"
RUN = "run-1"
MODEL = "tuned-x"
WEIGHTS = "adapter/adapter_model.safetensors"
READ_ONLY = "hf_read_only_token"


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    # conftest switches the hub library offline; this file talks to a loopback hub only.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # The loopback hub has no Xet storage: the library then uploads through LFS, as it
    # does wherever hf_xet is not installed.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer(tokens=(TOKEN, READ_ONLY), writers=(TOKEN,)) as server:
        yield server


def client(hub: HubServer, tmp_path: Path, token: str | None = TOKEN) -> HubClient:
    return HubClient(endpoint=hub.url, token=token, cache_dir=tmp_path / "hub-cache")


def tuned_model(folder: Path, seed: int = 1) -> Path:
    """A tuned model folder as the notebook packs it: model.json, an adapter, a log."""
    folder.mkdir(parents=True)
    info = {
        "name": MODEL,
        "base": {"reference": "hub:org/base"},
        "trained_on": {"engine": "unsloth", "device": "cuda"},
        "metrics": {"steps": 2},
    }
    (folder / "model.json").write_text(json.dumps(info), encoding="utf-8")
    (folder / "adapter").mkdir()
    (folder / "adapter" / "adapter_config.json").write_text('{"r": 8}', encoding="utf-8")
    (folder / WEIGHTS).write_bytes(hashlib.shake_256(bytes([seed])).digest(300_000))
    (folder / "train.log").write_text("step 1\nstep 2\n", encoding="utf-8")
    return folder


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- pushing ------------------------------------------------------------------------------
def test_a_push_creates_a_private_repo_and_every_change_is_a_new_commit(
    hub: HubServer, tmp_path: Path
) -> None:
    model = tuned_model(tmp_path / MODEL)
    me = client(hub, tmp_path)
    first = push_folder(me, model, REPO)
    assert hub.repos[REPO].private
    assert hub.repos[REPO].commit == first
    with pytest.raises(HubRepoNotFound):
        client(hub, tmp_path, token=None).files(REPO)  # private: nobody else sees it
    listed = {f.path: f for f in me.files(REPO).files}
    assert set(listed) == set(digests(model))
    assert listed[WEIGHTS].sha256 == digests(model)[WEIGHTS]  # an LFS file
    assert hub.bytes_received(REPO, WEIGHTS) == 300_000
    # The objects go to the storage host without the token, as to S3.
    puts = [r for r in hub.requests if r.method == "PUT"]
    assert puts and all(r.host.startswith("localhost") and r.authorization is None for r in puts)

    (model / "train.log").write_text("step 1\nstep 2\nstep 3\n", encoding="utf-8")
    second = push_folder(me, model, REPO, message="more steps")
    assert second != first and hub.repos[REPO].messages[-1] == "more steps"
    assert hub.bytes_received(REPO, WEIGHTS) == 300_000  # unchanged: not sent again
    fetched = download_file(me, REPO, "train.log")
    assert fetched.read_text(encoding="utf-8").endswith("step 3\n")
    assert fetched.parent.name == second  # the snapshot of the new commit


def test_pushing_needs_a_token_that_may_write(hub: HubServer, tmp_path: Path) -> None:
    model = tuned_model(tmp_path / MODEL)
    with pytest.raises(PushRefused, match="needs a Hugging Face access token"):
        push_folder(client(hub, tmp_path, token=None), model, REPO)
    assert not hub.requests  # refused before asking the hub

    reader = client(hub, tmp_path, token=READ_ONLY)
    with pytest.raises(PushRefused, match="write permission"):
        push_folder(reader, model, REPO)  # may not create it
    assert REPO not in hub.repos
    push_folder(client(hub, tmp_path), model, REPO)
    commit = hub.repos[REPO].commit
    with pytest.raises(PushRefused, match="write permission"):
        push_folder(reader, model, REPO, message="overwrite")  # may read, not commit
    assert hub.repos[REPO].commit == commit


# -- waiting for a run's results ----------------------------------------------------------
def test_wait_for_results_sees_them_arrive_from_the_notebook(
    hub: HubServer, tmp_path: Path
) -> None:
    model = tuned_model(tmp_path / MODEL)
    pushed: list[str] = []

    def notebook() -> None:  # the remote push cell, some time later
        time.sleep(0.6)
        pushed.append(push_results(client(hub, tmp_path), model, REPO, RUN, model=MODEL))

    seen: list[WaitProgress] = []
    pusher = threading.Thread(target=notebook)
    pusher.start()
    try:
        listing = wait_for_results(
            client(hub, tmp_path), REPO, RUN, poll_s=0.1, timeout_s=20, progress=seen.append
        )
    finally:
        pusher.join()
    assert listing.commit == pushed[0]
    assert listing.file(manifest_path(RUN)) is not None
    assert listing.file(results_path(RUN, WEIGHTS)) is not None  # in the same commit
    assert seen and "does not exist yet" in seen[0].note
    assert [p.checks for p in seen] == list(range(1, len(seen) + 1))


def test_waiting_stops_when_asked_and_gives_up_in_time(hub: HubServer, tmp_path: Path) -> None:
    me = client(hub, tmp_path)
    push_folder(me, tuned_model(tmp_path / MODEL), REPO)  # another run's files only
    asked = time.monotonic() + 0.3
    t0 = time.monotonic()
    with pytest.raises(WaitStopped):
        wait_for_results(me, REPO, RUN, poll_s=30, should_stop=lambda: time.monotonic() > asked)
    assert time.monotonic() - t0 < 2  # not a whole poll interval
    with pytest.raises(ResultsTimeout, match="check the notebook's output"):
        wait_for_results(me, REPO, RUN, poll_s=0.1, timeout_s=0.3)


# -- pulling a run's results --------------------------------------------------------------
def test_pull_results_rebuilds_the_model_and_it_registers(hub: HubServer, tmp_path: Path) -> None:
    model = tuned_model(tmp_path / "colab" / MODEL)
    me = client(hub, tmp_path)
    push_results(me, model, REPO, RUN, model=MODEL)
    push_results(me, tuned_model(tmp_path / "other" / MODEL, seed=2), REPO, "run-2")
    into = tmp_path / "run" / "remote"
    pulled = pull_results(me, REPO, RUN, into, journal_dir=tmp_path / "journal")
    assert pulled == into / MODEL
    assert digests(pulled) == digests(model)  # run-2's files did not mix in
    assert [p.name for p in into.iterdir()] == [MODEL]  # no temp folder left
    cached = me.cache_dir / "models--me--cotrag-results" / "snapshots"
    assert any(p.name == WEIGHTS.rsplit("/", 1)[1] for p in cached.rglob("*"))
    assert not list((tmp_path / "journal").glob("*.json"))  # nothing paused

    entry = register_remote_model(
        ModelRegistry(DataLayout(tmp_path / "data")), pulled, name=RUN, gpu="T4"
    )
    assert entry.name == RUN and entry.folder is not None
    assert (entry.folder / WEIGHTS).read_bytes() == (model / WEIGHTS).read_bytes()
    assert entry.info["trained_on"] == {
        "engine": "unsloth",
        "device": "cuda",
        "where": "colab",
        "gpu": "T4",
    }
    # Pulled again (another computer's cache would resume it): from the cache this time.
    served = hub.bytes_served(REPO, results_path(RUN, WEIGHTS))
    again = pull_results(me, REPO, RUN, tmp_path / "again")
    assert digests(again) == digests(model)
    assert hub.bytes_served(REPO, results_path(RUN, WEIGHTS)) == served


def test_a_byte_damaged_on_the_way_fails_the_pull_and_leaves_nothing(
    hub: HubServer, tmp_path: Path
) -> None:
    model = tuned_model(tmp_path / MODEL)
    me = client(hub, tmp_path)
    push_results(me, model, REPO, RUN, model=MODEL)
    into = tmp_path / "remote"
    hub.faults = Faults(corrupt_at=1234, corrupt_times=-1, only=results_path(RUN, WEIGHTS))
    with pytest.raises(DownloadCorrupt):
        pull_results(me, REPO, RUN, into)
    assert not into.exists() or not list(into.iterdir())
    assert not list(me.cache_dir.rglob("*.incomplete"))
    # Damaged once only: the downloader fetches it again and the pull completes.
    hub.faults = Faults(corrupt_at=1234, corrupt_times=1, only=results_path(RUN, WEIGHTS))
    assert digests(pull_results(me, REPO, RUN, into)) == digests(model)


def test_results_that_disagree_with_their_manifest_are_damaged(
    hub: HubServer, tmp_path: Path
) -> None:
    model = tuned_model(tmp_path / MODEL)
    me = client(hub, tmp_path)
    into = tmp_path / "remote"
    with pytest.raises(HubRepoNotFound):
        pull_results(me, REPO, RUN, into)
    push_folder(me, model, REPO)  # files, but no manifest: not a finished run
    with pytest.raises(ResultsNotFound, match="holds no results of run-1"):
        pull_results(me, REPO, RUN, into)

    manifest = make_manifest(model, MODEL)
    manifest["files"][WEIGHTS]["sha256"] = "0" * 64  # damaged before it was pushed
    extra = {MANIFEST_NAME: json.dumps(manifest).encode()}
    push_folder(me, model, REPO, path_in_repo=RUN, extra=extra)
    with pytest.raises(DamagedResults, match=f"The file {WEIGHTS} of run-1"):
        pull_results(me, REPO, RUN, into)
    assert not list(into.iterdir())

    manifest = make_manifest(model, MODEL)
    manifest["files"]["adapter/missing.bin"] = {"size": 1, "sha256": "0" * 64}
    extra = {MANIFEST_NAME: json.dumps(manifest).encode()}
    push_folder(me, model, REPO, path_in_repo=RUN, extra=extra)
    with pytest.raises(DamagedResults, match=r"lack adapter/missing\.bin"):
        pull_results(me, REPO, RUN, into)
    assert not list(into.iterdir())
