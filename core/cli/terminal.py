"""Terminal output for the CLI: the live trace in tag colours, progress bars, confirmations."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from core.agent.events import (
    Answer,
    BlockEnd,
    BlockStart,
    Event,
    Finished,
    ProtocolError,
    Retrieval,
    Token,
)
from core.errors import CotragError

_COLOURS = {
    "think": "\033[2m",  # dim
    "query": "\033[1;33m",  # bold yellow
    "query_res": "\033[36m",  # cyan
    "results": "\033[1;32m",  # bold green
    "answer": "\033[0m",
    "error": "\033[1;31m",
}
_RESET = "\033[0m"


class Painter:
    """Writes tag-coloured text when the stream is a terminal."""

    def __init__(self, stream: TextIO, colour: bool) -> None:
        self.stream = stream
        self.colour = colour

    def write(self, text: str, tag: str | None = None) -> None:
        if self.colour and tag in _COLOURS:
            self.stream.write(f"{_COLOURS[tag]}{text}{_RESET}")
        else:
            self.stream.write(text)
        self.stream.flush()


def paint_event(painter: Painter, event: Event) -> None:
    """One event of the tag loop, as the live trace of `cotrag ask` shows it."""
    if isinstance(event, BlockStart):
        if event.tag == "answer":
            painter.write("\n── answer ──\n", "answer")
        elif event.tag != "query_res":
            painter.write(f"<{event.tag}>", event.tag)
    elif isinstance(event, Token):
        # The passages are shown from the Retrieval event, as a readable list.
        if event.tag != "query_res":
            painter.write(event.text, event.tag)
    elif isinstance(event, BlockEnd):
        if event.tag == "query_res":
            # Passages were shown from the Retrieval event; a note is shown as is.
            if event.kind != "passages":
                painter.write(f"<query_res>\n{event.text}\n</query_res>\n", "query_res")
        elif event.tag != "answer":
            painter.write(f"</{event.tag}>", event.tag)
            if event.kind == "seed":
                painter.write("   (the app searched with your question)", "think")
            painter.write("\n", event.tag)
    elif isinstance(event, Retrieval):
        painter.write("<query_res>\n", "query_res")
        for number, hit in zip(event.numbers, event.hits, strict=False):
            snippet = " ".join(hit.text.split())[:160]
            painter.write(f"  [{number}] {hit.label} ({hit.score:.3f}) {snippet}…\n", "query_res")
        painter.write("</query_res>\n", "query_res")
    elif isinstance(event, ProtocolError):
        painter.write(f"\n[protocol error: {event.kind}: {event.detail}]\n", "error")
    elif isinstance(event, Answer):
        painter.write("\n")
        if event.citations:
            painter.write(
                "cited: " + ", ".join(f"[{n}]" for n in event.citations) + "\n", "results"
            )
    elif isinstance(event, Finished):
        s = event.stats
        painter.write(
            f"\n── {event.reason}: {s.rounds} rounds, {s.completion_tokens} tokens at "
            f"{s.tokens_per_s:.1f} tok/s, prompt {s.prompt_tokens} tokens read, "
            f"{s.cached_tokens} already known, {s.seconds:.1f} s ──\n",
            "think",
        )


def want_colour(choice: str, stream: TextIO) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return stream.isatty()


def confirm(question: str) -> bool:
    """A y/N question before deleting; without a terminal, deleting needs --yes."""
    if not sys.stdin.isatty():
        raise CotragError("Deleting needs --yes when not run from a terminal.")
    if input(f"{question} [y/N] ").strip().lower() in ("y", "yes"):
        return True
    print("Nothing deleted.")
    return False


def progress_bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / total) if total else width
    return "#" * filled + "-" * (width - filled)


class ProgressLine:
    """One progress line rewritten in place on a terminal; a line per 10% elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = False
        self.last_decile = -1

    def update(self, done: int, total: int, text: str) -> None:
        line = f"[{progress_bar(done, total)}] {done}/{total}  {text}"
        if self.tty:
            self.stream.write("\r" + line + "   ")
            self.stream.flush()
            self.shown = True
            return
        decile = int(10 * done / total) if total else 10
        if decile != self.last_decile or done == total:
            self.last_decile = decile
            self.stream.write(line + "\n")
            self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


@contextmanager
def ctrl_c_cancels(
    cancel: threading.Event, message: str = "", *, again_aborts: bool = False
) -> Iterator[None]:
    """Within the block, Ctrl-C sets ``cancel`` (and prints ``message``) instead of raising
    KeyboardInterrupt (``again_aborts``: a second Ctrl-C raises it); the previous handler
    is back afterwards."""
    previous = signal.getsignal(signal.SIGINT)

    def stop(signum: int, frame: Any) -> None:
        if again_aborts and cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        if message:
            print(f"\n{message}", file=sys.stderr)

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
