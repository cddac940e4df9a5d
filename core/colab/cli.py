"""The official Colab CLI (``google-colab-cli``, ``colab``): finding it, asking whether
it is signed in, and running one of its commands as a child process.

The CLI needs Python 3.12 or newer and runs on Linux and macOS only, so the app runs
it from wherever it is installed (``PATH``) or from an environment of its own under
the data dir (``<data dir>/envs/colab``), and says how to make one when it is missing.
``--gpu`` accepts any text and silently falls back to an A100 for an unknown name:
the name is checked here (:func:`check_gpu`) before anything is allocated.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.colab.errors import UnknownGpu
from core.colab.job import TOKEN_FILE
from core.paths import DataLayout

CLI_PACKAGE = "google-colab-cli"
CLI_NAME = "colab"
ENV_EXECUTABLE = "COTRAG_COLAB"
"""An explicit path to the ``colab`` executable (wins over PATH and the app's environment)."""
ENV_FOLDER = "colab"
REMOTE_TOKEN_FILE = f"content/{TOKEN_FILE}"
GPUS = ("T4", "L4", "G4", "A100", "H100")
"""The GPU names ``colab new --gpu`` knows (google-colab-cli 0.7.5), as it spells them."""
AUTH_PROVIDERS = ("oauth2", "adc")
"""``--auth``: the CLI's own default is oauth2 (a browser sign-in; the token is kept in
``~/.config/colab-cli/token.json``); adc reads gcloud's application-default credentials."""

OnLog = Callable[[str, str], None]
"""(stream, line): ``stdout`` or ``stderr`` of the CLI, without the events."""


def check_gpu(name: str) -> str:
    """The GPU name as the CLI spells it; an unknown one is refused here, because the CLI
    would quietly ask for an A100 instead."""
    wanted = (name or "").strip().upper()
    if wanted not in GPUS:
        raise UnknownGpu(
            f"{name!r} is not a Colab GPU: choose one of {', '.join(GPUS)} "
            "(T4 is the one most accounts can get)."
        )
    return wanted


# -- finding the CLI -----------------------------------------------------------------------
def colab_env(layout: DataLayout) -> Path:
    """The app's own environment for the CLI (it needs Python 3.12+, the app may not)."""
    return layout.root / "envs" / ENV_FOLDER


def install_hint(layout: DataLayout | None = None) -> str:
    if sys.platform.startswith("win"):
        return (
            "The Colab CLI runs on Linux and macOS only: on Windows use Export for Colab… instead."
        )
    env = str(colab_env(layout)) if layout is not None else "~/.cotrag-colab"
    return (
        f"The Colab CLI is not installed. It needs Python 3.12 or newer: "
        f"`python3.12 -m venv {env} && {env}/bin/pip install {CLI_PACKAGE}` "
        f"(or `uv tool install {CLI_PACKAGE}`), then sign in once with `colab sessions`."
    )


def find_colab(layout: DataLayout | None = None) -> Path | None:
    explicit = os.environ.get(ENV_EXECUTABLE)
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    on_path = shutil.which(CLI_NAME)
    if on_path:
        return Path(on_path)
    if layout is not None:
        own = colab_env(layout) / "bin" / CLI_NAME
        if own.is_file():
            return own
    return None


@dataclass(frozen=True)
class ColabStatus:
    installed: bool
    executable: Path | None
    version: str
    signed_in: bool | None
    """None: not checked, or the check did not answer."""
    account: str
    sentence: str


def status(
    layout: DataLayout | None = None,
    *,
    auth: str = "oauth2",
    check_sign_in: bool = True,
    timeout: float = 30.0,
) -> ColabStatus:
    """Is the CLI there, which version, and is it signed in (``colab whoami``: it mints a
    token the way every command does and asks Google whose it is)."""
    exe = find_colab(layout)
    if exe is None:
        return ColabStatus(False, None, "", None, "", install_hint(layout))
    version = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = _quick([str(exe), "version"], timeout)
        match = re.search(r"Version:\s*(\S+)", done.stdout)
        version = match.group(1) if match else ""
    if not check_sign_in:
        return ColabStatus(True, exe, version, None, "", f"Colab CLI {version or '?'} found.")
    try:
        done = _quick([str(exe), f"--auth={auth}", "whoami"], timeout)
    except subprocess.TimeoutExpired:
        return ColabStatus(
            True, exe, version, None, "", "The Colab CLI did not answer whether it is signed in."
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return ColabStatus(True, exe, version, None, "", f"The Colab CLI cannot run: {exc}.")
    if done.returncode == 0:
        match = re.search(r"Email:\s*(\S+)", done.stdout)
        account = match.group(1) if match else ""
        return ColabStatus(
            True, exe, version, True, account, f"Colab CLI {version} signed in as {account or '?'}."
        )
    return ColabStatus(True, exe, version, False, "", not_signed_in_sentence(auth))


def not_signed_in_sentence(auth: str = "oauth2") -> str:
    if auth == "adc":
        return (
            "The Colab CLI is not signed in: run `gcloud auth application-default login "
            "--scopes=openid,https://www.googleapis.com/auth/cloud-platform,"
            "https://www.googleapis.com/auth/userinfo.email,"
            "https://www.googleapis.com/auth/colaboratory` in a terminal."
        )
    return (
        "The Colab CLI is not signed in: run `colab sessions` once in a terminal (it shows "
        "a Google sign-in link and asks for the code), then start again."
    )


def _quick(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
    )


# -- child processes -------------------------------------------------------------------------
@dataclass
class CallResult:
    code: int | None
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    ended: str = "exit"
    """exit, cancelled, silent (the watchdog), timeout."""

    def text(self) -> str:
        return "\n".join(self.stdout + self.stderr)


def call(
    command: list[str],
    *,
    stdin: str | None = None,
    timeout: float = 600.0,
    silence: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_line: Callable[[str, str], None] | None = None,
) -> CallResult:
    """Runs one CLI command, reading stdout and stderr apart as lines come; ends it on
    Cancel, on a silence longer than ``silence`` seconds, or after ``timeout``."""
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,  # its own group: ended with everything it started
    )
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()

    def read(name: str, stream: Any) -> None:
        for line in stream:
            lines.put((name, line.rstrip("\r\n")))
        lines.put((name, None))

    readers = [
        threading.Thread(target=read, args=("stdout", proc.stdout), daemon=True),
        threading.Thread(target=read, args=("stderr", proc.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    if stdin is not None and proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.write(stdin)
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.close()
    result = CallResult(None)
    open_streams = 2
    started = last = time.monotonic()
    while open_streams:
        try:
            name, line = lines.get(timeout=0.2)
        except queue.Empty:
            now = time.monotonic()
            if should_stop is not None and should_stop():
                result.ended = "cancelled"
            elif silence is not None and now - last > silence:
                result.ended = "silent"
            elif now - started > timeout:
                result.ended = "timeout"
            else:
                continue
            end_process(proc)
            break
        if line is None:
            open_streams -= 1
            continue
        last = time.monotonic()
        (result.stdout if name == "stdout" else result.stderr).append(line)
        if on_line is not None:
            on_line(name, line)
    try:
        result.code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        end_process(proc)
        result.code = proc.poll()
    return result


def end_process(proc: subprocess.Popen[str]) -> None:
    """SIGINT first (the CLI closes its websocket on KeyboardInterrupt), then SIGKILL."""
    if proc.poll() is not None:
        return
    if os.name == "posix":
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    else:  # pragma: no cover - the CLI does not run on Windows
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
