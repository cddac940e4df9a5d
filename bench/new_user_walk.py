"""The new-user walk of issue 22, scripted: the real main window on a fresh data folder,
driven through its widgets the way a person would, with the issue's defects checked.

Knowledge base by drag-and-drop of a few small documents → three questions in the chat
(and one stopped) → a 10-example dataset (templates only) → a short training run with
Cancel and Resume → Compare → Models with no network (search, Cancel, the banner after
the error, a new search) → Settings → 1024×700 and 1600×1000 with the screen audit → the
window closed and started again on the same folder.

Each step saves a screenshot under ``--out`` and prints one line per check, ``ok`` or
``FAIL`` with what it saw, and ``wait`` lines with the seconds each long wait took. It
exits 1 when a check failed. To keep it to minutes on a small machine the agent loop is
shortened (two rounds, short blocks), as ``python -m desktop --screenshots`` does.

Run: xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python bench/new_user_walk.py
     [--out /tmp/walk]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTableWidget,
    QTextBrowser,
    QWidget,
)

from core.workspace import Workspace, setup_logging
from desktop.screen_audit import audit
from desktop.style import stylesheet
from desktop.window import TABS, MainWindow

DOCS = {
    "houseplants.md": """# Caring for houseplants

## Watering
Most houseplants want water when the top two centimetres of soil are dry. A snake
plant needs water only every two to three weeks; a fern wants evenly moist soil.

## Light
Place flowering plants near a bright window, but out of the hot afternoon sun,
which scorches their leaves.
""",
    "bread.md": """# Baking a simple loaf

Mix 500 g of flour, 350 g of water, 10 g of salt and 5 g of dried yeast. Knead the
dough for ten minutes, then let it rise at about 25 degrees Celsius until it has
doubled, which takes one to two hours. Bake at 230 degrees for 35 minutes.
""",
    "bicycle-history.txt": """A short history of the bicycle

The first two-wheeled machine, the running machine, was built by Karl Drais in 1817;
riders pushed it along with their feet. Pedals on the front wheel came in the 1860s,
and the safety bicycle with a chain drive to the rear wheel appeared in 1885.
""",
    "tyres.md": """# Bicycle tyre pressure

Road tyres run at 6 to 8 bar, mountain bike tyres at 1.5 to 2.5 bar. Check the
pressure every week: tyres lose air slowly even without a puncture.
""",
}
QUESTIONS = (
    "How often does a snake plant need water?",
    "At what temperature should bread dough rise?",
    "Who built the first two-wheeled machine?",
)
# Words of the program, not the user's: none of these may show anywhere in the window.
RAW_WORDS = re.compile(
    r"--resume|repeated_query|one_hop|round_trip_sec|prompt tokens reused|★ default|"
    r"\]\(cite:|\[\\\[|Traceback|\bNone\b(?!\s+\w)"
)
MARKDOWN_LEFTOVERS = re.compile(r"^#{1,6} |`|\*\*", re.MULTILINE)


class Walk:
    """The checks' tally, the screenshots and the waits."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.failed = 0
        self.checks = 0
        self.t0 = time.monotonic()

    def check(self, ok: bool, what: str, saw: str = "") -> bool:
        self.checks += 1
        if not ok:
            self.failed += 1
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {saw}" if saw else ""), flush=True)
        return ok

    def note(self, text: str) -> None:
        print(f"     {text}", flush=True)

    def wait(self, what: str, condition: Callable[[], bool], timeout: float) -> bool:
        start = time.monotonic()
        done = pump_until(condition, timeout)
        took = time.monotonic() - start
        print(f"wait {what}: {took:.1f} s" + ("" if done else " (timed out)"), flush=True)
        return done

    def shot(self, widget: QWidget, name: str) -> None:
        pump(0.3)
        path = self.out / f"{name}.png"
        widget.grab().save(str(path))
        print(f"shot {path}", flush=True)


def pump(seconds: float) -> None:
    pump_until(lambda: False, seconds)


def pump_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Recorder:
    """Samples a text every 100 ms and keeps each change with its time."""

    def __init__(self, read: Callable[[], str]) -> None:
        self.read = read
        self.seen: list[tuple[float, str]] = []
        self.t0 = time.monotonic()
        self.timer = QTimer()
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.sample)
        self.timer.start()
        self.sample()

    def sample(self) -> None:
        text = self.read()
        if not self.seen or self.seen[-1][1] != text:
            self.seen.append((time.monotonic() - self.t0, text))

    def stop(self) -> list[tuple[float, str]]:
        self.sample()
        self.timer.stop()
        return self.seen

    def longest(self, match: Callable[[str], bool]) -> tuple[float, str]:
        """The longest any one matching text stayed unchanged (seconds) and that text."""
        best: tuple[float, str] = (0.0, "")
        now = time.monotonic() - self.t0
        for i, (t, text) in enumerate(self.seen):
            end = self.seen[i + 1][0] if i + 1 < len(self.seen) else now
            if match(text) and end - t > best[0]:
                best = (end - t, text)
        return best


# -- what a person does ---------------------------------------------------------------------
def click(button: QAbstractButton) -> None:
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    QApplication.processEvents()


def type_into(widget: QLineEdit | QAbstractSpinBox | QPlainTextEdit, text: str) -> None:
    widget.setFocus()
    widget.selectAll()
    QTest.keyClick(widget, Qt.Key.Key_Delete)
    QTest.keyClicks(widget, text)
    QApplication.processEvents()


def choose(combo: QComboBox, data: object) -> bool:
    """Pick the item whose data (or text) is ``data``, as from the open list."""
    index = combo.findData(data)
    if index < 0:
        index = combo.findText(str(data))
    if index < 0:
        return False
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    QApplication.processEvents()
    return True


def open_tab(window: MainWindow, key: str) -> None:
    index = [k for k, _icon, _label in TABS].index(key)
    bar = window.tabs.tabBar()
    QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
    pump(0.2)


def wheel(widget: QWidget, notches: int = -3) -> None:
    """Wheel turns over ``widget`` with the pointer on it (it does not have focus)."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(widget.rect().center())),
        QPoint(0, 0),
        QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)
    QApplication.processEvents()


def drop_files(target: QWidget, at: QWidget, paths: list[Path]) -> bool:
    """Drag ``paths`` from a file manager onto ``at`` (a child of ``target``) and drop."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(at.mapTo(target, at.rect().center()))
    actions = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(
        pos.toPoint(), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(target, enter)
    accepted = enter.isAccepted()
    drop = QDropEvent(pos, actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, drop)
    QApplication.processEvents()
    return accepted and drop.isAccepted()


def visible_texts(root: QWidget) -> list[str]:
    """Every text a person can read in ``root``: labels, buttons, combo boxes, table cells,
    text views."""
    texts: list[str] = []
    for w in [root, *root.findChildren(QWidget)]:
        if not w.isVisible():
            continue
        if isinstance(w, QLabel | QAbstractButton):
            texts.append(w.text())
        elif isinstance(w, QComboBox):
            texts.extend(w.itemText(i) for i in range(w.count()))
        elif isinstance(w, QTableWidget):
            for r in range(w.rowCount()):
                for c in range(w.columnCount()):
                    item = w.item(r, c)
                    if item is not None:
                        texts.append(item.text())
        elif isinstance(w, QTextBrowser):
            texts.append(w.toPlainText())
    return texts


def plain_words(walk: Walk, root: QWidget, where: str) -> None:
    raw = sorted(
        {
            repr(t[max(0, m.start() - 30) : m.end() + 30])
            for t in visible_texts(root)
            for m in RAW_WORDS.finditer(t)
        }
    )
    walk.check(not raw, f"{where}: plain words (no codes, flags or markup)", ", ".join(raw))


def audit_here(walk: Walk, window: QWidget, where: str) -> None:
    found = audit(window)
    walk.check(not found, f"{where}: screen audit", "; ".join(str(f) for f in found[:6]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the walk ---------------------------------------------------------------------------------
def first_start(walk: Walk, window: MainWindow) -> None:
    walk.wait("the window paints", lambda: window.painted and not window.kb_tab.busy(), 60)
    # A fresh folder opens on the welcome; this walk brings its own documents: Not now.
    welcome = window.welcome
    walk.check(welcome is not None, "First start: the welcome shows on a fresh data folder")
    if welcome is not None:
        walk.shot(window, "00-welcome")
        QTest.mouseClick(welcome.close_button, Qt.MouseButton.LeftButton)
        walk.check(
            window.welcome is None and window.tabs.isVisible(),
            "First start: Not now closes the welcome and shows the tabs",
        )
    kb = window.kb_tab
    walk.shot(window, "01-knowledge-empty")
    walk.check(
        not kb.remove_button.isEnabled(),
        "Knowledge base: Remove document disabled without a knowledge base",
        kb.remove_button.toolTip(),
    )
    open_tab(window, "chat")
    chat = window.chat_tab
    walk.check(
        not chat.ask_box.ask_button.isEnabled(),
        "Chat: Ask disabled without a knowledge base",
        chat.ask_box.ask_button.toolTip(),
    )
    walk.check(
        not chat.side.export_button.isEnabled() and not chat.side.delete_button.isEnabled(),
        "Chat: Export…/Delete disabled without a conversation",
    )
    walk.shot(window, "02-chat-empty")
    open_tab(window, "dataset")
    ds = window.dataset_tab
    walk.wait("the Dataset tab reads the folder", lambda: not ds.busy(), 30)
    walk.check(
        not ds.form.generate_button.isEnabled(),
        "Dataset: Generate disabled without a knowledge base",
        ds.form.generate_button.toolTip(),
    )
    walk.check(not ds.editor.undo_button.isEnabled(), "Dataset: Undo disabled with nothing done")
    walk.shot(window, "03-dataset-empty")
    open_tab(window, "kb")


def knowledge_base(walk: Walk, window: MainWindow, docs: Path) -> None:
    open_tab(window, "kb")
    kb = window.kb_tab
    paths = [docs / name for name in DOCS]
    stage = Recorder(lambda: kb.progress_row.label.text() if kb.progress_row.isVisible() else "")
    walk.check(kb.acceptDrops(), "Knowledge base: the tab accepts drops")
    dropped = drop_files(kb, kb.drop_zone, paths)
    walk.check(dropped, "Knowledge base: the drop of 4 files is accepted")
    pump_until(lambda: kb.files.rowCount() > 0, 60)
    walk.shot(window, "04-knowledge-indexing")
    walk.wait("indexing 4 documents", lambda: not kb.indexing and not kb.busy(), 600)
    seen = stage.stop()
    walk.note("indexing row: " + " | ".join(f"{t:.1f}s {s!r}" for t, s in seen[:12]))
    stale, text = stage.longest(lambda s: bool(re.match(r"0 of \d+ files · 0 chunks", s)))
    walk.check(
        stale < 3.0,
        "Knowledge base: no '0 of N files · 0 chunks' standing while the embedder loads",
        f"{text!r} for {stale:.1f} s",
    )
    waits = [s for _t, s in seen if s.startswith(("Loading", "Preparing", "Reading"))]
    walk.check(bool(waits), "Knowledge base: the wait says what it waits for", repr(waits[:3]))
    rows = kb.files.rowCount()
    walk.check(rows == len(paths), "Knowledge base: one row per dropped file", f"{rows} rows")
    walk.check(kb.current_kb != "", "Knowledge base: a knowledge base exists", kb.current_kb)
    message = window.statusBar().currentMessage()
    walk.note(f"status bar: {message!r}")

    type_into(kb.search_box, "tyre pressure for a road bike")
    click(kb.search_button)
    walk.wait("a search", lambda: kb.hits.count() > 0 and not kb.busy(), 60)
    texts: list[str] = []
    for i in range(kb.hits.count()):
        row = kb.hits.itemWidget(kb.hits.item(i))
        if row is not None:
            texts.extend(lab.text() for lab in row.findChildren(QLabel))
    leftovers = [t for t in texts if MARKDOWN_LEFTOVERS.search(t)]
    walk.check(not leftovers, "Knowledge base: results show no raw Markdown", repr(leftovers[:2]))
    walk.check(
        not kb.hits.horizontalScrollBar().isVisible(),
        "Knowledge base: results need no horizontal scrollbar",
    )
    walk.shot(window, "05-knowledge-search")
    if kb.hits.count():
        item = kb.hits.item(0)
        rect = kb.hits.visualItemRect(item)
        QTest.mouseClick(kb.hits.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        pump(0.5)
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog)]
        shown = [d for d in dialogs if d.isVisible()]
        if shown:
            dialog = shown[-1]
            walk.shot(dialog, "06-passage-dialog")
            body = " ".join(
                b.toPlainText() for b in dialog.findChildren(QTextBrowser) if b.isVisible()
            )
            walk.check(
                not MARKDOWN_LEFTOVERS.search(body),
                "Knowledge base: the passage dialog renders its Markdown",
                body[:80],
            )
            dialog.close()
        else:
            walk.note("a double click on a result opened no dialog")
    audit_here(walk, window, "Knowledge base")
    plain_words(walk, window, "Knowledge base")


def chat(walk: Walk, window: MainWindow) -> None:
    open_tab(window, "chat")
    chat = window.chat_tab
    footer = chat.footer
    walk.check(chat.toolbar.kb != "", "Chat: the new knowledge base is chosen", chat.toolbar.kb)
    model_text = chat.toolbar.model_combo.currentText()
    walk.check(
        "default" not in model_text.lower(), "Chat: the model box names the model", model_text
    )
    for n, question in enumerate(QUESTIONS, 1):
        feedback_seen: list[bool] = []
        record = Recorder(lambda: footer.text() if chat.running else "")
        visible = Recorder(
            lambda: str(chat.running and footer.thumb_up.isVisible()) if chat.running else ""
        )
        cards_before = len(chat.trace.passage_widgets())
        results_before = len(chat.trace.block_widgets("results"))
        type_into(chat.ask_box.question, question)
        click(chat.ask_box.ask_button)
        walk.check(chat.running, f"Chat: question {n} starts from Ask")
        walk.wait(f"question {n} answered", lambda: not chat.running, 900)
        texts = record.stop()
        feedback_seen = [s == "True" for _t, s in visible.stop()]
        running = [s for _t, s in texts if s]
        walk.note(f"footer during question {n}: " + " | ".join(running[:4]) + " …")
        if n == 1:
            walk.check(
                bool(running) and running[0].startswith("Loading the model…"),
                "Chat: the first question says 'Loading the model…' with a clock",
                running[0] if running else "nothing",
            )
        frozen, text = record.longest(bool)
        walk.check(
            frozen < 2.0, f"Chat: question {n}'s footer never freezes", f"{text!r} {frozen:.1f} s"
        )
        walk.check(
            not any(feedback_seen), f"Chat: ✓/✗/Add to dataset hidden while answer {n} is written"
        )
        answers = chat.trace.block_widgets("answer")
        answer = answers[-1].text() if answers else ""
        walk.note(f"answer {n}: {answer[:140]!r}")
        walk.check(bool(answer), f"Chat: question {n} has an answer")
        walk.check(
            "](cite:" not in answer and "[\\[" not in answer,
            f"Chat: answer {n}'s citations are links, not markup",
        )
        # Each question's run numbers its own passages from [1]: this run's cards only.
        numbers = [c.number for w in chat.trace.passage_widgets()[cards_before:] for c in w.cards]
        walk.check(
            numbers == sorted(numbers),
            f"Chat: passages numbered in order of appearance (question {n})",
            str(numbers),
        )
        passages = chat.trace.passages
        for block in chat.trace.block_widgets("results")[results_before:]:
            for number, label in re.findall(r"\[(\d+)\] (\S+#\d+)", block.text()):
                hit = passages.get(int(number))
                walk.check(
                    hit is not None and hit.label == label,
                    f"Chat: vetted passage [{number}] carries the app's label",
                    f"{label} vs {hit.label if hit else 'none'}",
                )
        walk.shot(window, f"07-chat-answer-{n}")
    walk.check(
        footer.thumb_up.isVisible() and footer.add_dataset_button.isVisible(),
        "Chat: ✓/✗/Add to dataset shown once the answer is in",
    )
    walk.check(
        chat.side.export_button.isEnabled() and chat.side.delete_button.isEnabled(),
        "Chat: Export…/Delete enabled with a conversation",
    )
    # A fourth question, stopped by the user.
    type_into(chat.ask_box.question, "What should I check on my bicycle every week?")
    click(chat.ask_box.ask_button)
    pump(1.5)
    click(chat.ask_box.stop_button)
    walk.wait("the stopped question ends", lambda: not chat.running, 120)

    def stopped_row() -> bool:
        rows = chat.trace.findChildren(QLabel)
        return any(w.objectName() == "runStopped" and w.isVisible() for w in rows)

    walk.wait("the stopped turn's row", stopped_row, 10)
    walk.check(stopped_row(), "Chat: a stopped turn says 'Stopped'")
    thinking = [b.text() for b in chat.trace.block_widgets("think")]
    leaks = [t for t in thinking if re.search(r"</?\w*$|^<", t.strip())]
    walk.check(not leaks, "Chat: no half-written tag left in a stopped turn", repr(leaks[-1:]))
    walk.shot(window, "08-chat-stopped")
    audit_here(walk, window, "Chat")
    plain_words(walk, window, "Chat")


def dataset(walk: Walk, window: MainWindow) -> None:
    open_tab(window, "dataset")
    ds = window.dataset_tab
    form = ds.form
    width = window.width()
    walk.check(form.generate_button.isEnabled(), "Dataset: Generate enabled with a knowledge base")
    type_into(form.name_edit, "walk-qa")
    type_into(form.count_spin, "10")
    walk.check(
        form.count_spin.value() == 10, "Dataset: 10 examples typed", str(form.count_spin.value())
    )
    walk.check(choose(form.teacher_combo, "none"), "Dataset: the form offers templates only")
    click(form.generate_button)
    walk.wait("10 examples", lambda: not ds.generating and not ds.busy(), 900)
    rows = ds.examples.table.rowCount()
    said = ds.form.progress_label.text()
    walk.check(
        rows == 10 or f"Only {rows} of the 10 asked for" in said,
        "Dataset: 10 examples listed, or the form says why fewer",
        f"{rows} rows; {said!r}",
    )
    walk.check(
        window.width() == width,
        "Dataset: the window keeps its width",
        f"{width} → {window.width()}",
    )
    qwidth = ds.examples.table.columnWidth(0)
    walk.check(qwidth >= 150, "Dataset: the Question column is readable", f"{qwidth} px")
    splits = [str(e.get("split", "")) for e in ds.examples.examples]
    walk.note(f"splits: {sorted(set(splits))}, validation {splits.count('validation')}")
    walk.check(
        any(s in ("validation", "val", "eval") for s in splits),
        "Dataset: a 10-example dataset keeps a validation share",
        f"{splits.count('validation')} validation",
    )
    walk.check(not ds.editor.undo_button.isEnabled(), "Dataset: Undo disabled on a fresh dataset")
    if rows:
        ds.examples.table.selectRow(0)
        pump(1.0)
    walk.shot(window, "09-dataset")
    audit_here(walk, window, "Dataset")
    plain_words(walk, window, "Dataset")
    ds.side.setCurrentIndex(1)
    walk.shot(window, "10-dataset-report")
    plain_words(walk, window, "Dataset report")
    ds.side.setCurrentIndex(0)


def training(walk: Walk, window: MainWindow) -> None:
    open_tab(window, "training")
    train = window.training_tab
    form, fields = train.form, train.form.fields
    walk.wait(
        "the Training tab's lists",
        lambda: not train.jobs.busy() and form.dataset_combo.count() > 0,
        60,
    )
    walk.check(choose(form.dataset_combo, "walk-qa"), "Training: the new dataset is offered")
    note = form.preset_note.text()
    walk.check(bool(note.strip()), "Training: the preset says what it does", note[:80])
    before = (
        fields.engine_combo.currentText(),
        fields.max_steps.value(),
        fields.batch_size.value(),
    )
    for w in (fields.engine_combo, fields.max_steps, fields.batch_size, form.preset_combo):
        wheel(w, -3)
        wheel(w, 3)
        wheel(w, -2)
    after = (fields.engine_combo.currentText(), fields.max_steps.value(), fields.batch_size.value())
    walk.check(
        before == after,
        "Training: the wheel over unfocused inputs changes nothing",
        f"{before} → {after}",
    )
    type_into(fields.max_steps, "3")
    type_into(fields.batch_size, "1")
    type_into(fields.eval_every, "0")
    type_into(fields.checkpoint_every, "1")
    if fields.guard_box.isChecked():
        click(fields.guard_box)
    for kind, box in fields.export_boxes.items():
        if box.isChecked() != (kind == "lora"):
            click(box)
    type_into(form.name_edit, "walk-run")
    walk.shot(window, "11-training-form")
    audit_here(walk, window, "Training form")

    header = Recorder(lambda: train.monitor.status_label.text())
    steps = Recorder(
        lambda: f"{train.history.cell('walk-run', 'Step')} {train.history.cell('walk-run', 'Loss')}"
    )
    bar = Recorder(lambda: f"{train.monitor.progress.value()}/{train.monitor.progress.maximum()}")
    mixed = Recorder(
        lambda: (
            "stale"
            if "Tokenizing" in train.monitor.status_label.text()
            and re.search(r"^step \d", train.monitor.log_view.toPlainText(), re.MULTILINE)
            else ""
        )
    )
    click(form.start_button)
    walk.wait("the run starts", lambda: train.running, 120)
    walk.wait(
        "the first step (base converted, model loaded)",
        lambda: (
            train.history.cell("walk-run", "Step").startswith(("1/", "2/", "3/"))
            or bool(train.monitor.chart.train)
            or not train.running
        ),
        900,
    )
    walk.shot(window, "12-training-running")
    step = train.history.cell("walk-run", "Step")
    walk.check(
        step not in ("", "0/0"),
        "Training: the Runs table follows the running run",
        f"Step {step!r}",
    )
    walk.check(train.running, "Training: the run is still going at its first step")
    value_before = train.monitor.progress.value()
    click(form.cancel_button)
    walk.wait("Cancel ends the run", lambda: not train.running, 300)
    walk.check(
        train.monitor.progress.value() >= max(1, value_before) or value_before == 0,
        "Training: after Cancel the bar stays where it stopped",
        f"{value_before} → {train.monitor.progress.value()}/{train.monitor.progress.maximum()}",
    )
    walk.note(f"after Cancel: {train.monitor.status_label.text()!r}")
    walk.shot(window, "13-training-cancelled")
    pump_until(lambda: not train.jobs.busy(), 30)
    # The name again: the window offers the run, in its own words.
    click(form.start_button)
    pump_until(lambda: train.banner.isVisible() or train.running, 30)
    banner = train.banner.text() if train.banner.isVisible() else ""
    walk.check(
        "--resume" not in banner and "walk-run" in banner,
        "Training: a taken name is offered for Resume in the window's words",
        banner[:120],
    )
    if train.running:
        walk.note("the second Start started a run")
    walk.wait("Resume offered", lambda: train.history.resume_button.isEnabled(), 10)
    walk.check(train.history.resume_button.isEnabled(), "Training: Resume enabled for the run")
    click(train.history.resume_button)
    walk.wait("the resumed run starts", lambda: train.running, 120)
    walk.wait("the resumed run ends", lambda: not train.running, 900)
    pump_until(lambda: not train.jobs.busy(), 30)
    pump(1.0)
    walk.shot(window, "14-training-done")
    seen = header.stop()
    walk.note("header: " + " | ".join(s for _t, s in seen[:16]))
    walk.note("Runs table: " + " | ".join(s for _t, s in steps.stop()))
    walk.note("bar: " + " | ".join(s for _t, s in bar.stop()))
    walk.check(
        not any(s for _t, s in mixed.stop()),
        "Training: the header never says 'Tokenizing' while the log shows steps",
    )
    stuck, text = header.longest(lambda s: "Tokenizing" in s or "starting" in s)
    walk.note(f"longest preparation headline: {text!r} {stuck:.1f} s")
    state = train.history.cell("walk-run", "State")
    walk.check(state == "done", "Training: the resumed run is done", state)
    final_step = train.history.cell("walk-run", "Step")
    walk.check(final_step.startswith("3"), "Training: the Runs table shows its steps", final_step)
    bar_now = (train.monitor.progress.value(), train.monitor.progress.maximum())
    walk.check(
        bar_now[0] == bar_now[1] and bar_now[1] > 0, "Training: a full bar when done", str(bar_now)
    )
    log_text = train.monitor.log_view.toPlainText()
    rows = re.findall(r"(\d+) training rows?, (\d+) validation rows?", log_text)
    walk.note(f"log rows: {rows}; log ends {log_text[-300:]!r}")
    audit_here(walk, window, "Training")
    plain_words(walk, window, "Training")


def compare(walk: Walk, window: MainWindow) -> None:
    open_tab(window, "compare")
    cmp = window.compare_tab
    walk.check(choose(cmp.b_combo, "walk-run"), "Compare: the tuned model is offered as B")
    type_into(cmp.question, QUESTIONS[0])
    click(cmp.side.ask_button)
    walk.check(cmp.running, "Compare: Ask both starts")
    side = cmp.side
    first = side.status.text()
    pump(8.0)
    walk.shot(window, "15-compare-running")  # what the wait looks like
    waiting = side.status.text()
    walk.check(
        bool(re.search(r"(Loading model [AB]|Model [AB] is answering)… \d+\.\d s$", waiting))
        and waiting != first,
        "Compare: the wait says what it waits for, with a clock that moves",
        f"{first!r} then {waiting!r}",
    )
    walk.check(side.stop_button.isEnabled(), "Compare: Stop is offered while it waits")
    walk.wait("both answers", lambda: not cmp.running, 900)
    walk.check(
        side.status.text().startswith("Both answered in "),
        "Compare: the end says so",
        side.status.text(),
    )
    gap = abs(
        side.title_b.mapTo(window, QPoint(0, 0)).x() - side.trace_b.mapTo(window, QPoint(0, 0)).x()
    )
    walk.check(gap < 40, "Compare: the B title sits on the B pane", f"{gap} px apart")
    for trace, name in ((cmp.trace_a, "A"), (cmp.trace_b, "B")):
        answers = trace.block_widgets("answer")
        text = answers[-1].text() if answers else ""
        walk.check(bool(text), f"Compare: {name} answered", text[:80])
        walk.check("](cite:" not in text, f"Compare: {name}'s citations are links")
    walk.shot(window, "15-compare")
    audit_here(walk, window, "Compare")
    plain_words(walk, window, "Compare")


def models(walk: Walk, window: MainWindow) -> None:
    # A hub that takes the connection and never answers, then a port nobody listens on.
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(8)
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{hanging.getsockname()[1]}"
    open_tab(window, "models")
    tab = window.models_tab
    hub = tab.hub
    cells = (tab.table.item(r, 0) for r in range(tab.table.rowCount()))
    names = [cell.text() for cell in cells if cell is not None]
    walk.check(
        any("SmolLM2" in n for n in names) and not any(n.strip() == "★ default" for n in names),
        "Models: the bundled model is listed by its name",
        ", ".join(names[:3]),
    )
    type_into(tab.query, "smollm")
    click(tab.search_button)
    pump(1.0)
    walk.check(
        tab.search_button.text() == "Cancel",
        "Models: while the hub does not answer, the button offers Cancel",
        f"{tab.search_button.text()!r}, {tab.repo_label.text()!r}",
    )
    walk.shot(window, "16-models-searching")
    start = time.monotonic()
    click(tab.search_button)
    walk.check(
        tab.search_button.text() == "Search" and "Searching" not in tab.repo_label.text(),
        "Models: Cancel stops the wait at once",
        f"{time.monotonic() - start:.2f} s, {tab.repo_label.text()!r}",
    )
    hanging.close()
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    click(tab.search_button)
    walk.wait("a search with no network fails", lambda: not hub.searching, 120)
    banner = tab.banner.text() if tab.banner.isVisible() else ""
    walk.check(bool(banner), "Models: the failure shows in the banner", banner[:100])
    walk.check(
        "Searching" not in tab.repo_label.text(),
        "Models: 'Searching…' does not stay after the error",
        tab.repo_label.text(),
    )
    walk.shot(window, "17-models-failed")
    click(tab.search_button)
    walk.check(not tab.banner.isVisible(), "Models: a new search takes the old banner away")
    walk.wait("the new search fails too", lambda: not hub.searching, 120)
    failed_message = window.statusBar().currentMessage()
    open_tab(window, "kb")
    now = window.statusBar().currentMessage()
    walk.check(
        not failed_message or now != failed_message,
        "Status bar: the Models message does not follow to the Knowledge base tab",
        repr(now),
    )
    open_tab(window, "models")
    audit_here(walk, window, "Models")
    plain_words(walk, window, "Models")


def settings_dialog(walk: Walk, window: MainWindow) -> None:
    seen: list[str] = []

    def look() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            seen.append("no dialog")
            return
        walk.shot(dialog, "18-settings")
        found = audit(dialog)
        seen.append("; ".join(str(f) for f in found[:4]) or "fits")
        plain_words(walk, dialog, "Settings")
        cast_dialog = dialog if isinstance(dialog, QDialog) else None
        if cast_dialog is not None:
            cast_dialog.reject()

    QTimer.singleShot(800, look)
    action = next(a for a in window.findChildren(QAction) if "Settings" in a.text())
    action.trigger()
    walk.check(seen == ["fits"], "Settings: the dialog opens from the menu and fits", str(seen))


def sizes(walk: Walk, window: MainWindow) -> None:
    for width, height in ((1024, 700), (1600, 1000)):
        window.resize(width, height)
        pump(0.5)
        walk.check(
            (window.width(), window.height()) == (width, height),
            f"Window: resized to {width}×{height}",
            f"{window.width()}×{window.height()}",
        )
        for key, _icon, _label in TABS:
            open_tab(window, key)
            pump(0.3)
            audit_here(walk, window, f"{key} at {width}")
            walk.shot(window, f"19-{key}-{width}")


def restart(walk: Walk, data: Path, settings_file: Path) -> None:
    window = MainWindow(Workspace(data), QSettings(str(settings_file), QSettings.Format.IniFormat))
    window.show()
    walk.wait("the window paints again", lambda: window.painted and not window.kb_tab.busy(), 60)
    walk.check(
        window.kb_tab.current_kb != "",
        "Restart: the knowledge base is there",
        window.kb_tab.current_kb,
    )
    walk.check(
        (window.width(), window.height()) == (1600, 1000),
        "Restart: the window keeps its size",
        f"{window.width()}×{window.height()}",
    )
    open_tab(window, "chat")
    chat = window.chat_tab
    pump(0.5)
    conversations = chat.side.list.count()
    walk.check(conversations == 1, "Restart: the conversation is listed", str(conversations))
    if conversations:
        item = chat.side.list.item(0)
        rect = chat.side.list.visualItemRect(item)
        QTest.mouseClick(chat.side.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        pump(1.0)
        answers = chat.trace.block_widgets("answer")
        walk.check(len(answers) >= 3, "Restart: the three answers come back", str(len(answers)))
        stopped = [w for w in chat.trace.findChildren(QLabel) if w.objectName() == "runStopped"]
        walk.check(bool(stopped), "Restart: the stopped turn still says so")
        walk.shot(window, "20-restart-chat")
    open_tab(window, "dataset")
    ds = window.dataset_tab
    walk.wait("the Dataset tab reads the folder", lambda: not ds.busy(), 30)
    pump(0.5)
    name, count = ds.form.name_edit.text(), ds.form.count_spin.value()
    button = ds.form.generate_button.text()
    walk.note(f"Dataset form after the restart: name {name!r}, {count} examples, button {button!r}")
    walk.check(
        name != "walk-qa" or button != "Generate",
        "Restart: Generate does not silently add to the old dataset",
        f"{name!r}, {button!r}",
    )
    walk.shot(window, "21-restart-dataset")
    open_tab(window, "training")
    train = window.training_tab
    pump_until(lambda: train.history.row_of("walk-run") >= 0, 30)
    walk.check(
        train.history.cell("walk-run", "State") == "done",
        "Restart: the run is listed as done",
        train.history.cell("walk-run", "State"),
    )
    walk.shot(window, "22-restart-training")
    window.close()
    pump(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/walk"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    app.setStyleSheet(stylesheet())
    walk = Walk(args.out)
    with tempfile.TemporaryDirectory(prefix="cotrag-walk-") as tmp:
        root = Path(tmp)
        docs = root / "my-notes"
        docs.mkdir()
        for name, text in DOCS.items():
            (docs / name).write_text(text, encoding="utf-8")
        data = root / "data"
        workspace = Workspace(data)
        loop = workspace.config.loop
        loop.max_rounds, loop.max_block_tokens, loop.max_total_tokens = 2, 96, 400
        setup_logging(workspace.layout)
        settings_file = root / "settings.ini"
        window = MainWindow(workspace, QSettings(str(settings_file), QSettings.Format.IniFormat))
        window.resize(1280, 800)
        window.show()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("first start", lambda: first_start(walk, window)),
            ("knowledge base", lambda: knowledge_base(walk, window, docs)),
            ("chat", lambda: chat(walk, window)),
            ("dataset", lambda: dataset(walk, window)),
            ("training", lambda: training(walk, window)),
            ("compare", lambda: compare(walk, window)),
            ("models", lambda: models(walk, window)),
            ("settings", lambda: settings_dialog(walk, window)),
            ("sizes", lambda: sizes(walk, window)),
        ]
        for name, step in steps:
            print(f"== {name} ({time.monotonic() - walk.t0:.0f} s in)", flush=True)
            try:
                step()
            except Exception as exc:  # one broken step must not hide the others' findings
                traceback.print_exc()
                walk.check(
                    False, f"{name}: the step ran to its end", f"{type(exc).__name__}: {exc}"
                )
        window.close()
        pump(0.5)
        print(f"== restart ({time.monotonic() - walk.t0:.0f} s in)", flush=True)
        try:
            restart(walk, data, settings_file)
        except Exception as exc:
            walk.check(False, "restart: the step ran to its end", f"{type(exc).__name__}: {exc}")
    print(
        f"{walk.checks - walk.failed} of {walk.checks} checks ok, {walk.failed} FAIL; "
        f"{time.monotonic() - walk.t0:.0f} s in all",
        flush=True,
    )
    return 1 if walk.failed else 0


if __name__ == "__main__":
    sys.exit(main())
