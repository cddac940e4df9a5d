"""The training worker as a child process of the app, in the manner of qutebrowser's
``GUIProcess``: it owns the ``QProcess``, keeps the worker's two streams apart — stdout
carries the events, each line parsed once into a typed event
(:func:`core.training.events.parse_event`); stderr is the log, appended to the run's
``worker.log`` — and ends in one :class:`core.training.events.ProcessOutcome`.

Cancel asks the worker for a checkpoint and a clean stop (the run's STOP file and
SIGINT, as the CLI does); if none comes within the grace period, the process is killed.
"""

from __future__ import annotations

import logging
import signal

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal, Slot

from core.training.events import FinalEvent, ProcessOutcome, is_final, parse_event
from core.training.process import request_stop
from core.training.runs import Run

log = logging.getLogger(__name__)

CANCEL_GRACE_MS = 90_000
MISSING_WORKER = (
    "The training process could not start (cotrag-train-worker is missing): "
    "reinstall the app with `bash packaging/install.sh`."
)


class WorkerProcess(QObject):
    worker_event = Signal(object)
    """A :data:`core.training.events.WorkerEvent`, in the order the worker wrote them."""
    finished = Signal(object)
    """The :class:`ProcessOutcome`, once, when the process has ended."""
    start_failed = Signal(str)
    """The process could not start (a sentence); ``finished`` does not follow."""

    def __init__(self, run: Run, command: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.run = run
        self.command = command
        self.final: FinalEvent | None = None
        """The run's last done / cancelled / error event so far."""
        self.cancelled = False
        self._buffer = b""
        self._process = QProcess(self)
        self._process.setProgram(command[0])
        self._process.setArguments(command[1:])
        self._process.setStandardErrorFile(str(run.log_file), QProcess.OpenModeFlag.Append)
        env = self._process.processEnvironment()
        if env.isEmpty():
            env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        self._process.setProcessEnvironment(env)
        self._process.readyReadStandardOutput.connect(self._read_events)
        self._process.finished.connect(self._on_finished)
        self._process.errorOccurred.connect(self._on_error)
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self.kill)

    @property
    def running(self) -> bool:
        return self._process.state() != QProcess.ProcessState.NotRunning

    def start(self) -> None:
        self._process.start()

    def cancel(self, grace_ms: int = CANCEL_GRACE_MS) -> None:
        """Ask for a checkpoint and a clean stop; kill the process if it has not ended
        after ``grace_ms``."""
        self.cancelled = True
        request_stop(self.run, int(self._process.processId() or 0), self.command)
        self._kill_timer.start(grace_ms)

    def kill(self) -> None:
        if self.running:
            self._process.kill()

    def wait(self, timeout_ms: int) -> bool:
        """Block until the process ends (``finished`` is emitted on the way); False on
        timeout."""
        return self._process.waitForFinished(timeout_ms)

    @Slot()
    def _read_events(self) -> None:
        self._buffer += bytes(self._process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            event = parse_event(line)
            if event is None:
                if line.strip():
                    log.debug("worker stdout: %s", line)
                continue
            if is_final(event):
                self.final = event
            self.worker_event.emit(event)

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read_events()
        self._kill_timer.stop()
        crashed = status == QProcess.ExitStatus.CrashExit
        self.finished.emit(
            ProcessOutcome(
                exit_code=None if crashed else code,
                signal=signal.SIGKILL if crashed else None,
                cancelled=self.cancelled,
                final=self.final,
            )
        )

    @Slot(QProcess.ProcessError)
    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.start_failed.emit(MISSING_WORKER)
