"""The Training tab's embedder job and the re-embed panel, for real: the worker tunes MiniLM
on a tiny dataset through QProcess, and a small knowledge base is re-embedded with a second
real embedder, switched back, cancelled half-way and resumed."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from qt_helpers import IGNORED_QT_MESSAGES, settings_in
from small_docs import hold_out_fewest, indexed_workspace

from core.knowledge import embedder_catalog
from core.workspace import Workspace
from desktop.reembed_panel import ReembedPanel
from desktop.training_tab import TrainingTab

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second real embedder: the bundled MiniLM with its weights moved a little."""
    import torch
    from sentence_transformers import SentenceTransformer

    from core.knowledge.embedder import bundled_model_path

    model = SentenceTransformer(str(bundled_model_path()), device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02 * p.std())
    folder = tmp_path_factory.mktemp("other") / "shifted"
    model.save(str(folder))
    return folder


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, shifted: Path) -> Iterator[Workspace]:
    """``docs`` indexed, a dataset ``qa`` with one document held out, and ``shifted``."""
    from core.dataset.service import generator
    from core.dataset.spec import GenerateSpec

    workspace = indexed_workspace(tmp_path_factory.mktemp("gui-embedder"))
    assert isinstance(workspace, Workspace)
    spec = GenerateSpec(kb="docs", count=12, validation_share=0.0, unanswerable_share=0.0, seed=3)
    gen, _, _ = generator(workspace, "qa", spec, None)
    list(gen.run())
    hold_out_fewest(workspace, "qa", keep=2)
    shutil.copytree(shifted, embedder_catalog.embedders_dir(workspace.layout) / "shifted")
    yield workspace
    workspace.close()


@pytest.fixture
def tab(qtbot, ws: Workspace, tmp_path: Path) -> Iterator[TrainingTab]:  # type: ignore[no-untyped-def]
    widget = TrainingTab(ws, settings_in(tmp_path))
    qtbot.addWidget(widget)
    widget.resize(1280, 820)
    widget.show()
    widget.refresh()
    qtbot.waitUntil(lambda: widget.form.dataset_combo.count() > 0, timeout=20_000)
    yield widget
    widget.shutdown()


def test_the_job_kind_changes_the_spec_the_presets_the_bases_and_the_rows(  # type: ignore[no-untyped-def]
    qtbot, tab: TrainingTab
) -> None:
    form, fields = tab.form, tab.form.fields
    assert tab.spec().kind == "generator" and form.row_visible(fields.lora_r)
    assert not form.row_visible(fields.negatives) and form.row_visible(form.where_combo)
    form.kind_combo.setCurrentIndex(form.kind_combo.findData("embedder"))
    spec = tab.spec()
    assert spec.kind == "embedder" and spec.method == "full" and spec.exports == []
    assert [form.preset_combo.itemText(i) for i in range(form.preset_combo.count())] == ["embedder"]
    for row in (
        fields.lora_r, fields.grad_accum, fields.mask_box, fields.engine_combo,
        fields.tracking_combo,
    ):  # fmt: skip
        assert not form.row_visible(row)
    assert not form.row_visible(form.where_combo) and not form.base_button.isVisible()
    assert form.row_visible(fields.negatives)
    assert "embedder" in form.name_edit.placeholderText()
    bases = [form.base_combo.itemData(i) for i in range(form.base_combo.count())]
    assert bases == ["default", "shifted"]
    fields.negatives.setValue(5)
    form.base_combo.setCurrentIndex(1)
    assert tab.spec().negatives == 5 and tab.spec().base == "shifted"
    assert tab.reembed_panel.isVisible()
    form.kind_combo.setCurrentIndex(form.kind_combo.findData("generator"))
    assert tab.spec().kind == "generator" and tab.spec().method == "lora"
    assert form.row_visible(fields.lora_r) and not form.row_visible(fields.negatives)
    assert form.base_combo.itemData(0) == "default" and form.base_combo.findData("shifted") < 0
    assert not tab.reembed_panel.isVisible()


def test_an_embedder_run_reports_recall_before_and_after(qtbot, tab: TrainingTab) -> None:  # type: ignore[no-untyped-def]
    tab.set_kind("embedder")
    fields, monitor = tab.form.fields, tab.monitor
    fields.max_steps.setValue(4)
    # Batches of one (the worker adds a second question): the held-out questions then make
    # no validation batch, so the evals carry recall but no loss, which the chart must skip.
    fields.batch_size.setValue(1)
    fields.warmup.setValue(1)
    fields.eval_every.setValue(2)
    fields.checkpoint_every.setValue(0)
    fields.eval_passages.setValue(20)
    tab.start()
    qtbot.waitUntil(lambda: tab.running, timeout=60_000)
    log = monitor.log_view.toPlainText()
    # (how many of the generated questions are answerable with a gold chunk varies a little)
    note = re.search(r"(\d+) training questions, (\d+) held-out questions? among \d+ passages", log)
    assert note is not None, log
    held = int(note.group(2))
    qtbot.waitUntil(lambda: not tab.running, timeout=240_000)
    assert "done" in monitor.status_label.text(), monitor.log_view.toPlainText()
    log = monitor.log_view.toPlainText()
    assert "step 0: recall@1" in log and "step 2: recall@1" in log and "passages" in log
    line = monitor.recall_label.text()
    assert monitor.recall_label.isVisible()
    assert line.startswith(f"Recall@5 on {held} held-out question") and "before →" in line
    assert line.endswith("after")
    assert monitor.chart.eval == [] and len(monitor.chart.train) == 4
    # The tuned embedder is ready in the panel, for the dataset's knowledge base: the
    # panel reads the knowledge base's versions in the background, and its button
    # follows them, so the wait is on the button.
    panel = tab.reembed_panel
    assert panel.isVisible()
    qtbot.waitUntil(
        lambda: "Re-embed with qa-embedder" in panel.reembed_button.text(), timeout=20_000
    )
    assert panel.embedder == "qa-embedder" and panel.kb_name == "docs"

    # The history says it is an embedder and shows its recall; a click shows it again.
    # (It is re-read in the background after the run ends; a read made while it ran, state
    # running and no recall yet, may be on screen first.)
    history = tab.history
    qtbot.waitUntil(
        lambda: history.cell("qa-embedder", "Validation").startswith("R@5 "), timeout=30_000
    )
    assert history.cell("qa-embedder", "Model") == "qa-embedder (embedder)"
    tab.set_kind("generator")
    history.select("qa-embedder")
    assert monitor.recall_label.text() == line and panel.isVisible()


def test_the_panel_reembeds_switches_back_cancels_and_resumes(  # type: ignore[no-untyped-def]
    qtbot, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = ReembedPanel(ws)
    qtbot.addWidget(panel)
    panel.resize(760, 330)
    panel.show()
    panel.set_embedder("shifted", "docs")
    qtbot.waitUntil(
        lambda: panel.table.rowCount() >= 1 and panel.embedder == "shifted", timeout=20_000
    )
    kb = ws.store.get("docs")
    bundled = kb.embedder_name
    before = [h.id for h in kb.search("which port does the proxy listen on", k=3, method="dense")]

    def serving() -> str:
        return next(
            panel.table.item(r, 1).text()
            for r in range(panel.table.rowCount())
            if panel.table.item(r, 0).text() == "★"
        )

    # Cancel: the new version stays half-built, the old one serves, the button resumes.
    panel.reembed()
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.busy, timeout=60_000)
    assert "half-built" in panel.status_label.text()
    assert kb.embedder_name == bundled
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2, timeout=20_000)
    assert serving() == "v1" and panel.table.item(1, 3).text() == "building"
    assert panel.reembed_button.text() == "Resume re-embedding with shifted"
    # Resume: complete, checked, switched; the undo is one click away.
    panel.reembed()
    qtbot.waitUntil(lambda: not panel.busy, timeout=120_000)
    assert not panel.banner.isVisible(), panel.banner.text()
    assert (
        kb.embedder_name == "shifted" and "now searches with shifted" in panel.status_label.text()
    )
    qtbot.waitUntil(lambda: serving() == "v2", timeout=20_000)
    assert panel.selected_version() == 1 and panel.switch_button.isEnabled()
    assert not panel.reembed_button.isEnabled()  # already served by shifted
    panel.switch_selected()
    qtbot.waitUntil(lambda: not panel.busy, timeout=60_000)
    assert kb.embedder_name == bundled
    qtbot.waitUntil(lambda: serving() == "v1", timeout=20_000)
    after = [h.id for h in kb.search("which port does the proxy listen on", k=3, method="dense")]
    assert after == before
    # Removing the serving version is refused with the core's sentence.
    panel.select_version(1)
    panel.remove_selected()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20_000)
    assert panel.banner.isVisible() and "switch to another version first" in panel.banner.text()
    # Removing another one asks first, then frees it.
    monkeypatch.setattr("desktop.reembed_panel.confirm_destructive", lambda *a, **k: True)
    panel.select_version(2)
    panel.remove_selected()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20_000)
    qtbot.waitUntil(lambda: panel.table.item(1, 3).text() == "removed", timeout=20_000)
    assert not panel.banner.isVisible()
    panel.shutdown()


def test_alternating_rounds_start_from_the_tab_and_stop_on_cancel(  # type: ignore[no-untyped-def]
    qtbot, tab: TrainingTab, ws: Workspace
) -> None:
    from core.training.rounds import load_state

    tab.set_kind("alternating")
    form, fields = tab.form, tab.form.fields
    assert form.row_visible(fields.rounds_spin) and form.row_visible(fields.lora_r)
    assert not form.row_visible(fields.negatives) and not form.row_visible(form.where_combo)
    assert tab.spec().kind == "generator"  # the form holds the generator step's settings
    assert form.start_button.text() == "Start the rounds"
    fields.rounds_spin.setValue(1)
    form.name_edit.setText("gui-rounds")
    tab.start()
    assert tab.running
    # The first step starts a real embedder run; Cancel stops it (a checkpoint, then exit).
    qtbot.waitUntil(
        lambda: "Round 1: tuning the embedder" in tab.monitor.log_view.toPlainText(), timeout=60_000
    )
    qtbot.waitUntil(lambda: tab.run_name == "gui-rounds-r1-embedder", timeout=120_000)
    tab.cancel()
    qtbot.waitUntil(lambda: not tab.running, timeout=240_000)
    status = tab.monitor.status_label.text()
    assert "0 of 1 rounds" in status and "continues" in status
    state = load_state(ws, "gui-rounds")
    assert state is not None and state.done == {}
    tab.set_kind("generator")
