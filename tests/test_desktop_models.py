"""The Models tab against the loopback hub: search, files, a pull with progress, a pull
paused by closing the app and resumed by a new one, Cancel, default, delete, and the
migration of models once added by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from qt_helpers import IGNORED_QT_MESSAGES, settings_in

from core.llm.engines import default_model_path
from core.models.installed import ModelRegistry
from core.models.pull import pending_pulls
from core.workspace import Workspace
from desktop import models_installed
from desktop.chat_tab import ChatTab
from desktop.models_tab import ModelsTab
from tests.hub_server import HubServer, Repo

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]

FILE = "smol.Q4_1.gguf"


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    repo = Repo.of(
        "org/smol-GGUF",
        {"README.md": b"---\nlicense: apache-2.0\n---\n", FILE: default_model_path()},
        library="gguf",
        tags=["gguf"],
        license="apache-2.0",
    )
    other = Repo.of("org/other-model", {"config.json": b"{}"}, library="transformers")
    with HubServer([repo, other]) as server:
        yield server


@pytest.fixture
def ws(
    hub: HubServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    use_hub: Callable[[HubServer], Path],
) -> Iterator[Workspace]:
    use_hub(hub)
    monkeypatch.setattr(models_installed, "confirm_destructive", lambda *a, **k: True)
    monkeypatch.setattr("desktop.download_row.confirm_destructive", lambda *a, **k: True)
    workspace = Workspace(tmp_path / "data")
    yield workspace
    workspace.close()


def make_tab(qtbot, ws: Workspace, folder: Path) -> ModelsTab:  # type: ignore[no-untyped-def]
    tab = ModelsTab(ws, settings_in(folder))
    qtbot.addWidget(tab)
    tab.resize(1200, 820)
    tab.show()
    return tab


def search_and_pick(qtbot, tab: ModelsTab) -> None:  # type: ignore[no-untyped-def]
    tab.query.setText("smol")
    tab.search_button.click()
    qtbot.waitUntil(lambda: tab.results.rowCount() == 1, timeout=10_000)
    assert tab.results.item(0, 0).text() == "org/smol-GGUF"
    tab.results.selectRow(0)
    qtbot.waitUntil(lambda: tab.files.rowCount() == 2, timeout=10_000)
    row = next(r for r in range(tab.files.rowCount()) if tab.files.item(r, 0).text() == FILE)
    assert tab.files.item(row, 2).text() == "Q4_1"
    assert tab.files.item(row, 3).text() == "yes"
    assert "apache-2.0" in tab.repo_label.text()
    assert not tab.pull_button.isEnabled()  # a GGUF repository: pick a file first
    tab.files.selectRow(row)
    assert tab.pull_button.isEnabled()


def test_search_pull_and_chat_picker(qtbot, ws: Workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tab = make_tab(qtbot, ws, tmp_path)
    assert tab.table.rowCount() == 1  # the bundled model
    assert tab.table.item(0, 0).text() == "SmolLM2-135M (bundled) · default"
    search_and_pick(qtbot, tab)
    with qtbot.waitSignal(tab.models_changed, timeout=60_000):
        tab.pull_button.click()
    [row] = tab.rows
    assert row.state == "done" and row.bar.value() == 1000
    names = [tab.table.item(r, 0).text() for r in range(tab.table.rowCount())]
    assert names == ["SmolLM2-135M (bundled) · default", "smol.Q4_1"]
    assert tab.table.item(1, 2).text() == "gguf" and tab.table.item(1, 5).text() == "apache-2.0"
    chat = ChatTab(ws, settings_in(tmp_path))
    qtbot.addWidget(chat)
    assert chat.model_combo.findData("smol.Q4_1") > 0

    tab.table.selectRow(1)
    tab.default_button.click()
    assert ws.config.model == "smol.Q4_1"
    assert tab.table.item(1, 0).text() == "smol.Q4_1 · default"
    tab.delete_button.click()
    assert ws.config.model == ""
    assert ModelRegistry(ws.layout).find("smol.Q4_1") is None
    tab.shutdown()


def test_a_pull_cut_by_closing_resumes_in_a_new_window(
    qtbot, ws: Workspace, hub: HubServer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    size = default_model_path().stat().st_size
    hub.faults.throttle_bps = 30_000_000
    start = hub.bytes_served("org/smol-GGUF", FILE)
    tab = make_tab(qtbot, ws, tmp_path)
    search_and_pick(qtbot, tab)
    tab.pull_button.click()
    qtbot.waitUntil(lambda: len(tab.rows) == 1 and tab.rows[0].bar.value() > 150, timeout=20_000)
    tab.shutdown()  # what closing the window does: the pull stops, the partial stays
    tab.close()
    assert len(pending_pulls(ws.layout)) == 1
    served = hub.bytes_served("org/smol-GGUF", FILE) - start
    assert 0 < served < size

    hub.faults.throttle_bps = None
    again = make_tab(qtbot, ws, tmp_path)
    [row] = again.rows
    assert row.state == "paused" and row.pause_button.text() == "Resume"
    assert "Paused" in row.detail.text() and row.bar.value() > 100
    with qtbot.waitSignal(again.models_changed, timeout=60_000):
        row.pause_button.click()
    refetched = hub.bytes_served("org/smol-GGUF", FILE) - start - served
    assert refetched < size - served + size // 100
    assert pending_pulls(ws.layout) == []
    assert ModelRegistry(ws.layout).find("smol.Q4_1") is not None
    again.shutdown()


def test_cancel_deletes_the_partial_and_pause_keeps_it(
    qtbot, ws: Workspace, hub: HubServer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    hub.faults.throttle_bps = 20_000_000
    tab = make_tab(qtbot, ws, tmp_path)
    search_and_pick(qtbot, tab)
    tab.pull_button.click()
    qtbot.waitUntil(lambda: len(tab.rows) == 1 and tab.rows[0].bar.value() > 50, timeout=20_000)
    row = tab.rows[0]
    row.pause_button.click()
    qtbot.waitUntil(lambda: row.state == "paused" and row.job is None, timeout=10_000)
    assert len(pending_pulls(ws.layout)) == 1
    partials = list((tmp_path / "hub-cache").rglob("*.incomplete"))
    assert len(partials) == 1 and partials[0].stat().st_size > 0
    row.cancel_button.click()
    qtbot.waitUntil(lambda: tab.rows == [], timeout=30_000)
    assert pending_pulls(ws.layout) == []
    assert not partials[0].exists()
    tab.shutdown()


def test_models_added_by_hand_move_into_the_registry(qtbot, ws: Workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = settings_in(tmp_path)
    settings.setValue("models/added", [str(default_model_path()), str(tmp_path / "gone.gguf")])
    tab = ModelsTab(ws, settings)
    qtbot.addWidget(tab)
    entries = ModelRegistry(ws.layout).library()
    assert [(e.kind, e.path) for e in entries] == [("added", default_model_path())]
    assert settings.value("models/added") is None
    assert "gone.gguf" in tab.banner.text()
    tab.shutdown()


APP_PULLING = """
import sys
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import QSettings
app = QApplication([])
from core.workspace import Workspace
from desktop.models_tab import ModelsTab
tab = ModelsTab(Workspace(sys.argv[1]), QSettings(sys.argv[2], QSettings.Format.IniFormat))
tab.pull("org/smol-GGUF", "smol.Q4_1.gguf")
app.exec()
"""


def test_a_pull_in_an_app_killed_mid_way_resumes_in_the_next(
    qtbot, ws: Workspace, hub: HubServer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import subprocess
    import sys
    import time

    size = default_model_path().stat().st_size
    hub.faults.throttle_bps = 20_000_000
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "QT_QPA_PLATFORM": "offscreen"}
    child = subprocess.Popen(
        [sys.executable, "-c", APP_PULLING, str(ws.layout.root), str(tmp_path / "s.ini")],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        deadline = time.monotonic() + 60
        partial: list[Path] = []
        while time.monotonic() < deadline:
            partial = list((tmp_path / "hub-cache").rglob("*.incomplete"))
            if partial and partial[0].stat().st_size > size // 3:
                break
            assert child.poll() is None, "the app ended before it was killed"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    on_disk = partial[0].stat().st_size
    assert size // 3 < on_disk < size
    hub.faults.throttle_bps = None
    served_before = hub.bytes_served("org/smol-GGUF", FILE)
    tab = make_tab(qtbot, ws, tmp_path)
    [row] = tab.rows
    assert row.state == "paused"
    with qtbot.waitSignal(tab.models_changed, timeout=60_000):
        row.pause_button.click()
    refetched = hub.bytes_served("org/smol-GGUF", FILE) - served_before
    assert refetched < size - on_disk + size // 100  # under 1% fetched twice
    entry = ModelRegistry(ws.layout).find("smol.Q4_1")
    assert entry is not None and entry.path is not None
    assert entry.path.stat().st_size == size
    tab.shutdown()


def test_a_hub_search_that_waits_can_be_cancelled_and_a_failure_clears(
    qtbot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import socket

    from core.models.hub import HubClient

    # A hub that takes connections and never answers (a network that hangs), and then
    # one that refuses them (no network at all).
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    hanging = f"http://127.0.0.1:{silent.getsockname()[1]}"
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    endpoint = [hanging]
    workspace = Workspace(tmp_path / "data")
    tab = ModelsTab(
        workspace,
        settings_in(tmp_path),
        client_factory=lambda: HubClient(endpoint=endpoint[0], cache_dir=tmp_path / "cache"),
    )
    qtbot.addWidget(tab)
    tab.show()
    try:
        tab.query.setText("smol")
        tab.search_button.click()
        assert tab.search_button.text() == "Cancel" and tab.hub.searching
        assert tab.repo_label.text().startswith("Searching the hub")
        tab.search_button.click()  # Cancel
        assert not tab.hub.searching and tab.search_button.text() == "Search"
        assert tab.repo_label.text() == "Search cancelled."
        # No network: the failure is said, the label does not stay at "Searching…".
        endpoint[0] = refused
        tab.search_button.click()
        qtbot.waitUntil(lambda: not tab.hub.searching, timeout=60_000)
        assert tab.repo_label.text().startswith("The search failed")
        assert tab.banner.isVisibleTo(tab) and tab.search_button.text() == "Search"
        # A new search takes the old failure's banner away at once.
        endpoint[0] = hanging
        tab.search_button.click()
        assert not tab.banner.isVisibleTo(tab)
        tab.hub.cancel_search()
        assert tab.repo_label.text() == "Search cancelled." and tab.results.rowCount() == 0
    finally:
        silent.close()
        tab.shutdown(1.0)
        workspace.close()
