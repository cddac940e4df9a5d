"""Does the chat view keep the window responsive while tokens stream in?

1. Synthetic stream: a worker thread feeds the trace view Token events at 2000
   tokens/s for 10 s (blocks opening and closing as in a real trace) while a
   10 ms QTimer measures how late the event loop serves it (max and p99).
2. Real model, in the same process and interleaved, repeated, each generation from a
   worker thread as in the app: tokens/s of the bundled GGUF through raw
   llama-cpp-python; through the agent with no window
   (closed mode); through the agent into the trace view from a worker thread while
   Qt's event loop serves the window, as in the app; and the same with the window
   served by a processEvents loop every 0.5 ms (how this bench used to wait: on a
   small machine that thread takes a core from llama.cpp's threads). The GUI
   thread's CPU time per token says what the window costs the model.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_stream.py [--seconds 10]
     [--model-tokens 256] [--repeats 3] [--threads 0] [--skip-synthetic]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from core.agent.events import BlockEnd, BlockStart, Finished, RunStats, Token
from desktop.style import stylesheet
from desktop.tasks import Job
from desktop.trace_view import TraceView

WORDS = [
    "the",
    "model",
    "looks",
    "for",
    "passages",
    "about",
    "water",
    "temperature",
    "and",
    "steeping",
    "time",
    "then",
    "it",
    "checks",
    "which",
    "ones",
    "answer",
    "the",
    "question\n",
]


class LatenessProbe:
    """A 10 ms timer; records how late each tick arrives."""

    def __init__(self, interval_ms: int = 10) -> None:
        self.interval = interval_ms / 1000
        self.lateness: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.tick)
        self.last = 0.0

    def start(self) -> None:
        self.last = time.perf_counter()
        self.timer.start()

    def tick(self) -> None:
        now = time.perf_counter()
        self.lateness.append(max(0.0, now - self.last - self.interval))
        self.last = now

    def stop(self) -> tuple[float, float]:
        self.timer.stop()
        data = sorted(self.lateness) or [0.0]
        p99 = data[min(len(data) - 1, int(len(data) * 0.99))]
        return max(data) * 1000, p99 * 1000


def run_until(app: QApplication, done: threading.Event, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done.is_set() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.0005)


def synthetic(app: QApplication, view: TraceView, seconds: float, rate: int) -> None:
    applied = [0]
    original = view.handle

    def counting(events: list[object]) -> None:
        applied[0] += sum(1 for e in events if isinstance(e, Token))
        original(events)

    def work(push, cancel):  # type: ignore[no-untyped-def]
        tags = ["think", "query", "think", "results", "answer"]
        started = time.perf_counter()
        sent = 0
        block_text: list[str] = []
        tag_index = 0
        push(BlockStart(tags[0]))
        while time.perf_counter() - started < seconds:
            due = int((time.perf_counter() - started) * rate)
            while sent < due:
                word = WORDS[sent % len(WORDS)] + " "
                push(Token(tags[tag_index % len(tags)], word))
                block_text.append(word)
                sent += 1
                if sent % 400 == 0:  # a block ends: rendered once, the next one opens
                    tag = tags[tag_index % len(tags)]
                    push(BlockEnd(tag, "".join(block_text)))
                    block_text.clear()
                    tag_index += 1
                    push(BlockStart(tags[tag_index % len(tags)]))
            time.sleep(0.001)
        tag = tags[tag_index % len(tags)]
        push(BlockEnd(tag, "".join(block_text)))
        push(Finished("answered", RunStats()))
        return sent

    done = threading.Event()
    job = Job(work, name="synthetic")
    job.items.connect(counting)
    sent: list[int] = []
    job.succeeded.connect(sent.append)
    job.finished.connect(done.set)
    probe = LatenessProbe()
    probe.start()
    started = time.perf_counter()
    job.start()
    run_until(app, done, seconds + 30)
    elapsed = time.perf_counter() - started
    worst, p99 = probe.stop()
    chars = sum(len(b.text()) for b in view.block_widgets())
    print(
        f"synthetic stream: {sent[0] if sent else 0} tokens in {elapsed:.1f} s "
        f"({applied[0] / elapsed:.0f} tokens/s applied), {chars} chars on screen"
    )
    print(
        f"event-loop stall (10 ms timer lateness): max {worst:.1f} ms, p99 {p99:.1f} ms, "
        f"median {statistics.median(probe.lateness) * 1000:.2f} ms over {len(probe.lateness)} ticks"
    )


def raw_llama_tokens_per_s(llm: object, prompt: str, max_tokens: int) -> float:
    """Plain llama-cpp-python streaming on the backend's own ``Llama`` (same weights, same
    threads; the core loads it with its AMX workaround, so a bare ``Llama()`` may crash)."""
    count = 0
    first = 0.0
    stream = llm.create_completion(  # type: ignore[attr-defined]
        prompt, max_tokens=max_tokens, stream=True, temperature=0.7
    )
    for _ in stream:  # timed from the first token, so prompt evaluation is left out
        count += 1
        if count == 1:
            first = time.perf_counter()
    elapsed = time.perf_counter() - first
    llm.reset()  # type: ignore[attr-defined]
    return (count - 1) / elapsed if elapsed > 0 else 0.0


def in_worker(function: Callable[[], float]) -> float:
    """``function`` run in a worker thread of its own, as the app runs every generation.

    llama.cpp's CPU build runs its threads as an OpenMP team per calling thread: raw and
    agent must call from the same kind of thread, or the first run after a switch pays
    for the other team (measured on a busy 2-core machine: a run at under 1 token/s
    right after a switch, then 20+)."""
    out: list[float] = []
    thread = threading.Thread(target=lambda: out.append(function()), name="bench")
    thread.start()
    thread.join()
    return out[0] if out else 0.0


def headless_agent_tokens_per_s(agent: Any, question: str) -> float:
    """The agent's own rate with no window: its events consumed in this thread."""
    for event in agent.run(question, mode="closed"):
        if isinstance(event, Finished):
            return float(event.stats.tokens_per_s)
    return 0.0


def wait_for(app: QApplication, done: threading.Event, timeout: float, *, poll: bool) -> None:
    """Serve the window until ``done``: as the app does (Qt's event loop, asleep until an
    event comes), or, with ``poll``, by calling processEvents every 0.5 ms."""
    if poll:
        run_until(app, done, timeout)
        return
    loop = QEventLoop()
    watchdog = QTimer()
    watchdog.setInterval(20)
    watchdog.timeout.connect(lambda: loop.quit() if done.is_set() else None)
    watchdog.start()
    QTimer.singleShot(int(timeout * 1000), loop.quit)
    if not done.is_set():
        loop.exec()
    watchdog.stop()


def viewed_agent(
    app: QApplication, view: TraceView, agent: Any, question: str, *, poll: bool
) -> tuple[float, float, float, float]:
    """The agent streaming into the trace view from a worker thread, as the chat tab runs it:
    (the agent's tokens/s, tokens/s on screen, the GUI thread's CPU ms per token (time
    it takes from the model's threads on a small machine), p99 event-loop stall in ms)."""
    shown: list[tuple[float, int]] = []
    original = view.handle

    def counting(events: list[object]) -> None:
        original(events)
        n = sum(1 for e in events if isinstance(e, Token))
        if n:
            shown.append((time.perf_counter(), n))

    def work(push, cancel):  # type: ignore[no-untyped-def]
        stats = None
        for event in agent.run(question, mode="closed", cancel=cancel):
            push(event)
            if isinstance(event, Finished):
                stats = event.stats
        return stats

    done = threading.Event()
    job = Job(work, name="model")
    job.items.connect(counting)
    result: list[RunStats] = []
    job.succeeded.connect(result.append)
    job.finished.connect(done.set)
    view.clear()
    probe = LatenessProbe()
    probe.start()
    gui_cpu = time.thread_time()
    job.start()
    wait_for(app, done, 300, poll=poll)
    gui_cpu = time.thread_time() - gui_cpu
    _worst, p99 = probe.stop()
    if len(shown) >= 2:
        tokens = sum(n for _, n in shown[1:])
        on_screen = tokens / (shown[-1][0] - shown[0][0])
    else:
        on_screen = 0.0
    agent_rate = result[0].tokens_per_s if result and result[0] else 0.0
    generated = result[0].completion_tokens if result and result[0] else 0
    gui_ms = gui_cpu * 1000 / generated if generated else 0.0
    return agent_rate, on_screen, gui_ms, p99


def real_model(
    app: QApplication, view: TraceView, max_tokens: int, repeats: int, threads: int
) -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("real model: skipped (llama-cpp-python is not installed)")
        return
    from core.agent.loop import Agent
    from core.llm.engines import default_model_path
    from core.workspace import Workspace

    question = "Explain in detail how tea is grown, harvested, processed and brewed."
    path = default_model_path()
    rows: list[list[float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(tmp)
        ws.config.generation.answer_max_tokens = max_tokens
        ws.config.generation.temperature = 0.7
        ws.config.generation.n_threads = threads
        backend = ws.backend()
        agent = Agent(backend, None, ws.config)
        print(f"real model ({path.name}), {max_tokens} tokens, closed mode, tokens/s:")
        print(
            "   raw  agent headless  agent+view  on screen  agent+view (polling loop)   "
            "GUI thread CPU ms/token (event loop / polling)"
        )
        llm = backend.llm  # type: ignore[attr-defined]
        for _ in range(repeats):
            raw = in_worker(lambda: raw_llama_tokens_per_s(llm, question, max_tokens))
            headless = in_worker(lambda: headless_agent_tokens_per_s(agent, question))
            viewed, on_screen, gui_ms, p99 = viewed_agent(app, view, agent, question, poll=False)
            polled, _, polled_gui_ms, _ = viewed_agent(app, view, agent, question, poll=True)
            rows.append([raw, headless, viewed, on_screen, polled, gui_ms, polled_gui_ms])
            print(
                f"{raw:6.1f}  {headless:14.1f}  {viewed:10.1f}  {on_screen:9.1f}  {polled:10.1f}"
                f"   {gui_ms:.2f} / {polled_gui_ms:.2f}   (into the view: "
                f"{viewed / raw * 100 if raw else 0:.0f}% of raw; stall p99 {p99:.1f} ms)"
            )
        ws.close()
    medians = [statistics.median(column) for column in zip(*rows, strict=True)]
    raw, headless, viewed, on_screen, polled, gui_ms, polled_gui_ms = medians
    print(
        f"median: raw {raw:.1f}; agent headless {headless:.1f} ({headless / raw * 100:.0f}%); "
        f"agent into the view {viewed:.1f} ({viewed / raw * 100:.0f}%); on screen "
        f"{on_screen:.1f}; into the view with a polling loop {polled:.1f} "
        f"({polled / raw * 100:.0f}%); GUI thread CPU per token {gui_ms:.2f} ms (polling: "
        f"{polled_gui_ms:.2f} ms)"
    )
    # Raw and agent runs of one repeat are paired (same minute, same machine load): the
    # median of the per-repeat ratios is steadier than the ratio of the medians when
    # the machine's speed moves between repeats.
    paired = statistics.median(row[2] / row[0] for row in rows if row[0])
    print(f"into the view, median of the paired ratios: {paired * 100:.0f}% of raw")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--model-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=0, help="llama.cpp threads (0: the app's default)"
    )
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setStyleSheet(stylesheet())
    view = TraceView()
    view.resize(900, 800)
    view.show()
    print(f"Qt platform: {app.platformName()}")
    if not args.skip_synthetic:
        synthetic(app, view, args.seconds, args.rate)
    real_model(app, view, args.model_tokens, args.repeats, args.threads)


if __name__ == "__main__":
    main()
