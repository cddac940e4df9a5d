"""The model registry, pulls from a (loopback) hub, and `cotrag models`.

The hub is tests/hub_server.py on 127.0.0.1, spoken to by the real huggingface_hub
client and our downloader; the pulled GGUF is the bundled model served as a repository
file, so the test can chat with what it pulled.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from core.cli import main as cli_main
from core.config import GenerationConfig
from core.errors import CotragError, DownloadCancelled, ModelNotFound
from core.llm.engines import default_model_path
from core.models import service as models_service
from core.models.client import hub_client
from core.models.facts import inspect_model
from core.models.installed import BUNDLED_LICENCE, ModelEntry, ModelRegistry
from core.models.pull import bytes_on_disk, pending_pulls, plan_pull, run_pull
from core.workspace import Workspace
from tests.hub_server import HubServer, Repo

CARD = b"---\nlicense: apache-2.0\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n---\n# smol\n"


def folder_repo(repo_id: str = "org/tiny-hf") -> Repo:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "torch_dtype": "float32",
    }
    return Repo.of(
        repo_id,
        {
            "config.json": json.dumps(config).encode(),
            "tokenizer.json": b'{"version": "1.0"}',
            "tokenizer_config.json": json.dumps({"chat_template": "{{ messages }}"}).encode(),
            "model.safetensors": bytes(range(256)) * 4096,  # 1 MB
            "pytorch_model.bin": b"\0" * 2048,
            "onnx/model.onnx": b"\0" * 4096,
            "README.md": CARD,
        },
        library="transformers",
        license="apache-2.0",
    )


@pytest.fixture(scope="module")
def hub() -> HubServer:
    gguf = Repo.of(
        "org/smol-GGUF",
        {
            "README.md": CARD,
            "smol.Q4_1.gguf": default_model_path(),
            "smol.F16.gguf": b"GGUF" + b"\0" * 4096,
        },
        library="gguf",
        tags=["gguf", "base_model:HuggingFaceTB/SmolLM2-135M-Instruct"],
        license="apache-2.0",
        downloads=50,
    )
    with HubServer([gguf, folder_repo()]) as server:
        yield server


@pytest.fixture
def env(hub: HubServer, tmp_path: Path, use_hub: Callable[[HubServer], Path]) -> Path:
    use_hub(hub)
    return tmp_path / "data"


def run_cli(data: Path, *args: str) -> int:
    return cli_main(["--data-dir", str(data), *args])


# -- facts and the registry ---------------------------------------------------------


def test_facts_of_the_bundled_gguf_and_a_folder(tmp_path: Path) -> None:
    facts = inspect_model(default_model_path())
    assert (facts.format, facts.quantization, facts.chat_template) == ("gguf", "Q4_1", True)
    assert facts.architecture == "llama"
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["X"], "torch_dtype": "bfloat16"}')
    (folder / "README.md").write_text("---\nlicense: mit\n---\n")
    facts = inspect_model(folder)
    assert (facts.format, facts.licence, facts.chat_template) == ("hf", "mit", False)
    (folder / "config.json").write_text('{"quantization": {"bits": 4, "group_size": 64}}')
    assert inspect_model(folder).format == "mlx"
    assert inspect_model(folder).quantization == "4bit"


def test_added_file_is_listed_resolved_and_removed_without_touching_it(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "data")
    registry = ModelRegistry(ws.layout)
    entry = registry.add_local(default_model_path())
    assert entry.kind == "added" and entry.name == "SmolLM2-135M-Instruct.Q4_1"
    assert registry.add_local(default_model_path()).name == entry.name  # same file: same entry
    assert [e.name for e in registry.list()] == ["default", entry.name]
    assert ws.model_path(entry.name) == default_model_path()
    assert entry.licence == "apache-2.0" and entry.quantization == "Q4_1"  # from the header
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(CotragError, match="not a model"):
        registry.add_local(junk)
    assert "stays" in registry.delete(entry.name)
    assert default_model_path().is_file()
    assert registry.find(entry.name) is None


def test_a_model_whose_file_went_away_says_so(tmp_path: Path) -> None:
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(default_model_path().read_bytes()[: 1 << 20])
    ws = Workspace(tmp_path / "data")
    name = ModelRegistry(ws.layout).add_local(copy).name
    copy.unlink()
    entry = ModelRegistry(ws.layout).find(name)
    assert entry is not None and not entry.present
    with pytest.raises(ModelNotFound, match="is gone"):
        ws.model_path(name)


# -- the hub ------------------------------------------------------------------------


def test_search_files_pull_list_default_chat_delete(
    env: Path, hub: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(env, "models", "search", "smol") == 0
    assert "org/smol-GGUF" in capsys.readouterr().out
    assert run_cli(env, "models", "files", "org/smol-GGUF") == 0
    out = capsys.readouterr().out
    assert "smol.Q4_1.gguf" in out and "Q4_1" in out and "apache-2.0" in out

    assert run_cli(env, "models", "pull", "org/smol-GGUF") == 0  # picks Q4_1 over F16
    out = capsys.readouterr().out
    assert "Q4_1" in out and "Pulled smol.Q4_1" in out
    assert hub.bytes_served("org/smol-GGUF", "smol.F16.gguf") == 0

    assert run_cli(env, "models", "list", "--json") == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    pulled = listed["smol.Q4_1"]
    assert (pulled["kind"], pulled["format"], pulled["quantization"]) == ("pulled", "gguf", "Q4_1")
    assert pulled["licence"] == "apache-2.0" and pulled["chat_template"]
    assert pulled["lineage"].startswith("org/smol-GGUF@")
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in pulled["lineage"]
    # Into the standard cache: huggingface_hub itself finds the file offline.
    from huggingface_hub import hf_hub_download

    cached = hf_hub_download(
        "org/smol-GGUF", "smol.Q4_1.gguf", cache_dir=str(env.parent / "hub-cache"),
        local_files_only=True,
    )  # fmt: skip
    assert Path(cached).read_bytes()[:4] == b"GGUF"
    assert Path(cached).stat().st_size == default_model_path().stat().st_size

    assert run_cli(env, "models", "default", "smol.Q4_1") == 0
    ws = Workspace(env)
    assert ws.config.model == "smol.Q4_1"
    assert ws.model_path() == Path(pulled["reference"])
    ws.close()
    capsys.readouterr()
    assert run_cli(env, "ask", "--mode", "closed", "--json", "Say hello.") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["answer"].strip()

    assert run_cli(env, "models", "delete", "smol.Q4_1", "--yes") == 0
    out = capsys.readouterr().out
    assert "MB freed" in out and "bundled model again" in out
    assert not Path(cached).exists()
    assert Workspace(env).config.model == ""


def test_folder_pull_takes_one_weight_format_and_delete_spares_shared_blobs(
    env: Path, hub: HubServer
) -> None:
    client = hub_client()
    plan = plan_pull(client, "org/tiny-hf")
    assert plan.kind == "folder"
    assert plan.files[0] == "model.safetensors"
    assert "pytorch_model.bin" not in plan.files and "onnx/model.onnx" not in plan.files
    assert {"config.json", "tokenizer.json", "README.md"} <= set(plan.files)
    ws = Workspace(env)
    entry = run_pull(client, plan, ws.layout)
    assert (entry.kind, entry.format, entry.licence) == ("pulled", "hf", "apache-2.0")
    assert entry.chat_template and entry.merged_dir == entry.path
    assert ws.model_path(entry.name) == entry.path
    # Another revision's snapshot links the same config blob: deleting keeps that blob.
    assert entry.path is not None
    config_link = entry.path / "config.json"
    blob = config_link.resolve()
    other = entry.path.parent / ("0" * 40)
    other.mkdir()
    (other / "config.json").symlink_to(Path("..") / ".." / "blobs" / blob.name)
    # A file another pull (or tool) put in the same snapshot is not this model's to delete.
    stranger = entry.path / "onnx" / "model.onnx"
    stranger.parent.mkdir()
    stranger.write_bytes(b"not ours")
    ModelRegistry(ws.layout).delete(entry.name)
    assert blob.is_file()
    assert not (entry.path / "model.safetensors").exists()
    assert stranger.is_file()


def test_pull_paused_then_resumed_lists_what_is_on_disk(env: Path, hub: HubServer) -> None:
    client = hub_client()
    ws = Workspace(env)
    plan = plan_pull(client, "org/smol-GGUF", "smol.Q4_1.gguf")
    size = plan.total_bytes
    hub.faults.throttle_bps = 20_000_000
    cancel = threading.Event()

    def progress(p: object) -> None:
        if getattr(p, "done", 0) > size // 3:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        run_pull(client, plan, ws.layout, progress=progress, cancel=cancel)
    [pending] = pending_pulls(ws.layout)
    assert pending.files == ["smol.Q4_1.gguf"]
    on_disk = bytes_on_disk(client, pending, ws.layout)
    assert size // 3 <= on_disk < size
    hub.faults.throttle_bps = None
    served_before = hub.bytes_served("org/smol-GGUF", "smol.Q4_1.gguf")
    entry = run_pull(client, pending, ws.layout)
    refetched = hub.bytes_served("org/smol-GGUF", "smol.Q4_1.gguf") - served_before
    assert refetched <= size - on_disk + size // 100
    assert entry.present and pending_pulls(ws.layout) == []


def test_the_service_resumes_a_paused_pull_and_discards_one(
    env: Path, hub: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    client = hub_client()
    ws = Workspace(env)
    prepared = models_service.prepare_pull(ws, client, "org/smol-GGUF", "smol.Q4_1.gguf")
    assert not prepared.resumed and prepared.plan.files == ["smol.Q4_1.gguf"]
    size = prepared.plan.total_bytes
    hub.faults.throttle_bps = 20_000_000
    cancel = threading.Event()

    def progress(p: object) -> None:
        if getattr(p, "done", 0) > size // 4:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        models_service.run(ws, client, prepared.plan, progress=progress, cancel=cancel)
    [paused] = models_service.paused(ws, hub_client)
    assert size // 4 <= paused.on_disk < size
    again = models_service.prepare_pull(ws, client, "org/smol-GGUF", name="mine")
    assert again.resumed and again.plan.id == prepared.plan.id and again.plan.name == "mine"
    assert models_service.resume_command(again.plan).endswith("org/smol-GGUF smol.Q4_1.gguf")
    assert models_service.discard_paused(ws, client, "org/smol-GGUF") == 1
    assert models_service.paused(ws, hub_client) == []
    assert not list((env.parent / "hub-cache").rglob("*.incomplete"))
    hub.faults.reset()
    assert run_cli(env, "models", "pull", "org/smol-GGUF", "--discard") == 1
    assert "No paused pull of org/smol-GGUF" in capsys.readouterr().err


def test_deleting_the_default_model_makes_the_bundled_one_the_default(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "data")
    entry = models_service.add_local(ws, default_model_path(), "mine")
    models_service.set_default(ws, entry.name)
    assert Workspace(tmp_path / "data").config.model == "mine"
    assert models_service.default_name(ws) == "mine"
    deleted = models_service.delete(ws, "mine")
    assert deleted.was_default and "stays" in deleted.message
    assert Workspace(tmp_path / "data").config.model == ""
    with pytest.raises(ModelNotFound, match="No model named"):
        models_service.delete(ws, "mine")
    with pytest.raises(CotragError, match="cannot be deleted"):
        models_service.delete(ws, "default")


def test_missing_repo_and_file_are_sentences(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(env, "models", "pull", "org/nothing") == 1
    assert "org/nothing" in capsys.readouterr().err
    assert run_cli(env, "models", "pull", "org/smol-GGUF", "smol.Q9.gguf") == 1
    err = capsys.readouterr().err
    assert "no file smol.Q9.gguf" in err and "smol.Q4_1.gguf" in err
    # A name that is taken is refused before anything is downloaded.
    assert run_cli(env, "models", "add", str(default_model_path()), "--name", "mine") == 0
    assert run_cli(env, "models", "pull", "org/smol-GGUF", "--name", "mine") == 1
    assert "named 'mine' exists" in capsys.readouterr().err
    assert pending_pulls(Workspace(env).layout) == []


# -- loaded models follow the settings ---------------------------------------------------


@pytest.mark.model
def test_a_loaded_model_is_reloaded_when_the_context_size_changes(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "data")
    ws.config.generation = GenerationConfig(n_ctx=1024, n_threads=1)
    first = ws.backend()
    assert first.n_ctx == 1024  # type: ignore[attr-defined]
    ws.config.generation = GenerationConfig(n_ctx=2048, n_threads=1, temperature=0.5)
    second = ws.backend()
    assert second is not first and second.n_ctx == 2048  # type: ignore[attr-defined]
    assert not first.is_loaded  # type: ignore[attr-defined]  # the old one was freed
    ws.config.generation = GenerationConfig(n_ctx=2048, n_threads=1, temperature=0.1)
    assert ws.backend() is second  # a sampling setting needs no reload
    assert second.config.temperature == 0.1  # type: ignore[attr-defined]
    ws.close()


def test_a_model_tuned_from_the_bundled_one_has_its_licence() -> None:
    base = {"reference": "default", "name": "SmolLM2-135M-Instruct.Q4_1"}
    entry = ModelEntry("walk-run", "tuned", info={"tuned": True, "base": base})
    assert entry.licence == BUNDLED_LICENCE
