"""Remote training on Colab: the generated notebook run for real on the CPU, and the CLI
wrapper against a stand-in ``colab`` that follows the real CLI's interface
(google-colab-cli 0.7.5) and plays back scripted runs.

The stand-in is put first on PATH, so :func:`core.colab.cli.find_colab` finds it
the way it finds the real one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.colab import cli, results, runtime
from core.colab.errors import DamagedResults, NotebookError, UnknownGpu
from core.colab.job import CPU_TEST_ENV
from core.colab.manifest import file_sha256
from core.colab.notebook import build_notebook, write_export
from core.colab.sources import bundled_sources
from core.paths import DataLayout
from core.training.events import Done, Log, Started, Step, WorkerEvent, parse_event
from core.training.spec import TrainSpec

STANDIN = Path(__file__).parent / "colab_standin"
SECRET = "hf_standinSECRETtoken0123456789"
PUSH_REPO = "me/colab-results"


# -- the stand-in on PATH ------------------------------------------------------------------
@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("PATH", f"{STANDIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv(cli.ENV_EXECUTABLE, raising=False)
    log = tmp_path / "standin.jsonl"
    monkeypatch.setenv("COLAB_STANDIN_LOG", str(log))
    monkeypatch.setenv("COLAB_STANDIN_REMOTE", str(tmp_path / "vm"))
    monkeypatch.setenv("COLAB_STANDIN_MODEL", "remote-tuned")

    def calls() -> list[dict[str, Any]]:
        if not log.is_file():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def scenario(name: str) -> None:
        monkeypatch.setenv("COLAB_STANDIN_SCENARIO", name)

    yield {"calls": calls, "scenario": scenario, "root": tmp_path}


def remote_job(root: Path, **changes: Any) -> runtime.RemoteJob:
    run = root / "run"
    run.mkdir(exist_ok=True)
    notebook = root / "train.ipynb"
    if not notebook.exists():
        spec = TrainSpec(dataset="tiny", max_steps=3, exports=["lora"])
        import nbformat

        nbformat.write(
            build_notebook(spec, "tiny.examples.jsonl", run_name="remote-tuned"), notebook
        )
    dataset = root / "tiny.examples.jsonl"
    dataset.write_text('{"id": "x"}\n', encoding="utf-8")
    values: dict[str, Any] = {
        "run_folder": run,
        "notebook": notebook,
        "dataset": dataset,
        "gpu": "T4",
    }
    values.update(changes)
    return runtime.RemoteJob(**values)


def stops(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if c.get("command") == "stop"]


def released_the_vm(calls: list[dict[str, Any]]) -> bool:
    """The session the run made was stopped (the stand-in saw it exist, then removed it)."""
    return any(c["existed"] for c in stops(calls))


# -- GPU names, status -----------------------------------------------------------------------
def test_gpu_names_are_checked_before_anything_is_allocated(
    standin: dict[str, Any],
) -> None:
    assert cli.check_gpu("t4") == "T4"
    assert cli.check_gpu(" a100 ") == "A100"
    for bad in ("V100", "", "A10G", "TPU"):
        with pytest.raises(UnknownGpu, match="not a Colab GPU"):
            cli.check_gpu(bad)
    with pytest.raises(UnknownGpu):
        runtime.run_remote(remote_job(standin["root"], gpu="V100"))
    # The real CLI would have quietly asked for an A100: nothing was asked at all.
    assert standin["calls"]() == []


def test_status_finds_the_cli_and_whether_it_is_signed_in(standin: dict[str, Any]) -> None:
    standin["scenario"]("success")
    found = cli.status()
    assert found.installed and found.version == "0.7.5"
    assert found.signed_in is True and found.account == "someone@example.com"
    standin["scenario"]("not_signed_in")
    found = cli.status()
    assert found.installed and found.signed_in is False
    assert "not signed in" in found.sentence and "colab sessions" in found.sentence


def test_status_says_how_to_install_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv(cli.ENV_EXECUTABLE, raising=False)
    layout = DataLayout(tmp_path / "data")
    found = cli.status(layout)
    assert not found.installed and found.executable is None
    assert "google-colab-cli" in found.sentence and "3.12" in found.sentence
    assert str(cli.colab_env(layout)) in found.sentence
    # The app's own environment for it is found without PATH.
    own = cli.colab_env(layout) / "bin" / "colab"
    own.parent.mkdir(parents=True)
    own.symlink_to(STANDIN / "colab")
    assert cli.find_colab(layout) == own
    out = runtime.run_remote(
        remote_job(tmp_path), executable=None, layout=DataLayout(tmp_path / "x")
    )
    assert out.state == "failed" and out.kind == "not_installed"


# -- scripted runs ---------------------------------------------------------------------------
def test_a_successful_run_streams_events_and_fetches_checked_results(
    standin: dict[str, Any], tmp_path: Path
) -> None:
    standin["scenario"]("success")
    events: list[WorkerEvent] = []
    job = remote_job(standin["root"], hub_token=SECRET)
    out = runtime.run_remote(job, on_event=events.append)
    assert out.state == "done", out.sentence
    assert "remote-tuned" in out.sentence and "T4" in out.sentence
    kinds = [e.event for e in events]
    assert kinds[0] == "preparing" and "started" in kinds and kinds[-1] == "done"
    assert [e.step for e in events if isinstance(e, Step)] == [1, 2, 3]
    assert out.model_dir is not None and (out.model_dir / "adapter.gguf").is_file()
    assert isinstance(out.final, Done)
    for rel, facts in (out.final.files or {}).items():
        assert file_sha256(out.model_dir / rel) == facts["sha256"]
    calls = standin["calls"]()
    new = next(c for c in calls if c.get("command") == "new")
    assert new["accelerator"] == "T4"
    assert released_the_vm(calls) and out.released
    # The token went as a file through the contents API (the CLI logs the code it sends
    # with exec, and argv is public): never on a command line, never left in the run folder.
    uploaded = next(c for c in calls if c.get("remote") == cli.REMOTE_TOKEN_FILE)
    assert not Path(uploaded["local"]).exists()
    assert (standin["root"] / "vm" / cli.REMOTE_TOKEN_FILE).read_text() == SECRET
    assert not any(SECRET in " ".join(c.get("argv", [])) for c in calls)
    assert not any(c.get("command") == "exec" and c.get("stdin") for c in calls)
    for path in job.run_folder.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    # The CLI's own long default timeout would end a training cell: ours is passed.
    run_exec = next(c for c in calls if c.get("command") == "exec" and c.get("file"))
    assert float(run_exec["timeout"]) >= 3600
    # No browser is attached: the notebook must not wait on Colab's secrets dialog.
    assert run_exec["env"] == "COTRAG_HEADLESS=1"

    from core.models.installed import ModelRegistry

    registry = ModelRegistry(DataLayout(tmp_path / "data"))
    entry = results.register_remote_model(registry, out.model_dir, gpu="T4")
    assert entry.name == "remote-tuned"
    info = json.loads((entry.folder / "model.json").read_text())
    assert info["trained_on"] == {
        "engine": "unsloth",
        "device": "cuda",
        "where": "colab",
        "gpu": "T4",
    }
    assert (entry.folder / "adapter" / "adapter_config.json").is_file()


def test_a_remote_exception_is_a_failure_although_the_cli_exits_0(
    standin: dict[str, Any],
) -> None:
    standin["scenario"]("remote_exception")
    out = runtime.run_remote(remote_job(standin["root"]))
    assert out.exit_code == 0  # what the CLI says…
    assert out.state == "failed" and out.kind == "remote_error"  # …and what happened
    assert "CUDA error: device-side assert triggered" in out.sentence
    assert out.model_dir is None
    assert released_the_vm(standin["calls"]()) and out.released


def test_a_lost_runtime(standin: dict[str, Any]) -> None:
    standin["scenario"]("runtime_lost")
    steps: list[int] = []
    out = runtime.run_remote(
        remote_job(standin["root"]),
        on_event=lambda e: steps.append(e.step) if isinstance(e, Step) else None,
    )
    assert steps == [1, 2]
    assert out.state == "failed" and out.kind == "runtime_lost"
    assert "runtime was lost" in out.sentence
    assert released_the_vm(standin["calls"]())


@pytest.mark.parametrize(
    ("scenario", "kind", "words"),
    [
        ("quota", "quota", "refused a L4 runtime"),
        ("no_gpu", "gpu_refused", "no L4 for this account"),
        ("not_signed_in", "not_signed_in", "not signed in"),
    ],
)
def test_a_refused_runtime_says_why(
    standin: dict[str, Any], scenario: str, kind: str, words: str
) -> None:
    standin["scenario"](scenario)
    out = runtime.run_remote(remote_job(standin["root"], gpu="l4"))
    assert out.state == "failed" and out.kind == kind
    assert words in out.sentence
    calls = standin["calls"]()
    assert not any(c.get("command") == "exec" for c in calls)
    assert stops(calls), "colab stop runs even when nothing was allocated"


def test_a_silent_runtime_is_stopped_by_the_watchdog(standin: dict[str, Any]) -> None:
    standin["scenario"]("hang")
    started = time.monotonic()
    out = runtime.run_remote(remote_job(standin["root"], silence_s=1.5))
    assert time.monotonic() - started < 30
    assert out.state == "failed" and out.kind == "runtime_silent"
    assert "went silent" in out.sentence
    assert released_the_vm(standin["calls"]()) and out.released


def test_cancel_stops_the_runtime_and_releases_the_vm(standin: dict[str, Any]) -> None:
    standin["scenario"]("slow")
    stop = threading.Event()

    def on_event(event: WorkerEvent) -> None:
        if isinstance(event, Step) and event.step >= 2:
            stop.set()

    started = time.monotonic()
    out = runtime.run_remote(
        remote_job(standin["root"]), on_event=on_event, should_stop=stop.is_set
    )
    assert time.monotonic() - started < 30
    assert out.state == "cancelled" and "released" in out.sentence
    assert released_the_vm(standin["calls"]()) and out.released


def test_damaged_results_are_refused(standin: dict[str, Any]) -> None:
    standin["scenario"]("corrupt")
    out = runtime.run_remote(remote_job(standin["root"]))
    assert out.state == "failed" and out.kind == "checksum"
    assert out.model_dir is None
    assert not list((standin["root"] / "run" / "remote").glob("*.tar*"))
    assert released_the_vm(standin["calls"]())


def test_a_results_archive_downloaded_by_hand_is_checked(
    standin: dict[str, Any], tmp_path: Path
) -> None:
    import io
    import tarfile

    standin["scenario"]("success")
    out = runtime.run_remote(remote_job(standin["root"]))
    archive = standin["root"] / "run" / "remote" / "remote-tuned.tar"
    assert out.state == "done" and archive.is_file()
    model = results.extract_results(archive, tmp_path / "by-hand")
    assert model.name == "remote-tuned" and (model / "adapter.gguf").is_file()
    # One byte changed in a file: refused, and nothing is left behind.
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(archive) as src, tarfile.open(damaged, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("adapter.gguf"):
                data = bytes([data[0] ^ 1]) + data[1:]
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(DamagedResults, match=r"adapter\.gguf"):
        results.extract_results(damaged, tmp_path / "refused")
    assert list((tmp_path / "refused").iterdir()) == []


# -- the notebook -----------------------------------------------------------------------------
def test_the_remote_side_takes_the_token_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.colab.cells import remote_hub_token
    from core.colab.job import TOKEN_FILE

    monkeypatch.setenv("HF_TOKEN", "")  # recorded, so the value set below is undone
    monkeypatch.delenv("HF_TOKEN")
    assert remote_hub_token(tmp_path) is None  # not on Colab: no secrets either
    (tmp_path / TOKEN_FILE).write_text(SECRET + "\n")
    assert remote_hub_token(tmp_path) == SECRET
    assert not (tmp_path / TOKEN_FILE).exists()
    assert os.environ["HF_TOKEN"] == SECRET  # for the cells (and the worker) after it
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("COTRAG_HEADLESS", "1")
    assert remote_hub_token(tmp_path) is None  # and no wait on a secrets dialog


def test_the_notebook_carries_no_token_and_needs_a_portable_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    spec = TrainSpec(dataset="tiny", exports=["lora"])
    nb = build_notebook(spec, "tiny.examples.jsonl", run_name="r1", push_repo="me/private-model")
    text = json.dumps(nb)
    assert SECRET not in text
    sources = bundled_sources()
    for needed in (
        "core/training/worker.py",
        "core/training/masking.py",
        "core/training/trainer.py",
        "core/training/finish.py",
        "core/training/events.py",
        "core/models/installed.py",
    ):
        assert needed in sources
    assert not any("desktop" in rel for rel in sources)
    with pytest.raises(NotebookError, match="this computer only"):
        build_notebook(TrainSpec(dataset="tiny", base="/some/model.gguf"), "x.jsonl", run_name="r")


@pytest.mark.model
def test_the_notebook_trains_on_the_cpu_with_nbclient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient
    from small_docs import tiny_workspace

    from core.dataset.service import datasets

    ws = tiny_workspace(tmp_path / "ws")
    try:
        dataset = datasets(ws).open("tiny")  # type: ignore[arg-type]
        spec = TrainSpec(
            dataset="tiny",
            lora_r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            learning_rate=2e-3,
            max_steps=2,
            batch_size=1,
            warmup_steps=1,
            validation_share=0.0,
            eval_every=0,
            checkpoint_every=0,
            exports=["lora"],
            load_in_4bit=True,  # the GPU preset's 4-bit, skipped by the CPU test flag
        )
        out_dir = tmp_path / "export"
        exported = write_export(out_dir, spec, dataset, "colab-cpu", push_repo=PUSH_REPO)
    finally:
        ws.close()  # type: ignore[attr-defined]
    assert exported.readme.read_text().count("HF_TOKEN") >= 1
    monkeypatch.setenv(CPU_TEST_ENV, "1")
    monkeypatch.setenv("HF_TOKEN", SECRET)
    # The notebook pushes its results to the loopback hub (LFS uploads: Xet is the real
    # hub's own storage, which the loopback one does not speak).
    from huggingface_hub import constants

    from tests.hub_server import HubServer

    hub = HubServer(tokens=(SECRET,)).start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    nb = nbformat.read(exported.notebook, as_version=4)
    try:
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(out_dir)}}
        ).execute()
        from core.colab.service import fetch_pushed_run

        pulled = fetch_pushed_run(
            DataLayout(tmp_path / "fetching"), PUSH_REPO, "colab-cpu", name="from-hub", wait=True
        )
    finally:
        hub.stop()
    assert pulled.info["trained_on"]["where"] == "colab"
    assert pulled.folder is not None
    assert (pulled.folder / "adapter.gguf").is_file()
    assert hub.repos[PUSH_REPO].private
    text = "".join(
        o.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )
    events = [e for e in map(parse_event, text.splitlines()) if e is not None]
    kinds = [e.event for e in events]
    assert "error" not in kinds, events
    assert kinds.count("done") == 1 and kinds[-1] == "done"
    started = next(e for e in events if isinstance(e, Started))
    assert started.engine == "torch" and started.device == "cpu"
    assert [e.step for e in events if isinstance(e, Step)] == [1, 2]
    # The code that ran is the copy the notebook wrote, not this checkout.
    origin = next(e.message for e in events if isinstance(e, Log) and "training code" in e.message)
    assert str(out_dir / "cotrag" / "src") in origin
    done = events[-1]
    assert isinstance(done, Done) and done.archive and done.files
    archive = out_dir / "cotrag" / done.archive
    assert file_sha256(archive) == done.archive_sha256
    assert "model.json" in done.files and done.outputs["lora"] in done.files
    assert SECRET not in json.dumps(nb)
    # The archive as a user would download it from Colab: checked, registered with lineage.
    from core.models.installed import ModelRegistry

    model_dir = results.extract_results(archive, tmp_path / "fetched")
    entry = results.register_remote_model(
        ModelRegistry(DataLayout(tmp_path / "data")), model_dir, gpu="cpu-test"
    )
    info = entry.info
    assert info["dataset"]["hash"] == file_sha256(exported.dataset)
    assert info["spec"]["max_steps"] == 2 and info["metrics"]["steps"] == 2
    assert info["trained_on"]["where"] == "colab"
    assert entry.folder is not None
    assert (entry.folder / done.outputs["lora"]).is_file()


# -- the CLI: a run on the stand-in, kept like a local run --------------------------------------
def test_cotrag_train_where_colab_registers_the_model_and_keeps_the_run(
    standin: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from small_docs import tiny_workspace

    from core.cli import main as cli_main
    from core.models.installed import ModelRegistry
    from core.training.runs import RunStore

    ws = tiny_workspace(tmp_path / "ws")
    ws.close()  # type: ignore[attr-defined]
    root = ws.layout.root  # type: ignore[attr-defined]
    data = str(root)
    standin["scenario"]("success")
    base = ["--data-dir", data, "train", "--dataset", "tiny", "--where", "colab"]
    assert cli_main([*base, "--gpu", "V100", "--name", "bad-gpu"]) == 1
    assert "V100" in capsys.readouterr().err
    assert cli_main([*base, "--gpu", "L4", "--name", "remote-run", "--set", "max_steps=3"]) == 0
    err = capsys.readouterr().err
    assert "Colab L4" in err and "cotrag ask --model remote-run" in err
    layout = DataLayout(root)
    entry = ModelRegistry(layout).find("remote-run")
    assert entry is not None and entry.info["trained_on"]["gpu"] == "L4"
    run = RunStore(layout).get("remote-run")
    summary = run.summary()
    assert (summary["state"], summary["model"], summary["step"]) == ("done", "remote-run", 3)
    assert (run.folder / "colab-job" / "train.ipynb").is_file()
    assert released_the_vm(standin["calls"]())

    standin["scenario"]("quota")
    assert cli_main([*base, "--name", "refused"]) == 1
    assert "refused" in capsys.readouterr().err.lower()
    assert RunStore(layout).get("refused").state == "failed"

    out = tmp_path / "by-hand"
    assert cli_main(["--data-dir", data, "train", "export-colab", "--dataset", "tiny",
                     "--out", str(out)]) == 0  # fmt: skip
    assert (out / "train.ipynb").is_file() and (out / "tiny.examples.jsonl").is_file()


def test_cotrag_train_fetch_pulls_a_run_pushed_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A notebook exported and run by hand pushed its results; `train fetch` registers them."""
    from huggingface_hub import constants

    from core.cli import main as cli_main
    from core.colab.hub_results import push_results
    from core.models.hub import HubClient
    from core.models.installed import ModelRegistry
    from tests.hub_server import HubServer

    model = tmp_path / "made-remotely"
    model.mkdir()
    (model / "adapter.gguf").write_bytes(os.urandom(4096))
    (model / "model.json").write_text(
        json.dumps({"name": "hand-run", "base": {"reference": "default"}, "trained_on": {}})
    )
    with HubServer(tokens=(SECRET,)) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", SECRET)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        push_results(HubClient(hub.url, SECRET, tmp_path / "c2"), model, PUSH_REPO, "hand-run")
        data = tmp_path / "data"
        assert (
            cli_main(["--data-dir", str(data), "train", "fetch", "hand-run", "--repo", PUSH_REPO])
            == 0
        )
    assert "Registered hand-run" in capsys.readouterr().err
    entry = ModelRegistry(DataLayout(data)).find("hand-run")
    assert entry is not None and entry.folder is not None
    assert (entry.folder / "adapter.gguf").read_bytes() == (model / "adapter.gguf").read_bytes()
