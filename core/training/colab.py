"""Training on a Colab GPU through the official Colab CLI (``google-colab-cli``, ``colab``).

The CLI needs Python 3.12 or newer and runs on Linux and macOS only, so the app runs
it from wherever it is installed (``PATH``) or from an environment of its own under
the data dir (``<data dir>/envs/colab``), and says how to make one when it is missing.

A remote run is a sequence of CLI calls, each a child process:

    colab --auth A --config RUN/colab/sessions.json new -s NAME --gpu T4
    colab … upload -s NAME DATASET content/DATASET
    colab … exec -s NAME                      (stdin: sets HF_TOKEN in the kernel, if any)
    colab … exec -s NAME -f train.ipynb --timeout SECONDS     (streams the events)
    colab … download -s NAME content/cotrag/out/RUN.tar RUN/remote/RUN.tar
    colab … stop -s NAME                      (always: in a ``finally``)

What the CLI does not do for us, and this module does:

- ``--gpu`` accepts any text and silently falls back to an A100 for an unknown name:
  the name is checked here (:func:`check_gpu`) before anything is allocated.
- ``colab exec -f notebook.ipynb`` exits 0 when a cell raises (it prints the traceback
  on stderr and runs the next cell). Success is therefore read from the event stream:
  no ``done`` event means the run failed, whatever the exit code.
- A runtime that dies without closing its websocket leaves ``exec`` waiting: a
  watchdog stops it after ``silence_s`` without a line of output.
- Cancel (and every failure) stops the runtime and releases the VM (``colab stop``);
  killing ``colab exec`` alone would leave the VM running (and billing).
- Sessions are kept in a state file of the run's own (``--config``), so a run never
  picks up, or stops, a session the user made by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import CotragError
from core.paths import DataLayout
from core.training.colab_notebook import (
    HEADLESS_ENV,
    MANIFEST_NAME,
    TOKEN_FILE,
    WORK_FOLDER,
    sha256_file,
)
from core.training.events import Cancelled, Done, Error, FinalEvent, WorkerEvent, is_final, parse_event

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

OnEvent = Callable[[WorkerEvent], None]
OnLog = Callable[[str, str], None]
"""(stream, line): ``stdout`` or ``stderr`` of the CLI, without the events."""


class ColabError(CotragError, RuntimeError):
    pass


class UnknownGpu(ColabError, ValueError):
    pass


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


def _call(
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
            _end(proc)
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
        _end(proc)
        result.code = proc.poll()
    return result


def _end(proc: subprocess.Popen[str]) -> None:
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


# -- a remote run --------------------------------------------------------------------------------
@dataclass
class RemoteJob:
    run_folder: Path
    """The local run folder: the session state, the CLI's notebook output and the results."""
    notebook: Path
    dataset: Path
    gpu: str
    session: str = ""
    """The Colab session's name (default: ``cotrag-`` + the run folder's name)."""
    hub_token: str | None = None
    """Set in the remote kernel's environment through stdin; never on a command line,
    never in the notebook."""
    download: bool = True
    """Fetch the results (False: they were pushed to the hub and are pulled from there)."""
    high_mem: bool = False
    exec_timeout_s: float = 24 * 3600.0
    silence_s: float = 20 * 60.0
    """The watchdog: no line of output for this long → the runtime is stopped."""
    allocate_timeout_s: float = 15 * 60.0
    transfer_timeout_s: float = 60 * 60.0


@dataclass
class RemoteOutcome:
    state: str
    """done, failed, cancelled."""
    sentence: str
    kind: str = ""
    """not_installed, not_signed_in, quota, gpu_refused, runtime_lost, runtime_silent,
    remote_error, upload, download, checksum, cli — empty when done or cancelled."""
    final: FinalEvent | None = None
    """The remote worker's last done / cancelled / error event."""
    events: int = 0
    model_dir: Path | None = None
    """The tuned model's folder, downloaded and checked (None when not downloaded)."""
    hub_repo: str = ""
    released: bool = False
    """``colab stop`` ran and succeeded: the VM is released."""
    exit_code: int | None = None


_LOST = (
    "Connection was lost",
    "appears to be lost",
    "WebSocketConnectionClosed",
    "ConnectionClosed",
    "Connection to remote host was lost",
)
_NOT_SIGNED_IN = (
    "To authorize colab-cli",
    "Enter the authorization code",
    "No valid default credentials",
    "DefaultCredentialsError",
    "invalid_grant",
    "RefreshError",
)


def _session_name(run_folder: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", run_folder.name).strip("-") or "run"
    return f"cotrag-{name}"[:60]


def _exception_line(lines: Sequence[str], *, first: bool = False) -> str:
    """The ``Type: message`` line of the last (or first) traceback in the output."""
    # ``Type: message`` or a bare ``Type`` (not IPython's "Type   Traceback (…)" header).
    pattern = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)(:.*)?$")
    for line in lines if first else reversed(lines):
        text = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if pattern.match(text):
            return text
    return ""


def _allocation_failure(result: CallResult, gpu: str, auth: str) -> tuple[str, str]:
    text = result.text()
    if "Allocation refused" in text or "precondition failed" in text:
        return (
            "quota",
            f"Colab refused a {gpu} runtime: too many active sessions, or a usage or "
            "capacity limit. Stop other sessions (`colab sessions`, `colab stop`), wait and "
            "retry, or choose another GPU.",
        )
    if "Backend rejected accelerator" in text:
        return (
            "gpu_refused",
            f"Colab has no {gpu} for this account (no quota or entitlement for it): choose "
            "another GPU (T4 is the most available) or a Colab plan that includes it.",
        )
    if any(s in text for s in _NOT_SIGNED_IN) or re.search(r"\b40[13]\b", text):
        return "not_signed_in", not_signed_in_sentence(auth)
    return "cli", _cli_sentence("colab new", result)


def _cli_sentence(what: str, result: CallResult) -> str:
    if result.ended == "timeout":
        return f"`{what}` did not finish in time: Colab may be busy; try again later."
    detail = _exception_line(result.stderr) or next(
        (line for line in reversed(result.stderr + result.stdout) if line.strip()), ""
    )
    return f"`{what}` failed (exit code {result.code}): {detail or 'no message'}."


def run_remote(
    job: RemoteJob,
    *,
    executable: Path | None = None,
    layout: DataLayout | None = None,
    on_event: OnEvent | None = None,
    on_log: OnLog | None = None,
    should_stop: Callable[[], bool] | None = None,
    auth: str = "oauth2",
) -> RemoteOutcome:
    """Runs the notebook on a fresh Colab GPU runtime and fetches the tuned model.

    Events reach ``on_event`` as they come (the same dicts a local run gives); other
    output goes to ``on_log``. The runtime is stopped and released whatever happens.
    """
    exe = executable or find_colab(layout)
    if exe is None:
        return RemoteOutcome("failed", install_hint(layout), kind="not_installed")
    if auth not in AUTH_PROVIDERS:
        raise ColabError(f"auth is {auth!r}: use oauth2 or adc.")
    gpu = check_gpu(job.gpu)
    state_dir = job.run_folder / "colab"
    state_dir.mkdir(parents=True, exist_ok=True)
    session = job.session or _session_name(job.run_folder)
    base = [str(exe), f"--auth={auth}", "--config", str(state_dir / "sessions.json")]
    stop = should_stop or (lambda: False)

    def log(stream: str, line: str) -> None:
        if on_log is not None:
            on_log(stream, line)

    allocated: list[bool] = []
    outcome = RemoteOutcome("failed", "The remote run did not start.", kind="cli")
    try:
        outcome = _run_session(
            job, base, session, gpu, auth, stop, log, on_event, state_dir, allocated
        )
    finally:
        # Always: a cancelled, failed or lost run must not leave a VM billing. A session
        # that was never made is "not found", which `colab stop` reports with exit 0.
        released = _call([*base, "stop", "-s", session], timeout=180.0)
        outcome.released = released.code == 0
        if not outcome.released:
            log("stderr", "colab stop failed: " + released.text())
        if allocated and outcome.released:
            outcome.sentence += " The Colab runtime is stopped and its VM released."
        elif allocated:
            outcome.sentence += (
                f" The runtime could not be released: run `colab --config "
                f"{state_dir / 'sessions.json'} stop -s {session}` (idle VMs use compute units)."
            )
    return outcome


def _run_session(
    job: RemoteJob,
    base: list[str],
    session: str,
    gpu: str,
    auth: str,
    stop: Callable[[], bool],
    log: OnLog,
    on_event: OnEvent | None,
    state_dir: Path,
    allocated: list[bool],
) -> RemoteOutcome:
    def cancelled(what: str) -> RemoteOutcome:
        return RemoteOutcome("cancelled", f"Cancelled {what}.")

    new = [*base, "new", "-s", session, "--gpu", gpu] + (["--high-mem"] if job.high_mem else [])
    result = _call(new, timeout=job.allocate_timeout_s, should_stop=stop, on_line=log)
    if result.ended == "cancelled":
        allocated.append(True)  # it may have been granted as we ended the call
        return cancelled("while the runtime was being allocated")
    if result.code != 0 or "Session READY" not in result.text():
        kind, sentence = _allocation_failure(result, gpu, auth)
        return RemoteOutcome("failed", sentence, kind=kind, exit_code=result.code)
    allocated.append(True)

    remote_data = f"content/{job.dataset.name}"
    result = _call(
        [*base, "upload", "-s", session, str(job.dataset), remote_data],
        timeout=job.transfer_timeout_s,
        should_stop=stop,
        on_line=log,
    )
    if result.ended == "cancelled":
        return cancelled("while the dataset was uploading")
    if result.code != 0:
        if any(s in result.text() for s in _LOST) or "not found" in result.text():
            return _lost(result)
        return RemoteOutcome(
            "failed", _cli_sentence("colab upload", result), kind="upload", exit_code=result.code
        )

    if job.hub_token:
        # As a file through the contents API, which the CLI does not log: code sent with
        # `colab exec` (and --env) is kept in the CLI's history files, and argv is public.
        # The notebook reads the file and deletes it (remote_hub_token).
        # In a private temp folder, not the run folder: a kill during the upload must not
        # leave the token in the data dir (and a leftover from an older version goes).
        (state_dir / ".token").unlink(missing_ok=True)
        import tempfile

        token_dir = Path(tempfile.mkdtemp(prefix="cotrag-colab-"))
        token_file = token_dir / TOKEN_FILE
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(job.hub_token)
            result = _call(
                [*base, "upload", "-s", session, str(token_file), REMOTE_TOKEN_FILE],
                timeout=300.0,
                should_stop=stop,
            )
        finally:
            token_file.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                token_dir.rmdir()
        if result.ended == "cancelled":
            return cancelled("before training started")
        if result.code != 0:
            return RemoteOutcome(
                "failed",
                _cli_sentence("colab upload", result),
                kind="upload",
                exit_code=result.code,
            )

    # `exec -f x.ipynb` writes x_output.ipynb next to x: keep both in the run folder.
    notebook = state_dir / job.notebook.name
    if notebook.resolve() != job.notebook.resolve():
        shutil.copyfile(job.notebook, notebook)
    events = 0
    final: FinalEvent | None = None

    def on_line(stream: str, line: str) -> None:
        nonlocal events, final
        event = parse_event(line) if stream == "stdout" else None
        if event is None:
            log(stream, line)
            return
        events += 1
        if is_final(event):
            final = event
        if on_event is not None:
            on_event(event)

    result = _call(
        [
            *base,
            "exec",
            "-s",
            session,
            "-f",
            str(notebook),
            "--env",
            f"{HEADLESS_ENV}=1",
            "--timeout",
            str(int(job.exec_timeout_s)),
        ],
        timeout=job.exec_timeout_s + 600.0,
        silence=job.silence_s,
        should_stop=stop,
        on_line=on_line,
    )
    if result.ended == "cancelled":
        out = cancelled("during training")
        out.events, out.final = events, final
        return out
    if result.ended == "silent":
        minutes = job.silence_s / 60
        return RemoteOutcome(
            "failed",
            f"The Colab runtime went silent (no output for {minutes:.0f} min), so it was "
            "ended. Start the run again; if it keeps happening, choose another GPU.",
            kind="runtime_silent",
            final=final,
            events=events,
            exit_code=result.code,
        )
    if not isinstance(final, Done):
        # The exit code says little: `colab exec` exits 0 after a cell raised.
        out = _remote_failure(result, final)
        out.events = events
        return out

    outcome = RemoteOutcome(
        "done",
        f"Done on a Colab {gpu}: the tuned model is {final.model or '?'}.",
        final=final,
        events=events,
        hub_repo=final.hub_repo or "",
        exit_code=result.code,
    )
    if job.download:
        fetched = _download(job, base, session, final, stop, log)
        if isinstance(fetched, RemoteOutcome):
            fetched.final, fetched.events = final, events
            return fetched
        outcome.model_dir = fetched
    return outcome


def _lost(result: CallResult) -> RemoteOutcome:
    return RemoteOutcome(
        "failed",
        "The Colab runtime was lost (Colab ended the session or the connection dropped): "
        "start the run again.",
        kind="runtime_lost",
        exit_code=result.code,
    )


def _remote_failure(result: CallResult, final: FinalEvent | None) -> RemoteOutcome:
    if isinstance(final, Error):
        sentence = f"The remote run failed: {final.message} {final.fix}"
        return RemoteOutcome(
            "failed", sentence.strip(), kind="remote_error", final=final, exit_code=result.code
        )
    if isinstance(final, Cancelled):
        return RemoteOutcome(
            "cancelled", "The remote run was stopped.", final=final, exit_code=result.code
        )
    text = result.text()
    if any(s in text for s in _LOST) or "not found" in text:
        out = _lost(result)
        out.final = final
        return out
    # `colab exec` runs the cells after a failed one: the first exception is the cause.
    exception = _exception_line(result.stderr, first=True)
    if exception:
        return RemoteOutcome(
            "failed",
            f"The remote run raised {exception} (the Colab CLI still exited with code "
            f"{result.code}).",
            kind="remote_error",
            final=final,
            exit_code=result.code,
        )
    return RemoteOutcome(
        "failed",
        f"The remote run ended without finishing (exit code {result.code}, no done event).",
        kind="remote_error",
        final=final,
        exit_code=result.code,
    )


def _download(
    job: RemoteJob,
    base: list[str],
    session: str,
    final: Done,
    stop: Callable[[], bool],
    log: OnLog,
) -> Path | RemoteOutcome:
    archive = final.archive or ""
    model = final.model
    if not archive or not model or "/" in model or model.startswith("."):
        return RemoteOutcome(
            "failed", "The remote run did not say where its results are.", kind="download"
        )
    into = job.run_folder / "remote"
    into.mkdir(parents=True, exist_ok=True)
    local = into / Path(archive).name
    part = local.with_name(local.name + ".part")
    part.unlink(missing_ok=True)
    result = _call(
        [*base, "download", "-s", session, f"content/{WORK_FOLDER}/{archive}", str(part)],
        timeout=job.transfer_timeout_s,
        should_stop=stop,
        on_line=log,
    )
    if result.ended == "cancelled":
        part.unlink(missing_ok=True)
        return RemoteOutcome("cancelled", "Cancelled while the results were downloading.")
    if result.code != 0 or not part.is_file():
        part.unlink(missing_ok=True)
        return RemoteOutcome(
            "failed",
            _cli_sentence("colab download", result) + " The tuned model stays on Colab only "
            "until the runtime stops: push it to the hub instead, or run again.",
            kind="download",
            exit_code=result.code,
        )
    if sha256_file(part) != final.archive_sha256:
        part.unlink(missing_ok=True)
        return RemoteOutcome(
            "failed",
            "The downloaded results are damaged (their sha256 differs from the remote one): "
            "run again.",
            kind="checksum",
        )
    os.replace(part, local)
    try:
        target = extract_results(local, into, files=dict(final.files or {}), model=model)
    except ColabError as exc:
        return RemoteOutcome("failed", f"{exc} Run again.", kind="checksum")
    log("stdout", f"results in {target}")
    return target


class DamagedResults(ColabError, ValueError):
    pass


def extract_results(
    archive: Path,
    into: Path,
    *,
    files: dict[str, Any] | None = None,
    model: str | None = None,
) -> Path:
    """The tuned model folder from a results tar (downloaded by the app, or by hand from
    Colab), every file checked against its sha256 (the run's ``done`` event, else the
    manifest inside the tar). Returns ``into/<model>``; nothing is left on a failure."""
    into.mkdir(parents=True, exist_ok=True)
    tmp = into / f".{archive.stem}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise DamagedResults(f"{archive.name} cannot be read ({exc}).") from exc
        manifest = tmp / MANIFEST_NAME
        if files is None or model is None:
            if not manifest.is_file():
                raise DamagedResults(f"{archive.name} is not a CoT-RAG Studio results archive.")
            data = json.loads(manifest.read_text(encoding="utf-8"))
            files = files if files is not None else dict(data.get("files") or {})
            model = model or str(data.get("model") or "")
        extracted = tmp / model
        if not model or "/" in model or not extracted.is_dir():
            raise DamagedResults(f"{archive.name} does not hold the model {model!r}.")
        for rel, facts in files.items():
            path = extracted / rel
            if not path.is_file() or sha256_file(path) != facts.get("sha256"):
                raise DamagedResults(f"The file {rel} of {archive.name} is damaged.")
        target = into / model
        shutil.rmtree(target, ignore_errors=True)
        os.replace(extracted, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- registering the result --------------------------------------------------------------------
def register_remote_model(
    registry: Any, model_dir: Path, *, name: str | None = None, gpu: str = ""
) -> Any:
    """A downloaded tuned model into the registry (``ModelRegistry``), with its lineage:
    the remote model.json, plus where it trained; the remote paths of the base are
    replaced by this computer's when the base is the bundled model."""
    info = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    model_name = name or str(info.pop("name", model_dir.name))
    info.pop("name", None)
    part = registry.reserve(model_name)
    for child in model_dir.iterdir():
        if child.name != "model.json":
            shutil.move(str(child), str(part / child.name))
    trained = dict(info.get("trained_on") or {})
    trained.update({"where": "colab", "gpu": gpu})
    info["trained_on"] = trained
    base = dict(info.get("base") or {})
    info["remote_base"] = dict(base)
    if base.get("reference") == "default":
        with contextlib.suppress(Exception):
            from core.llm.registry import default_model_path

            local = str(default_model_path())
            base["gguf"] = local
            info["base_gguf"] = local
    info["base"] = base
    entry = registry.commit(part, model_name, info)
    shutil.rmtree(model_dir, ignore_errors=True)
    return entry
