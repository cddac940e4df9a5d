"""The Training tab's *Where: Colab* against the stand-in ``colab`` CLI (tests/colab_standin):
the loss streams into the chart, the model is fetched, checked, registered and reaches
the chat; Cancel releases the runtime; Export for Colab writes the notebook."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qt_helpers import IGNORED_QT_MESSAGES, settings_in
from small_docs import tiny_workspace

from core.colab import cli as colab
from core.models.installed import ModelRegistry
from core.training.runs import RunStore
from core.workspace import Workspace
from desktop.chat_tab import ChatTab
from desktop.training_tab import TrainingTab

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]

STANDIN = Path(__file__).parent / "colab_standin"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = tiny_workspace(tmp_path_factory.mktemp("gui-colab"))
    assert isinstance(workspace, Workspace)
    yield workspace
    workspace.close()


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PATH", f"{STANDIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv(colab.ENV_EXECUTABLE, raising=False)
    log = tmp_path / "standin.jsonl"
    monkeypatch.setenv("COLAB_STANDIN_LOG", str(log))
    monkeypatch.setenv("COLAB_STANDIN_REMOTE", str(tmp_path / "vm"))
    monkeypatch.setenv("COLAB_STANDIN_MODEL", "remote-tuned")
    monkeypatch.setenv("COLAB_STANDIN_SCENARIO", "success")

    def read() -> list[dict[str, Any]]:
        return [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []

    return read


@pytest.fixture
def tab(qtbot, ws: Workspace, tmp_path: Path) -> Iterator[TrainingTab]:  # type: ignore[no-untyped-def]
    widget = TrainingTab(ws, settings_in(tmp_path))
    qtbot.addWidget(widget)
    widget.resize(1300, 820)
    widget.show()
    widget.refresh()
    qtbot.waitUntil(lambda: widget.form.dataset_combo.count() > 0, timeout=60_000)
    widget.form.where_combo.setCurrentIndex(widget.form.where_combo.findData("colab"))
    yield widget
    widget.shutdown()


# ``calls`` comes before ``tab`` wherever the colab CLI is used: the stand-in is then on
# PATH before the tab first reads the CLI's status (in the background, as it opens).


def test_a_colab_run_streams_and_its_model_reaches_the_chat(
    qtbot, calls: Any, tab: TrainingTab, ws: Workspace, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    assert tab.form.preset_combo.currentData() == "gpu-standard"
    qtbot.waitUntil(lambda: "signed in" in tab.form.colab.colab_label.text(), timeout=60_000)
    tab.form.colab.gpu_combo.setCurrentIndex(tab.form.colab.gpu_combo.findData("L4"))
    tab.form.name_edit.setText("gui-colab")
    tab.form.fields.max_steps.setValue(3)
    tab.form.start_button.click()
    qtbot.waitUntil(lambda: tab.running, timeout=60_000)
    qtbot.waitUntil(lambda: not tab.running, timeout=120_000)
    assert not tab.banner.isVisible(), tab.banner.text()
    assert [s for s, _ in tab.monitor.chart.train] == [1, 2, 3]
    assert "done" in tab.monitor.status_label.text()
    entry = ModelRegistry(ws.layout).find("gui-colab")
    assert entry is not None and entry.info["trained_on"]["where"] == "colab"
    assert RunStore(ws.layout).get("gui-colab").summary()["state"] == "done"
    assert any(c.get("command") == "stop" and c["existed"] for c in calls())
    chat = ChatTab(ws, settings_in(tmp_path))
    qtbot.addWidget(chat)
    assert chat.model_combo.findData("gui-colab") > 0


def test_cancel_releases_the_runtime_and_a_refusal_is_a_sentence(
    qtbot, calls: Any, tab: TrainingTab, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLAB_STANDIN_SCENARIO", "slow")
    tab.form.name_edit.setText("gui-colab-cancel")
    tab.form.start_button.click()
    qtbot.waitUntil(lambda: len(tab.monitor.chart.train) >= 1, timeout=60_000)
    tab.form.cancel_button.click()
    qtbot.waitUntil(lambda: not tab.running, timeout=60_000)
    assert "cancelled" in tab.monitor.status_label.text()
    assert any(c.get("command") == "stop" and c["existed"] for c in calls())

    monkeypatch.setenv("COLAB_STANDIN_SCENARIO", "quota")
    tab.form.name_edit.setText("gui-colab-quota")
    tab.form.start_button.click()
    qtbot.waitUntil(lambda: tab.running, timeout=60_000)
    qtbot.waitUntil(lambda: not tab.running, timeout=60_000)
    assert tab.banner.isVisible() and "refused" in tab.banner.text().lower()


def test_export_for_colab_writes_the_notebook(qtbot, tab: TrainingTab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "export"
    with qtbot.waitSignal(tab.status_message, timeout=30_000):
        tab.form.colab.export_to(out)
    assert (out / "train.ipynb").is_file() and (out / "tiny.examples.jsonl").is_file()


def test_fetch_registers_a_run_a_notebook_pushed_by_hand(
    qtbot, tab: TrainingTab, ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from huggingface_hub import constants

    from core.colab.hub_results import push_results
    from core.models.hub import HubClient
    from tests.hub_server import TOKEN, HubServer

    model = tmp_path / "remote-model"
    model.mkdir()
    (model / "adapter.gguf").write_bytes(b"GGUF" + os.urandom(2048))
    (model / "model.json").write_text(json.dumps({"base": {"reference": "default"}}))
    with HubServer() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        push_results(HubClient(hub.url, TOKEN, tmp_path / "c2"), model, "me/runs", "by-hand")
        tab.form.colab.push_repo_edit.setText("me/runs")
        with qtbot.waitSignal(tab.models_changed, timeout=30_000):
            tab.form.colab.fetch("me/runs", "by-hand")
    entry = ModelRegistry(ws.layout).find("by-hand")
    assert entry is not None and entry.info["trained_on"]["where"] == "colab"


@pytest.mark.model
def test_a_real_notebook_run_on_the_standin_vm_answers_in_the_chat(
    qtbot,
    calls: Any,
    tab: TrainingTab,
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # type: ignore[no-untyped-def]
    """The stand-in runs the notebook's cells for real (CPU flag), as the VM would: the
    tuned model that comes back is a real one, and it answers."""
    import sys

    from core.cli import main as cli_main

    monkeypatch.setenv("COLAB_STANDIN_SCENARIO", "execute")
    monkeypatch.setenv("COLAB_STANDIN_PYTHON", sys.executable)
    tab.form.preset_combo.setCurrentIndex(tab.form.preset_combo.findData("cpu-quick"))
    tab.form.name_edit.setText("gui-colab-real")
    tab.form.fields.max_steps.setValue(2)
    tab.form.fields.batch_size.setValue(1)
    tab.form.fields.eval_every.setValue(0)
    tab.form.fields.checkpoint_every.setValue(0)
    for kind, box in tab.form.fields.export_boxes.items():
        box.setChecked(kind == "lora")
    tab.form.start_button.click()
    qtbot.waitUntil(lambda: tab.running, timeout=60_000)
    qtbot.waitUntil(lambda: not tab.running, timeout=480_000)
    assert not tab.banner.isVisible(), tab.banner.text()
    assert [s for s, _ in tab.monitor.chart.train] == [1, 2]
    entry = ModelRegistry(ws.layout).find("gui-colab-real")
    assert entry is not None and "lora" in entry.variants
    ws.release("gui-colab-real")
    capsys.readouterr()
    code = cli_main(
        ["--data-dir", str(ws.layout.root), "ask", "--mode", "closed", "--json",
         "--model", "gui-colab-real", "Say hello."]
    )  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["answer"].strip()
