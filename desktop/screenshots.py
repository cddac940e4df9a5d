"""``python -m desktop --screenshots DIR``: each tab, with a small sample knowledge base.

Everything is real: the sample documents are indexed by the core, the search is
the core's, and the chat trace is the bundled model answering through the loop.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QWidget

from core.training.events import Done, Eval, Started, Step, WorkerEvent, to_dict
from core.training.runs import RunStore
from core.training.spec import TrainSpec
from core.workspace import Workspace
from desktop.screen_audit import audit

SIZES = [(1024, 700), (1600, 1000)]
"""Every tab is saved at the smallest window the app is made for and at a large one."""
SAMPLE_DOCS = {
    "tea/green-tea.md": """# Brewing green tea

## Water temperature
Green tea turns bitter in boiling water. Brew it at 70 to 80 degrees Celsius,
which is water left to cool for about three minutes after boiling.

## Steeping time
Steep green tea for two to three minutes. Longer steeping releases more tannins.
""",
    "tea/black-tea.md": """# Brewing black tea

Black tea wants fully boiling water, around 95 to 100 degrees Celsius, and four to
five minutes of steeping. Milk is optional; lemon brightens the flavour.
""",
    "bikes/chain-care.txt": """Bicycle chain care

Clean the chain every few hundred kilometres with a degreaser, dry it, then apply
one drop of chain oil per link. Wipe off the excess so dirt does not stick.
A chain stretched beyond 0.5 percent wears the cassette and should be replaced.
""",
    "energy/solar.md": """# Solar panels at home

## Orientation
In the northern hemisphere panels face south, tilted at roughly the site's
latitude, to collect the most energy over a year.

## Output
A typical 400 watt panel produces about 1.2 to 1.6 kWh per day in a temperate climate.
""",
    "office/printer.md": """# Office printer guide

## Paper trays
The printer has two paper trays. Tray 1 holds 250 sheets of A4 paper and is used by
default; tray 2 holds 500 sheets and is chosen with the `--tray 2` option of the
`lpr` command. The default paper size is `A4`; letter paper must be loaded in tray 2.

## Toner
A toner cartridge prints about 3000 pages. When the display shows `TONER LOW`, order
a new cartridge from the facilities desk; the printer keeps printing for roughly 200
more pages before it stops. Shake a new cartridge five times before you insert it.

## Scanning
To scan a document to your inbox, run `scan-to-mail --user NAME` at the printer's
keypad. Scans are saved as PDF at 300 dpi by default; the `--dpi` option changes the
resolution, up to a maximum of 1200 dpi. Files larger than 20 MB are not sent.
""",
    "broken/scan.pdf": "%PDF-1.4 this file is truncated and cannot be parsed",
}
QUESTION = "How hot should the water be for green tea?"


def write_sample_docs(folder: Path) -> Path:
    for name, text in SAMPLE_DOCS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    app = QApplication.instance()
    while time.monotonic() < deadline:
        if app is not None:
            app.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def stage_finished_run(workspace: Workspace, dataset: str, name: str, steps: int = 12) -> None:
    """A finished training run on ``dataset`` in the run store, as the worker records one
    (its losses falling), so the Training tab's history and chart have something to show
    without minutes of training."""
    run = RunStore(workspace.layout).create(name, TrainSpec(dataset=dataset, max_steps=steps))
    events: list[WorkerEvent] = [Started(engine="torch", device="cpu", rows_train=18, total=steps)]
    for step in range(1, steps + 1):
        events.append(Step(step=step, total=steps, loss=2.4 / (1 + 0.3 * step), seconds=step))
        if step % 4 == 0:
            events.append(Eval(step=step, loss=2.6 / (1 + 0.25 * step)))
    events.append(Done(model=""))
    run.events_file.write_text("".join(json.dumps(to_dict(e)) + "\n" for e in events), "utf-8")
    run.write_state("done")


def _save(widget: QWidget, path: Path) -> Path:
    QApplication.processEvents()
    widget.grab().save(str(path))
    return path


def _shots(window: QWidget, out_dir: Path, name: str, notes: list[str]) -> list[Path]:
    """The window at each of ``SIZES``, as ``NAME-WIDTH.png``; what the screen audit finds
    on each goes into ``notes``."""
    saved = []
    for width, height in SIZES:
        window.resize(width, height)
        wait_until(lambda: False, 0.3)  # let the layouts and the traces settle
        path = _save(window, out_dir / f"{name}-{width}.png")
        notes.extend(f"{path.name}: {finding}" for finding in audit(window))
        if (window.width(), window.height()) != (width, height):
            notes.append(f"{path.name}: the window is {window.width()}x{window.height()}")
        saved.append(path)
    return saved


def render_screenshots(out_dir: Path) -> list[Path]:
    from core.workspace import setup_logging
    from desktop.window import MainWindow

    out_dir.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cotrag-shots-") as tmp:
        root = Path(tmp)
        workspace = Workspace(root / "data")
        loop = workspace.config.loop
        loop.max_rounds, loop.max_block_tokens, loop.max_total_tokens = 2, 96, 400
        setup_logging(workspace.layout)
        settings = QSettings(str(root / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(workspace, settings)
        # Tabs are built when first opened, and the window grows to the widest one's
        # minimum then: built now, every shot has the same size, as in earlier versions.
        window.tabs.build_all()
        window.resize(*SIZES[0])
        window.show()
        wait_until(lambda: window.painted and not window.kb_tab.busy(), 60)
        # A fresh data folder opens on the welcome; the shots go on with the user's own
        # documents (the sample it offers would be the first knowledge base otherwise).
        saved += _shots(window, out_dir, "welcome", notes)
        window.dismiss_welcome()
        saved += _shots(window, out_dir, "knowledge-empty", notes)

        docs = write_sample_docs(root / "docs")
        window.kb_tab.index_paths([docs])
        wait_until(
            lambda: window.kb_tab.progress_row.isVisible() and window.kb_tab.files.rowCount() > 0,
            120,
        )
        saved += _shots(window, out_dir, "knowledge-indexing", notes)
        wait_until(lambda: not window.kb_tab.indexing and not window.kb_tab.busy(), 300)
        window.kb_tab.search_box.setText("water temperature for green tea")
        window.kb_tab.search()
        wait_until(lambda: window.kb_tab.hits.count() > 0 and not window.kb_tab.busy(), 60)
        saved += _shots(window, out_dir, "knowledge", notes)

        window.tabs.setCurrentWidget(window.chat_tab)
        saved += _shots(window, out_dir, "chat-empty", notes)
        window.chat_tab.ask(QUESTION)
        wait_until(
            lambda: len(window.chat_tab.trace.blocks) >= 3 or not window.chat_tab.running, 300
        )
        saved += _shots(window, out_dir, "chat-streaming", notes)
        wait_until(lambda: not window.chat_tab.running, 900)
        saved += _shots(window, out_dir, "chat", notes)
        cards = [c for w in window.chat_tab.trace.passage_widgets() for c in w.cards]
        if cards:
            window.chat_tab.open_passage(cards[0].hit)
            saved.append(_save(window.chat_tab.last_dialog, out_dir / "passage.png"))
            window.chat_tab.last_dialog.close()

        tab = window.dataset_tab
        window.tabs.setCurrentWidget(tab)
        wait_until(lambda: not tab.busy(), 30)
        saved += _shots(window, out_dir, "dataset-empty", notes)
        tab.form.name_edit.setText("sample")
        tab.form.count_spin.setValue(6)
        tab.generate()
        wait_until(lambda: tab.examples.table.rowCount() >= 1 or not tab.generating, 300)
        saved += _shots(window, out_dir, "dataset-generating", notes)
        wait_until(lambda: not tab.generating and not tab.busy(), 600)
        if tab.examples.table.rowCount():
            tab.examples.table.selectRow(0)
        wait_until(lambda: False, 1.0)  # let the trace lay its blocks out
        saved += _shots(window, out_dir, "dataset", notes)
        tab.side.setCurrentIndex(1)
        saved += _shots(window, out_dir, "dataset-report", notes)

        train = window.training_tab
        window.tabs.setCurrentWidget(train)
        wait_until(lambda: not train.jobs.busy() and train.form.dataset_combo.count() > 0, 60)
        saved += _shots(window, out_dir, "training-form", notes)
        train.form.fields.max_steps.setValue(4)
        train.form.fields.batch_size.setValue(2)
        train.form.fields.eval_every.setValue(2)
        train.form.fields.checkpoint_every.setValue(4)
        train.form.fields.guard_box.setChecked(False)
        for kind, box in train.form.fields.export_boxes.items():
            box.setChecked(kind in ("lora", "q8_0"))
        train.form.name_edit.setText("sample-tuned")
        train.start()
        wait_until(
            lambda: (
                len(train.monitor.chart.train) >= 3
                or (train.jobs.busy() is False and not train.running)
            ),
            600,
        )
        saved += _shots(window, out_dir, "training-running", notes)
        wait_until(lambda: not train.running and not train.jobs.busy(), 900)
        wait_until(lambda: False, 0.5)
        saved += _shots(window, out_dir, "training", notes)

        compare = window.compare_tab
        window.tabs.setCurrentWidget(compare)
        compare.refresh()
        tuned = compare.b_combo.findData("sample-tuned")
        if tuned >= 0:
            compare.b_combo.setCurrentIndex(tuned)
        compare.question.setText(QUESTION)
        compare.ask_both()
        wait_until(lambda: not compare.running, 900)
        wait_until(lambda: False, 0.5)
        saved += _shots(window, out_dir, "compare", notes)
        qa = root / "qa.jsonl"
        qa.write_text(
            "".join(
                json.dumps({"question": q, "answers": a}) + "\n"
                for q, a in (
                    (QUESTION, ["70", "80"]),
                    ("How many sheets does tray 2 hold?", ["500"]),
                    ("How long should black tea steep?", ["four to five", "4"]),
                )
            ),
            "utf-8",
        )
        compare.set_qa_file(str(qa))
        compare.views.setCurrentIndex(1)
        compare.run_comparison()
        wait_until(lambda: not compare.running, 1800)
        saved += _shots(window, out_dir, "compare-table", notes)

        window.tabs.setCurrentWidget(window.models_tab)
        window.models_tab.refresh()
        wait_until(lambda: False, 0.3)
        saved += _shots(window, out_dir, "models", notes)

        from desktop.settings_dialog import SettingsDialog

        dialog = SettingsDialog(workspace, settings, window)
        dialog.show()
        saved.append(_save(dialog, out_dir / "settings.png"))
        dialog.close()
        window.close()
        QApplication.processEvents()
    report = out_dir / "screen-audit.txt"
    report.write_text("".join(f"{line}\n" for line in notes) or "Nothing clipped or covered.\n")
    return [*saved, report]


def render_training_embedder(
    data_dir: Path, out: Path, *, steps: int = 6, reembed: bool = False
) -> Path:
    """The Training tab after an embedder run on a real data dir (one with a dataset whose
    knowledge base exists): recall before and after, and the re-embed panel ready to use the
    tuned embedder. Adds one run (and its embedder) to that data dir; with ``reembed`` the
    knowledge base is re-embedded with it too (a new version, switched to)."""
    from desktop.window import MainWindow

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cotrag-shots-") as tmp:
        workspace = Workspace(data_dir)
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(workspace, settings)
        window.resize(1280, 820)
        window.show()
        train = window.training_tab
        window.tabs.setCurrentWidget(train)
        wait_until(lambda: not train.jobs.busy() and train.form.dataset_combo.count() > 0, 120)
        train.set_kind("embedder")
        train.form.fields.max_steps.setValue(steps)
        train.form.fields.eval_every.setValue(max(1, steps // 2))
        train.form.fields.eval_passages.setValue(300)
        train.start()
        wait_until(lambda: train.running, 300)
        wait_until(lambda: not train.running, 1800)
        panel = train.reembed_panel
        wait_until(lambda: not train.jobs.busy() and not panel.jobs.busy(), 120)
        if reembed and panel.reembed_button.isEnabled():
            panel.reembed()
            wait_until(lambda: not panel.busy and not panel.jobs.busy(), 1800)
        wait_until(lambda: False, 0.5)
        _save(window, out)
        window.close()
        QApplication.processEvents()
        workspace.close()
    return out
