"""Dataset tab against the real store, embedder, retrieval and dataset folder (templates as
the question writer, so no model is loaded)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from qt_helpers import IGNORED_QT_MESSAGES, settings_in

from core.knowledge.indexer import Indexer
from core.workspace import Workspace
from desktop.dataset_tab import DatasetTab

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]

DOCS = {
    "backup.md": (
        "# Backups\n\n## Schedule\n\nThe backup service runs every night at 02:00 and keeps "
        "14 copies before it deletes the oldest archive. Set `retention` to change the number "
        "of copies; the default retention is `14`.\n\n## Restore\n\nTo restore an archive, run "
        "`appctl restore --from ARCHIVE` while the service is stopped. The `--verify` option "
        "checks every file's checksum after the restore and reports the files that differ.\n"
    ),
    "proxy.md": (
        "# Proxy\n\nA reverse proxy is a server that forwards client requests to one of "
        "several backend servers. The proxy listens on port 8443 by default and reads its "
        "routes from `routes.yaml` at start. Send the process `SIGHUP` to reload the routes "
        "without dropping the open connections.\n"
    ),
}


@pytest.fixture
def tab(qtbot, data_dir: Path, tmp_path: Path) -> Iterator[DatasetTab]:  # type: ignore[no-untyped-def]
    ws = Workspace(data_dir)
    ws.config.chunking.size = 300
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, "utf-8")
    kb = ws.store.create("Manuals")
    list(Indexer(kb, ws.embedder, ws.config.chunking).run([docs]))
    widget = DatasetTab(ws, settings_in(tmp_path))
    qtbot.addWidget(widget)
    widget.resize(1300, 800)
    widget.show()
    widget.set_knowledge_bases(["Manuals"], "Manuals")
    yield widget
    widget.shutdown()
    ws.close()


def generate(qtbot, tab: DatasetTab, name: str, count: int) -> None:  # type: ignore[no-untyped-def]
    tab.form.name_edit.setText(name)
    tab.form.count_spin.setValue(count)
    tab.form.teacher_combo.setCurrentIndex(tab.form.teacher_combo.findData("none"))
    tab.form.generate_button.click()
    assert not tab.form.generate_button.isEnabled() and tab.form.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not tab.generating and not tab.busy(), timeout=120_000)


def test_generate_shows_examples_their_trace_and_the_report(qtbot, tab: DatasetTab) -> None:  # type: ignore[no-untyped-def]
    generate(qtbot, tab, "manuals", 3)
    assert tab.examples.table.rowCount() >= 2
    assert (
        "accepted" in tab.form.progress_label.text() or "examples" in tab.form.progress_label.text()
    )
    assert tab.form.dataset_list.count() == 1
    tab.examples.table.selectRow(0)
    tags = [getattr(w, "tag", type(w).__name__) for w in tab.editor.trace.blocks]
    assert tags[:4] == ["QLabel", "think", "query", "PassagesWidget"]
    assert "results" in tags and "answer" in tags
    first = tab.examples.table.item(0, 0)
    assert first is not None and tab.editor.edit_question.text() == first.text()
    assert "examples" in tab.report.summary.text()
    assert tab.report.charts["kinds"].values


def test_a_run_that_ends_short_of_the_size_asked_says_why(qtbot, tab: DatasetTab) -> None:  # type: ignore[no-untyped-def]
    # Two short documents give a few questions, not 50: the form said "N examples" only.
    generate(qtbot, tab, "short", 50)
    made = tab.examples.table.rowCount()
    assert 0 < made < 50
    line = tab.form.progress_label.text()
    assert f"Only {made} of the 50 asked for" in line and "Add documents" in line


def test_edit_delete_and_undo(qtbot, tab: DatasetTab, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    generate(qtbot, tab, "edits", 2)
    # A freshly made dataset: no edit or delete to take back.
    assert not tab.editor.undo_button.isEnabled()
    assert "Nothing to undo" in tab.editor.undo_button.toolTip()
    file = data_dir / "datasets" / "edits" / "examples.jsonl"
    before = file.read_text("utf-8")
    tab.examples.table.selectRow(0)
    answer = tab.editor.edit_answer.text()
    tab.editor.edit_question.setText("Which value should I look for here, in my own words?")
    tab.editor.save_button.click()
    qtbot.waitUntil(lambda: not tab.busy(), timeout=20_000)
    first = json.loads(file.read_text("utf-8").splitlines()[0])
    assert first["question"].startswith("Which value should I look for")
    assert first["status"] == "edited" and first["answer"] == answer
    assert first["record"]["messages"]["search"][1]["content"] == first["question"]
    # An edit that would break the example is refused with a sentence.
    tab.examples.table.selectRow(0)
    tab.editor.edit_cited.setPlainText("Something else entirely.")
    tab.editor.save_button.click()
    assert "must contain the short answer" in tab.banner.text()
    tab.examples.table.selectRow(0)
    tab.editor.remove_button.click()
    qtbot.waitUntil(lambda: not tab.busy(), timeout=20_000)
    assert len(file.read_text("utf-8").splitlines()) == len(before.splitlines()) - 1
    qtbot.waitUntil(tab.editor.undo_button.isEnabled)
    tab.editor.undo_button.click()
    qtbot.waitUntil(lambda: not tab.busy(), timeout=20_000)
    assert json.loads(file.read_text("utf-8").splitlines()[0])["status"] == "edited"


def test_after_a_restart_generate_makes_a_new_dataset_unless_told_to_add(  # type: ignore[no-untyped-def]
    qtbot, tab: DatasetTab, tmp_path: Path
) -> None:
    generate(qtbot, tab, "walk", 2)
    size = tab.form.existing_size()
    assert size is not None and size >= 1
    assert tab.form.generate_button.text() == "Add to dataset"
    # A restart: a new tab on the same data folder.
    again = DatasetTab(tab.ws, settings_in(tmp_path / "restart"))
    qtbot.addWidget(again)
    again.resize(1024, 700)
    again.show()
    again.set_knowledge_bases(["Manuals"], "Manuals")
    again.refresh()
    qtbot.waitUntil(lambda: again.form.dataset_list.count() == 1)
    form = again.form
    assert form.name_edit.text() == "Manuals-qa"  # a fresh name, not the old dataset's
    assert form.existing_size() is None and form.generate_button.text() == "Generate"
    assert not form.name_state.isVisible()
    # Opening the old dataset to look at it does not aim Generate at it.
    again.open_dataset("walk")
    qtbot.waitUntil(lambda: again.examples.table.rowCount() == size)
    assert form.name_edit.text() == "Manuals-qa"
    # Naming it on purpose: the button and the line under the name say Generate adds to it.
    form.name_edit.setText("walk")
    assert form.generate_button.text() == "Add to dataset"
    qtbot.waitUntil(form.name_state.isVisible)
    assert f"“walk” exists with {size} example" in form.name_state.text()
    # Examples (200) is the size the dataset grows to: the generator resumes it.
    assert f"adds up to {200 - size} more" in form.generate_button.toolTip()
    form.count_spin.setValue(size)
    assert "raise Examples to add to it" in form.name_state.text()
    form.count_spin.setValue(200)
    again.grab().save("/tmp/inputs/dataset-add-to-existing.png")
    form.name_edit.setText("")
    form.set_datasets({"walk": size, "Manuals-qa": 3})
    assert form.name_edit.text() == "Manuals-qa-2"
    again.shutdown()


def test_a_missing_name_or_knowledge_base_is_a_sentence(tab: DatasetTab) -> None:
    tab.form.name_edit.setText("")
    tab.generate()
    assert "name" in tab.banner.text()
    tab.set_knowledge_bases([], "")
    tab.form.name_edit.setText("x")
    tab.generate()
    assert "knowledge base" in tab.banner.text()


def test_the_rewrite_box_asks_for_the_step_when_a_model_writes_the_questions(
    tab: DatasetTab,
) -> None:
    form = tab.form
    form.name_edit.setText("natural")
    form.rewrite.setChecked(True)
    form.teacher_combo.setCurrentIndex(form.teacher_combo.findData("bundled"))
    assert form.rewrite.isEnabled() and form.request().spec.rewrite
    form.teacher_combo.setCurrentIndex(form.teacher_combo.findData("none"))
    assert not form.rewrite.isEnabled() and not form.request().spec.rewrite
    form.set_running(True)
    form.set_running(False)
    assert not form.rewrite.isEnabled()  # still templates only: nothing to rewrite with


def test_generate_waits_while_the_chat_uses_the_model(tab: DatasetTab) -> None:
    tab.set_model_busy(True)
    assert not tab.form.generate_button.isEnabled()
    tab.form.name_edit.setText("x")
    tab.generate()
    assert "chat is using the model" in tab.banner.text() and not tab.generating
    tab.set_model_busy(False)
    assert tab.form.generate_button.isEnabled()


def test_export_writes_rows_and_a_card(qtbot, tab: DatasetTab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    generate(qtbot, tab, "out", 2)
    target = tmp_path / "out.jsonl"
    tab.export_to(target, "chatml")
    rows = [json.loads(line) for line in target.read_text("utf-8").splitlines()]
    assert rows and all("text" in r and "train_spans" in r for r in rows)
    assert target.with_suffix(".md").read_text("utf-8").startswith("# Dataset out")


def test_cancel_keeps_what_was_accepted(qtbot, tab: DatasetTab, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    tab.form.name_edit.setText("cancelled")
    tab.form.count_spin.setValue(50)
    tab.form.teacher_combo.setCurrentIndex(tab.form.teacher_combo.findData("none"))
    tab.generate()
    qtbot.waitUntil(
        lambda: tab.examples.table.rowCount() >= 1 or not tab.generating, timeout=60_000
    )
    tab.form.cancel_button.click()
    qtbot.waitUntil(lambda: not tab.generating and not tab.busy(), timeout=60_000)
    lines = (data_dir / "datasets" / "cancelled" / "examples.jsonl").read_text("utf-8")
    assert len(lines.splitlines()) >= 1
    assert tab.form.generate_button.isEnabled() and not tab.form.cancel_button.isEnabled()


def test_sample_the_models_own_runs(qtbot, tab: DatasetTab, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    generate(qtbot, tab, "sampled", 1)
    loop = tab.ws.config.loop
    loop.max_rounds, loop.max_block_tokens, loop.max_total_tokens = 2, 24, 64
    tab.ws.config.generation.answer_max_tokens = 32
    tab.ws.config.generation.n_threads = 1
    panel = tab.sampling
    assert panel.sample_button.isEnabled()
    panel.samples_spin.setValue(1)
    panel.fallback_combo.setCurrentIndex(panel.fallback_combo.findData("constructed"))
    panel.sample_button.click()
    assert tab.generating and not panel.sample_button.isEnabled()
    # One run of the bundled model: seconds here, minutes on a machine shared by many jobs.
    qtbot.waitUntil(lambda: not tab.generating and not tab.busy(), timeout=400_000)
    assert "model's own run" in tab.form.progress_label.text()
    assert "The model's own runs" in tab.report.summary.text()
    lines = (data_dir / "datasets" / "sampled" / "examples.jsonl").read_text("utf-8")
    assert all("sampling" in json.loads(line) for line in lines.splitlines())
    assert tab.examples.table.rowCount() == len(lines.splitlines())
