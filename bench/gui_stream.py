"""Does the chat view keep the window responsive while tokens stream in?

1. Synthetic stream: a worker thread feeds the trace view Token events at 2000
   tokens/s for 10 s (blocks opening and closing as in a real trace) while a
   10 ms QTimer measures how late the event loop serves it (max and p99).
2. Real model: tokens/s of the bundled GGUF through raw llama-cpp-python, then
   tokens/s that reach the screen when the same model answers through the agent
   into the trace view, in the same process.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_stream.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QTimer
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


def real_model(app: QApplication, view: TraceView, max_tokens: int) -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("real model: skipped (llama-cpp-python is not installed)")
        return
    from core.agent.loop import Agent
    from core.llm.registry import default_model_path
    from core.workspace import Workspace

    question = "Explain in detail how tea is grown, harvested, processed and brewed."
    path = default_model_path()

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(tmp)
        ws.config.generation.answer_max_tokens = max_tokens
        ws.config.generation.temperature = 0.7
        backend = ws.backend()
        raw = raw_llama_tokens_per_s(backend.llm, question, max_tokens)  # type: ignore[attr-defined]
        agent = Agent(backend, None, ws.config)
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
        job.start()
        run_until(app, done, 300)
        worst, p99 = probe.stop()
        ws.close()
    if len(shown) >= 2:
        tokens = sum(n for _, n in shown[1:])
        on_screen = tokens / (shown[-1][0] - shown[0][0])
    else:
        on_screen = 0.0
    agent_rate = result[0].tokens_per_s if result and result[0] else 0.0
    print(
        f"real model ({path.name}): raw llama.cpp {raw:.1f} tokens/s; "
        f"through the agent {agent_rate:.1f} tokens/s; on screen {on_screen:.1f} tokens/s "
        f"({on_screen / raw * 100 if raw else 0:.0f}% of raw)"
    )
    print(f"event-loop stall while the model streamed: max {worst:.1f} ms, p99 {p99:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--model-tokens", type=int, default=256)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setStyleSheet(stylesheet())
    view = TraceView()
    view.resize(900, 800)
    view.show()
    print(f"Qt platform: {app.platformName()}")
    synthetic(app, view, args.seconds, args.rate)
    real_model(app, view, args.model_tokens)


if __name__ == "__main__":
    main()
