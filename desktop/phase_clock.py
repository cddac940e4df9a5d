"""A running clock on a label: ``Loading model B… 12.4 s``, what a long wait waits for,
with the time since it began, kept current while nothing else arrives (a model loading
for half a minute never looks frozen)."""

from __future__ import annotations

import time
from typing import Protocol

from PySide6.QtCore import QObject, QTimer


class TextTarget(Protocol):
    def setText(self, text: str) -> None: ...


class PhaseClock(QObject):
    def __init__(self, target: TextTarget, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._target = target
        self._phase = ""
        self._started = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._tick)

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def elapsed(self) -> float:
        """Seconds since :meth:`start` (still counting after :meth:`stop`)."""
        return time.monotonic() - self._started if self._started else 0.0

    def start(self, phase: str) -> None:
        """Begin timing now, saying ``phase``."""
        self._started = time.monotonic()
        self.set_phase(phase)
        self._timer.start()

    def set_phase(self, phase: str) -> None:
        """What the wait is for now; the time still counts from :meth:`start`."""
        self._phase = phase
        self._tick()

    def stop(self) -> None:
        """Leave the last text as it is and stop updating it."""
        self._timer.stop()

    def _tick(self) -> None:
        self._target.setText(f"{self._phase} {self.elapsed:.1f} s")
