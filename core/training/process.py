"""Starting, watching and stopping the training worker from the CLI (the app uses QProcess
with the same command line and the same event parser).

The worker runs in this environment (torch + peft), or — when the spec's engine is
auto or unsloth and the GPU environment exists — in that environment, where unsloth
and its pinned trl / transformers live (``cotrag train setup-gpu`` makes it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from core.errors import CotragError
from core.paths import DataLayout
from core.training.events import (
    FinalEvent,
    ProcessOutcome,
    WorkerEvent,
    is_final,
    parse_event,
)
from core.training.runs import Run
from core.training.spec import TrainSpec

WORKER_SCRIPT = "cotrag-train-worker"
FROZEN_FLAG = "--train-worker"
"""The frozen app runs the worker as itself with this flag (packaging/entry.py)."""
TORCHRUN_FLAG = "--torchrun"
"""... and ``torch.distributed.run`` with this one: a frozen app has no ``python -m``."""
GPU_ENV = "unsloth"
DISTRIBUTED = "torch.distributed.run"


def gpu_env(layout: DataLayout) -> Path:
    return layout.root / "envs" / GPU_ENV


def _env_bin(env: Path, name: str) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin") / name


def gpu_env_ready(layout: DataLayout) -> bool:
    """The GPU environment exists and has unsloth and the worker in it."""
    env = gpu_env(layout)
    return (env / "READY").is_file() and _env_bin(env, WORKER_SCRIPT).exists()


def processes_for(spec: TrainSpec | None) -> int:
    """How many data-parallel processes a run gets: the spec's, else one per visible GPU."""
    if spec is not None and spec.processes:
        return spec.processes
    return max(1, _gpu_count())


def _gpu_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover
        return 0


def worker_command(
    run: Run, *, resume: bool = False, layout: DataLayout | None = None
) -> list[str]:
    """The worker's command line for this run (under ``torch.distributed.run`` when the run
    has several processes)."""
    try:
        spec: TrainSpec | None = run.spec()
    except CotragError:
        spec = None
    single = _single_command(run, spec, resume=resume, layout=layout)
    n = processes_for(spec)
    if n <= 1:
        return single
    if single[0].endswith(WORKER_SCRIPT) and Path(single[0]).parent != Path(sys.executable).parent:
        launcher = [
            str(Path(single[0]).parent / "python"),
            "-m",
            DISTRIBUTED,
        ]  # the GPU env's torch
    elif getattr(sys, "frozen", False):
        launcher = [sys.executable, TORCHRUN_FLAG]
    else:
        launcher = [sys.executable, "-m", DISTRIBUTED]
    return [
        *launcher,
        "--standalone",
        f"--nproc-per-node={n}",
        "--no-python",
        *single,
    ]


def _single_command(
    run: Run, spec: TrainSpec | None, *, resume: bool, layout: DataLayout | None
) -> list[str]:
    extra = ["--resume"] if resume else []
    engine = spec.engine if spec is not None else ""
    if layout is not None and engine in ("auto", "unsloth") and gpu_env_ready(layout):
        return [str(_env_bin(gpu_env(layout), WORKER_SCRIPT)), str(run.folder), *extra]
    if getattr(sys, "frozen", False):
        return [sys.executable, FROZEN_FLAG, str(run.folder), *extra]
    script = Path(sys.executable).parent / WORKER_SCRIPT
    if script.exists():
        return [str(script), str(run.folder), *extra]
    return [
        sys.executable,
        "-c",
        "import sys; from core.training.worker import main; sys.exit(main(sys.argv[1:]))",
        str(run.folder),
        *extra,
    ]


class TrainProcess:
    def __init__(self, run: Run, layout: DataLayout, *, resume: bool = False) -> None:
        self.run = run
        self.command = worker_command(run, resume=resume, layout=layout)
        self.proc: subprocess.Popen[str] | None = None
        self.cancelled = False
        self.final: FinalEvent | None = None

    def start(self) -> None:
        log = self.run.log_file.open("a", encoding="utf-8")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal is ours to pass on
        )
        log.close()

    def events(self) -> Iterator[WorkerEvent]:
        """The worker's events as they come (its other output is in the run's log)."""
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            event = parse_event(line)
            if event is None:
                continue
            if is_final(event):
                self.final = event
            yield event

    def cancel(self) -> None:
        """Ask for a checkpoint and a clean stop (:meth:`kill` if it does not come)."""
        self.cancelled = True
        running = self.proc is not None and self.proc.poll() is None
        request_stop(self.run, self.proc.pid if running and self.proc else 0, self.command)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def wait(self, on_event: Callable[[WorkerEvent], None] | None = None) -> ProcessOutcome:
        for event in self.events():
            if on_event is not None:
                on_event(event)
        assert self.proc is not None
        code = self.proc.wait()
        sig = -code if code < 0 else None
        return ProcessOutcome(
            exit_code=code if code >= 0 else None,
            signal=sig,
            cancelled=self.cancelled,
            final=self.final,
        )


def request_stop(run: Run, pid: int, command: Sequence[str]) -> None:
    """Ask a running worker for a checkpoint and a clean stop: the run's STOP file (every
    platform), and SIGINT on POSIX — except under the launcher of a data-parallel run,
    which would tear its processes down (rank 0 sees the file and tells the others)."""
    run.stop_file.touch()
    if pid <= 0 or os.name != "posix" or DISTRIBUTED in command:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGINT)
