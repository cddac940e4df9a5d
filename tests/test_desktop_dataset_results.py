"""Dataset tab: editing an example's <results> by hand (real dataset folder, real traces
from a real knowledge base; templates as the question writer, so no model is loaded)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from qt_helpers import IGNORED_QT_MESSAGES, settings_in
from small_docs import tiny_workspace

from core.workspace import Workspace
from desktop.dataset_tab import DatasetTab

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]


@pytest.fixture
def tab(qtbot, tmp_path: Path) -> Iterator[DatasetTab]:  # type: ignore[no-untyped-def]
    ws = tiny_workspace(tmp_path, examples=4)
    assert isinstance(ws, Workspace)
    widget = DatasetTab(ws, settings_in(tmp_path))
    qtbot.addWidget(widget)
    widget.resize(1400, 850)
    widget.show()
    widget.set_knowledge_bases(["docs"], "docs")
    widget.refresh(select="tiny")
    qtbot.waitUntil(
        lambda: widget.examples.table.rowCount() == 4 and not widget.busy(), timeout=20_000
    )
    yield widget
    widget.shutdown()
    ws.close()


def select(tab: DatasetTab, answer: str) -> int:
    row = next(
        r
        for r in range(tab.examples.table.rowCount())
        if tab.examples.table.item(r, 1).text() == answer
    )
    tab.examples.table.selectRow(row)
    return row


def results_row(tab: DatasetTab, label: str) -> int:
    return next(
        r
        for r in range(tab.editor.edit_results.rowCount())
        if tab.editor.edit_results.item(r, 1).text() == label
    )


def test_results_are_shown_ticked_with_their_reasons_and_the_other_passages_unticked(
    tab: DatasetTab,
) -> None:
    select(tab, "reverse proxy")
    table = tab.editor.edit_results
    assert table.rowCount() == 4  # every passage the trace showed
    assert table.item(0, 1).text() == "proxy.md#0"
    assert table.item(0, 0).checkState() == Qt.CheckState.Checked
    assert table.item(0, 2).text().startswith("it says A reverse proxy")
    assert all(table.item(r, 0).checkState() == Qt.CheckState.Unchecked for r in range(1, 4))
    assert not table.item(0, 1).flags() & Qt.ItemFlag.ItemIsEditable
    assert table.item(0, 2).flags() & Qt.ItemFlag.ItemIsEditable
    tab.examples.table.clearSelection()
    assert tab.editor.edit_results.rowCount() == 0


def test_ticking_a_passage_saves_the_results_in_the_trace_and_undo_brings_it_back(
    qtbot,
    tab: DatasetTab,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    file = tmp_path / "data" / "datasets" / "tiny" / "examples.jsonl"
    before = file.read_text("utf-8")
    select(tab, "reverse proxy")
    row = results_row(tab, "proxy.md#1")
    number = int(tab.editor.edit_results.item(row, 0).data(Qt.ItemDataRole.UserRole))
    tab.editor.edit_results.item(row, 0).setCheckState(Qt.CheckState.Checked)
    tab.editor.edit_results.item(row, 2).setText("it says how the proxy checks its backends")
    tab.editor.save_button.click()
    qtbot.waitUntil(lambda: not tab.busy() and tab.examples.table.rowCount() == 4, timeout=20_000)
    saved = next(
        json.loads(line)
        for line in file.read_text("utf-8").splitlines()
        if json.loads(line)["answer"] == "reverse proxy"
    )
    record = saved["record"]
    assert record["results"][-1] == number and len(record["results"]) == 2
    assert f"[{number}] it says how the proxy checks its backends\n</results>" in record["trace"]
    assert "".join(s["text"] for s in record["spans"]) == record["trace"]
    assert saved["status"] == "edited"
    # The trace view shows the new vetted passages when the example is opened again.
    select(tab, "reverse proxy")
    assert tab.editor.edit_results.item(1, 1).text() == "proxy.md#1"
    assert tab.editor.edit_results.item(1, 0).checkState() == Qt.CheckState.Checked
    results = tab.editor.trace.block_widgets("results")
    assert results and "checks its backends" in results[-1].text()
    tab.editor.undo_button.click()
    qtbot.waitUntil(lambda: not tab.busy() and tab.examples.table.rowCount() == 4, timeout=20_000)
    assert file.read_text("utf-8") == before


def test_results_without_the_answer_are_refused_and_nothing_is_written(
    tab: DatasetTab, tmp_path: Path
) -> None:
    file = tmp_path / "data" / "datasets" / "tiny" / "examples.jsonl"
    before = file.read_text("utf-8")
    select(tab, "reverse proxy")
    tab.editor.edit_results.item(0, 0).setCheckState(Qt.CheckState.Unchecked)
    tab.editor.edit_results.item(results_row(tab, "proxy.md#1"), 0).setCheckState(
        Qt.CheckState.Checked
    )
    tab.editor.save_button.click()
    assert "contains the answer “reverse proxy”" in tab.banner.text()
    tab.editor.edit_results.item(0, 0).setCheckState(Qt.CheckState.Checked)
    tab.editor.edit_results.item(0, 2).setText("see [2]")
    tab.editor.save_button.click()
    assert "must not contain '<', '[' or ']'" in tab.banner.text()
    assert file.read_text("utf-8") == before
    assert not (file.parent / "examples.jsonl.bak").exists()
