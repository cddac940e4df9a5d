"""The Compare tab on the bundled model, closed book (no knowledge base to build): both
sides stream into their traces, and a QA file is run on both and paired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qt_helpers import IGNORED_QT_MESSAGES, settings_in

from core.workspace import Workspace
from desktop.compare_tab import CompareTab

pytestmark = [
    pytest.mark.model,
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]


def test_both_sides_run_closed_book_and_pair_a_qa_file(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = Workspace(tmp_path / "data")
    ws.config.generation.n_threads = 1
    ws.config.generation.answer_max_tokens = 16
    ws.config.loop.max_block_tokens, ws.config.loop.max_total_tokens = 16, 32
    tab = CompareTab(ws, settings_in(tmp_path))
    qtbot.addWidget(tab)
    tab.refresh()
    assert tab.a_combo.currentData() == tab.b_combo.currentData() == "default"

    tab.ask_both()  # no question: nothing runs
    assert not tab.running
    tab.question.setText("Say hello.")
    tab.ask_both()  # a mode that searches needs a knowledge base
    assert not tab.running and not tab.banner.isHidden()
    assert "knowledge base" in tab.banner.text()

    tab.mode_combo.setCurrentIndex(tab.mode_combo.findData("closed"))
    side = tab.side
    phases: list[str] = []
    set_phase = side.clock.set_phase
    side.clock.set_phase = lambda phase: (phases.append(phase), set_phase(phase))  # type: ignore[method-assign]
    with qtbot.waitSignal(
        tab.run_state_changed, check_params_cb=lambda on: not on, timeout=300_000
    ):
        tab.ask_both()
        assert tab.running and tab.banner.isHidden()
        # The wait says what it waits for, timed, and can be stopped.
        assert side.status.text().startswith("Loading model A… ")
        assert side.stop_button.isEnabled() and not side.ask_button.isEnabled()
    assert tab.trace_a.blocks and tab.trace_b.blocks
    wanted = ["Model A is answering…", "Loading model B…", "Model B is answering…"]
    assert [p for p in phases if p in wanted] == wanted
    assert side.status.text().startswith("Both answered in ")
    assert not side.stop_button.isEnabled() and side.ask_button.isEnabled()
    # Stop: the run ends at once and says so.
    with qtbot.waitSignal(
        tab.run_state_changed, check_params_cb=lambda on: not on, timeout=300_000
    ):
        tab.ask_both()
        side.stop_button.click()
    assert side.status.text().startswith("Stopped after ")

    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        "".join(
            json.dumps({"question": q, "answers": a}) + "\n"
            for q, a in (("Say hello.", ["hello"]), ("What is 2 + 2?", ["4"]))
        ),
        "utf-8",
    )
    tab.set_qa_file(str(qa))
    with qtbot.waitSignal(
        tab.run_state_changed, check_params_cb=lambda on: not on, timeout=300_000
    ):
        tab.run_comparison()
    assert tab.result["table"]["questions"] == 2
    assert tab.per_question.rowCount() == 2
    assert "McNemar" in tab.paired_label.text()
    tab.shutdown()
    ws.close()
