"""A remote run: the notebook on a fresh Colab GPU runtime, its events streamed back,
its results fetched and checked, the runtime released whatever happens.

A remote run is a sequence of Colab CLI calls (:mod:`core.colab.cli`), each a child
process:

    colab --auth A --config RUN/colab/sessions.json new -s NAME --gpu T4
    colab … upload -s NAME DATASET content/DATASET
    colab … upload -s NAME TOKEN content/.cotrag_hf_token     (if a token is given)
    colab … exec -s NAME -f train.ipynb --timeout SECONDS     (streams the events)
    colab … download -s NAME content/cotrag/out/RUN.tar RUN/remote/RUN.tar
    colab … stop -s NAME                      (always: in a ``finally``)

What the CLI does not do for us, and this module does:

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
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.colab.cli import (
    AUTH_PROVIDERS,
    REMOTE_TOKEN_FILE,
    CallResult,
    OnLog,
    call,
    check_gpu,
    find_colab,
    install_hint,
    not_signed_in_sentence,
)
from core.colab.errors import ColabError
from core.colab.job import HEADLESS_ENV, TOKEN_FILE, WORK_FOLDER
from core.colab.manifest import file_sha256
from core.colab.results import extract_results
from core.paths import DataLayout
from core.training.events import (
    Cancelled,
    Done,
    Error,
    FinalEvent,
    WorkerEvent,
    is_final,
    parse_event,
)

OnEvent = Callable[[WorkerEvent], None]


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
        released = call([*base, "stop", "-s", session], timeout=180.0)
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
    result = call(new, timeout=job.allocate_timeout_s, should_stop=stop, on_line=log)
    if result.ended == "cancelled":
        allocated.append(True)  # it may have been granted as we ended the call
        return cancelled("while the runtime was being allocated")
    if result.code != 0 or "Session READY" not in result.text():
        kind, sentence = _allocation_failure(result, gpu, auth)
        return RemoteOutcome("failed", sentence, kind=kind, exit_code=result.code)
    allocated.append(True)

    remote_data = f"content/{job.dataset.name}"
    result = call(
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
        token_dir = Path(tempfile.mkdtemp(prefix="cotrag-colab-"))
        token_file = token_dir / TOKEN_FILE
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(job.hub_token)
            result = call(
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

    result = call(
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
    result = call(
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
    if file_sha256(part) != final.archive_sha256:
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
