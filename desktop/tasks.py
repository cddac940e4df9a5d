"""Run blocking core work off the GUI thread and bring its results back safely.

A worker thread never touches a widget. It pushes items into a locked queue and
wakes a QObject that lives in the GUI thread through a *queued* signal; that
object drains the queue there. A wake is sent only when the queue goes from empty
to non-empty, and drains are spaced by ``COALESCE_MS``, so a model streaming
thousands of tokens a second costs the event loop ~30 drains a second, each
handing the consumers one merged batch (the first item of a quiet period paints
at once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from core.errors import CotragError

log = logging.getLogger(__name__)

COALESCE_MS = 30

Push = Callable[[object], None]
Work = Callable[[Push, threading.Event], Any]


def user_message(exc: BaseException) -> str:
    """One sentence for the window; the traceback goes to the log file."""
    if isinstance(exc, CotragError):
        return str(exc)
    text = str(exc) or type(exc).__name__
    return f"Something went wrong ({type(exc).__name__}: {text}). The details are in the log file."


@dataclass(frozen=True)
class _Result:
    value: Any


@dataclass(frozen=True)
class _Failure:
    message: str
    exc: BaseException


class _Done:
    pass


class Job(QObject):
    """One piece of background work: ``work(push, cancel)`` runs in a thread.

    Signals are emitted in the GUI thread, in the order the worker produced them:
    ``items`` (batches of what ``push`` received), then ``succeeded`` (the return
    value) or ``failed`` (a sentence), then ``finished``. Create and connect a Job
    in the GUI thread; connecting plain functions or lambdas to its signals is safe
    because they are emitted from here, never from the worker.
    """

    items = Signal(list)
    succeeded = Signal(object)
    failed = Signal(str)
    finished = Signal()
    _wake = Signal()

    def __init__(self, work: Work, name: str = "job", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._work = work
        self._name = name
        self._queue: deque[object] = deque()
        self._lock = threading.Lock()
        self.cancel_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_drain = 0.0
        self._done = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._drain)
        # Explicitly queued: the emitting thread is the worker, the slot must run here.
        self._wake.connect(self._on_wake, Qt.ConnectionType.QueuedConnection)

    # -- GUI thread ---------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def running(self) -> bool:
        return not self._done

    def wait(self, timeout: float | None = None) -> bool:
        """Join the worker thread (True when it ended). Queued items are then drained."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        self._drain()
        return True

    @Slot()
    def _on_wake(self) -> None:
        if self._timer.isActive():
            return
        since = (time.monotonic() - self._last_drain) * 1000
        if since >= COALESCE_MS:
            self._drain()
        else:
            self._timer.start(int(COALESCE_MS - since) + 1)

    @Slot()
    def _drain(self) -> None:
        self._last_drain = time.monotonic()
        with self._lock:
            pending = list(self._queue)
            self._queue.clear()
        batch: list[object] = []
        for item in pending:
            if isinstance(item, _Result | _Failure | _Done):
                if batch:
                    self.items.emit(batch)
                    batch = []
                if isinstance(item, _Result):
                    self.succeeded.emit(item.value)
                elif isinstance(item, _Failure):
                    self.failed.emit(item.message)
                else:
                    self._done = True
                    self.finished.emit()
            else:
                batch.append(item)
        if batch:
            self.items.emit(batch)

    # -- worker thread ------------------------------------------------------------
    def _push(self, item: object) -> None:
        with self._lock:
            wake = not self._queue
            self._queue.append(item)
        if wake:
            self._wake.emit()

    def _run(self) -> None:
        try:
            value = self._work(self._push, self.cancel_event)
        except BaseException as exc:  # the user must hear about every failure
            log.exception("%s failed", self._name)
            self._push(_Failure(user_message(exc), exc))
        else:
            self._push(_Result(value))
        finally:
            self._push(_Done())


def run_job(
    work: Work,
    *,
    name: str,
    parent: QObject,
    on_items: Callable[[list[object]], None] | None = None,
    on_result: Callable[[Any], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    on_finished: Callable[[], None] | None = None,
) -> Job:
    """Create, connect and start a Job (callbacks run in the GUI thread)."""
    job = Job(work, name=name, parent=parent)
    if on_items is not None:
        job.items.connect(on_items)
    if on_result is not None:
        job.succeeded.connect(on_result)
    if on_error is not None:
        job.failed.connect(on_error)
    if on_finished is not None:
        job.finished.connect(on_finished)
    job.finished.connect(job.deleteLater)
    job.start()
    return job


class JobGroup:
    """The background jobs of one tab: started with the tab's error handler, counted while
    they run, cancelled and joined when the window closes.

    ``start(..., latest="search")`` makes a slot: a newer job of the same slot cancels the
    older one, and only the newest job's items, result or error reach the callbacks, so a
    quick second search or a switch of knowledge base never shows an older answer.
    """

    def __init__(self, parent: QObject, on_error: Callable[[str], None]) -> None:
        self.parent = parent
        self.on_error = on_error
        self.jobs: set[Job] = set()
        self.latest: dict[str, Job] = {}

    def start(self, work: Work, name: str, *, latest: str = "", **callbacks: Any) -> Job:
        user_finished = callbacks.pop("on_finished", None)
        mine: list[Job] = []

        def finished() -> None:
            job = mine[0]
            self.jobs.discard(job)
            if latest and self.latest.get(latest) is job:
                del self.latest[latest]
            if user_finished is not None:
                user_finished()

        callbacks.setdefault("on_error", self.on_error)
        if latest:
            for key in ("on_result", "on_error", "on_items"):
                if key in callbacks:
                    callbacks[key] = self._if_latest(latest, mine, callbacks[key])
            previous = self.latest.get(latest)
            if previous is not None:
                previous.cancel()
        job = run_job(work, name=name, parent=self.parent, on_finished=finished, **callbacks)
        mine.append(job)
        if latest:
            self.latest[latest] = job
        self.jobs.add(job)
        return job

    def _if_latest(self, slot: str, mine: list[Job], callback: Callable[[Any], None]) -> Any:
        # Callbacks run in the GUI thread after start() returned, so ``mine`` is filled.
        def call(value: Any) -> None:
            if mine and self.latest.get(slot) is mine[0]:
                callback(value)

        return call

    def busy(self) -> bool:
        return bool(self.jobs)

    def shutdown(self, timeout: float = 15.0) -> None:
        """Cancel every job and wait for the workers (each stops between steps)."""
        deadline = time.monotonic() + timeout
        for job in list(self.jobs):
            job.cancel()
        for job in list(self.jobs):
            job.wait(max(0.1, deadline - time.monotonic()))
