"""Knowledge-base tab against the real store, indexer and bundled embedder (small files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from qt_helpers import IGNORED_QT_MESSAGES, drop

from core.workspace import Workspace
from desktop.kb_hit_row import HitRow
from desktop.kb_tab import DEFAULT_KB_NAME, KnowledgeTab
from desktop.screenshots import write_sample_docs

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES),
]


@pytest.fixture
def tab(qtbot, data_dir: Path):  # type: ignore[no-untyped-def]
    ws = Workspace(data_dir)
    widget = KnowledgeTab(ws)
    qtbot.addWidget(widget)
    widget.resize(1100, 750)
    widget.show()
    widget.refresh()
    qtbot.waitUntil(lambda: not widget.busy(), timeout=30_000)
    yield widget
    widget.shutdown()
    ws.close()


def wait_idle(qtbot, tab: KnowledgeTab, timeout: int = 120_000) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: not tab.indexing and not tab.busy(), timeout=timeout)


def rows(tab: KnowledgeTab) -> dict[str, tuple[str, str]]:
    table = tab.files
    return {
        table.item(r, 0).text(): (table.item(r, 1).text(), table.item(r, 3).text())
        for r in range(table.rowCount())
    }


def listed(tab: KnowledgeTab) -> list[str]:
    return [tab.documents.item(i).text().split()[0] for i in range(tab.documents.count())]


def test_dropping_files_and_a_folder_indexes_and_lists_them_and_reports_a_bad_file(
    qtbot,
    tab: KnowledgeTab,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    docs = write_sample_docs(tmp_path / "docs")
    loose = tmp_path / "loose.md"
    loose.write_text("# Loose note\n\nKettles switch off at one hundred degrees.\n", "utf-8")
    assert tab.current_kb == ""
    assert drop(tab, [docs / "tea", docs / "broken", loose])
    assert tab.progress_row.isVisibleTo(tab) and not tab.drop_zone.add_files.isEnabled()
    wait_idle(qtbot, tab)

    report = rows(tab)
    assert report["green-tea.md"][0] == "indexed" and report["loose.md"][0] == "indexed"
    status, reason = report["scan.pdf"]
    assert status == "failed" and reason  # the reason is shown, the others still indexed
    assert tab.current_kb == DEFAULT_KB_NAME  # a first drop creates a knowledge base
    qtbot.waitUntil(lambda: "green-tea.md" in listed(tab), timeout=10_000)
    assert sorted(listed(tab)) == ["black-tea.md", "green-tea.md", "loose.md"]
    assert not tab.progress_row.isVisibleTo(tab) and tab.drop_zone.add_files.isEnabled()

    # Dropping the same folder again changes nothing.
    drop(tab, [docs / "tea"])
    wait_idle(qtbot, tab)
    assert {s for s, _ in rows(tab).values()} == {"unchanged"}

    # The search preview finds the passage and opens it whole.
    tab.search_box.setText("water temperature for green tea")
    tab.search()
    qtbot.waitUntil(lambda: tab.hits.count() > 0 and not tab.busy(), timeout=30_000)
    first = tab.hits.item(0)
    assert first.data(256).label.startswith("green-tea.md")
    row = tab.hits.itemWidget(first)
    assert isinstance(row, HitRow)
    # The passage's Markdown reads as text; its score stays on the header line.
    assert "#" not in row.snippet.text() and "`" not in row.snippet.text()
    assert row.score.y() == row.place.y()
    tab.search_panel.open_hit(first)
    dialog = tab.findChild(__import__("desktop.passage_dialog").passage_dialog.PassageDialog)
    assert dialog is not None and "70 to 80 degrees" in dialog.text.toPlainText()
    dialog.close()

    # Removing a document takes it off the list.
    for i in range(tab.documents.count()):
        item = tab.documents.item(i)
        item.setSelected(item.text().startswith("loose.md"))
    tab.remove_selected_document()
    qtbot.waitUntil(lambda: "loose.md" not in listed(tab) and not tab.busy(), timeout=10_000)
    assert sorted(listed(tab)) == ["black-tea.md", "green-tea.md"]


def test_create_rename_delete_and_switch(qtbot, tab: KnowledgeTab) -> None:  # type: ignore[no-untyped-def]
    changes: list[tuple[list[str], str]] = []
    tab.knowledge_bases_changed.connect(lambda names, cur: changes.append((names, cur)))
    tab.create_kb("Recipes")
    qtbot.waitUntil(lambda: tab.current_kb == "Recipes" and not tab.busy(), timeout=30_000)
    tab.create_kb("Manuals")
    qtbot.waitUntil(lambda: tab.kb_combo.count() == 2 and not tab.busy(), timeout=30_000)
    assert tab.current_kb == "Manuals"
    tab.rename_kb("Manuals", "Bike manuals")
    qtbot.waitUntil(lambda: tab.current_kb == "Bike manuals" and not tab.busy(), timeout=30_000)
    assert [tab.kb_combo.itemText(i) for i in range(2)] == ["Bike manuals", "Recipes"]
    tab.kb_combo.setCurrentText("Recipes")
    assert changes[-1] == (["Bike manuals", "Recipes"], "Recipes")
    tab.delete_kb("Recipes")
    qtbot.waitUntil(lambda: tab.kb_combo.count() == 1 and not tab.busy(), timeout=30_000)
    assert tab.current_kb == "Bike manuals"

    # A clash is reported in the window, not swallowed.
    tab.create_kb("Bike manuals")
    qtbot.waitUntil(lambda: not tab.busy(), timeout=30_000)
    assert tab.banner.isVisibleTo(tab) and "already exists" in tab.banner.text()


def test_cancel_stops_indexing_and_leaves_the_tab_usable(
    qtbot,
    tab: KnowledgeTab,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        (folder / f"note{i:02d}.txt").write_text(f"Note {i}. " + "Some words here. " * 80, "utf-8")
    tab.index_paths([folder])
    tab.cancel_indexing()
    wait_idle(qtbot, tab)
    assert tab.drop_zone.add_folder.isEnabled() and not tab.progress_row.isVisibleTo(tab)
    assert tab.files.rowCount() < 40


def test_only_the_newest_search_is_shown(qtbot, tab: KnowledgeTab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nBrew green tea at 70 to 80 degrees.\n", "utf-8")
    (docs / "bike.md").write_text("# Bikes\n\nOil the bicycle chain every month.\n", "utf-8")
    tab.index_paths([docs])
    wait_idle(qtbot, tab)
    # Two searches in quick succession: the first one's result must never be shown last.
    tab.search_box.setText("green tea water temperature")
    tab.search()
    tab.search_box.setText("bicycle chain oil")
    tab.search()
    wait_idle(qtbot, tab)
    first = tab.hits.item(0).data(256)
    assert first is not None and first.source.endswith("bike.md")
    assert not tab.jobs.latest


def test_the_progress_row_says_what_indexing_waits_for(qtbot) -> None:  # type: ignore[no-untyped-def]
    from core.knowledge.indexer import Progress
    from desktop.kb_indexing import IndexProgress

    row = IndexProgress()
    qtbot.addWidget(row)
    row.show()
    row.start()
    assert row.label.text().startswith("Reading files… 0 s")
    row.show_progress(Progress(0, 5, 0, 0.0, None, "", "preparing"))
    assert row.label.text().startswith("Preparing the embedding model for this computer")
    # Nothing arrives while the model is exported: the time still moves.
    qtbot.waitUntil(lambda: row.label.text().endswith(" 1 s"), timeout=3000)
    row.show_progress(Progress(1, 5, 12, 30.0, 8.0, "/docs/a.md"))
    assert row.label.text().startswith("1 of 5 files · 12 chunks")
    qtbot.wait(1300)
    assert row.label.text().startswith("1 of 5 files")  # the clock stopped
