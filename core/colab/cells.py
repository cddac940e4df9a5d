"""What the notebook's cells call, inside its kernel (from the bundled copy of this
module; see :mod:`core.colab.notebook`): set up the remote data dir, run the app's own
training worker and relay its events, package the tuned model with its manifest and
push it when a repo is named. Imports only what the kernel has."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import core
from core.colab.errors import NotebookError
from core.colab.job import HEADLESS_ENV, OUT_FOLDER, TOKEN_FILE, TOKEN_NAME, ColabJob
from core.colab.manifest import MANIFEST_NAME, file_sha256, make_manifest
from core.fileio import temp_path, write_json_atomic
from core.paths import DataLayout
from core.training.events import (
    Done,
    Error,
    Exporting,
    FinalEvent,
    Log,
    Preparing,
    WorkerEvent,
    encode,
    is_final,
    parse_event,
)
from core.training.runs import RunStore
from core.training.spec import TrainSpec

STDERR_EVERY_S = 10.0
"""The worker's log lines reach the notebook's output at most this often."""


def remote_hub_token(folder: Path | None = None) -> str | None:
    """The Hugging Face token: the environment, the file the app uploaded (read once and
    deleted; kept in the environment), then Colab's secrets — except in a headless run,
    where asking for a secret would wait for a browser that is not there."""
    token = os.environ.get(TOKEN_NAME) or _take_token_file(folder)
    if token:
        return token
    if os.environ.get(HEADLESS_ENV) == "1":
        return None
    try:
        from google.colab import userdata

        value = userdata.get(TOKEN_NAME)
        return str(value) if value else None
    except Exception:  # not on Colab, no such secret, or access not granted
        return None


def _take_token_file(folder: Path | None = None) -> str | None:
    left = (folder or Path.cwd()) / TOKEN_FILE
    if not left.is_file():
        return None
    token = left.read_text(encoding="utf-8").strip()
    left.unlink()
    if token:
        os.environ[TOKEN_NAME] = token
    return token or None


def _emit(event: WorkerEvent) -> None:
    print(encode(event), flush=True)


def remote_prepare(job_data: dict[str, Any], work: Path, *, cpu_test: bool = False) -> Path:
    """The data dir of the remote run: the dataset in the store's layout, the base model
    where the spec finds it, the run's spec.toml. Returns the run folder."""
    job = ColabJob.from_dict(job_data)
    _take_token_file()  # the uploaded token file goes at once, whether used or not
    try:
        layout = DataLayout(work / "data")
        _emit(Preparing(stage="dataset", message=f"Loading the dataset {job.dataset_name}…"))
        source = _find_dataset(job, work)
        folder = layout.datasets / job.dataset_name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / "examples.jsonl")
        if job.dataset_sha256 and file_sha256(folder / "examples.jsonl") != job.dataset_sha256:
            raise NotebookError(
                f"{job.dataset_file} is not the file this notebook was made for (its sha256 "
                "differs): upload the file exported with it."
            )
        meta = dict(job.dataset_meta) or {"name": job.dataset_name}
        write_json_atomic(folder / "dataset.json", meta, indent=None)
        spec = TrainSpec.from_dict(dict(job.spec))
        if job.base_repo:
            _emit(Preparing(stage="base", message=f"Downloading {job.base_repo}…"))
            from huggingface_hub import snapshot_download

            spec.base = snapshot_download(
                job.base_repo, local_dir=str(work / "base"), token=remote_hub_token()
            )
        if cpu_test:
            spec.load_in_4bit = False
            if spec.engine == "unsloth":
                spec.engine = "auto"
        store = RunStore(layout)
        run_dir = store.root / job.run_name
        if run_dir.exists():
            shutil.rmtree(run_dir)  # a re-run of the notebook starts over
        shutil.rmtree(layout.models / "tuned" / job.run_name, ignore_errors=True)
        run = store.create(job.run_name, spec)
        _emit(Log(message=f"training code from {Path(core.__file__).parent}"))
        return run.folder
    except Exception as exc:
        _emit(Error(kind="data", message=str(exc), fix="See the notebook's output."))
        raise


def _find_dataset(job: ColabJob, work: Path) -> Path:
    for candidate in (Path.cwd() / job.dataset_file, work / job.dataset_file):
        if candidate.is_file():
            return candidate
    if job.dataset_repo:
        from huggingface_hub import hf_hub_download

        return Path(
            hf_hub_download(
                job.dataset_repo,
                job.dataset_file,
                repo_type="dataset",
                token=remote_hub_token(),
                local_dir=str(work / "dataset"),
            )
        )
    raise NotebookError(
        f"{job.dataset_file} is missing: upload it next to the notebook (into /content on Colab)."
    )


def remote_train(run_dir: Path, work: Path) -> Done:
    """Runs the app's training worker on the run and relays its events.

    Its ``done`` is held back (returned): the run is done for the app only when the
    package cell has written the results. Raises when the worker did not finish.
    """
    src = work / "src"
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [
        sys.executable,
        "-c",
        "import sys; from core.training.worker import main; sys.exit(main(sys.argv[1:]))",
        str(run_dir),
    ]
    log_path = run_dir / "worker.log"
    tail: deque[str] = deque(maxlen=30)
    proc = subprocess.Popen(
        command,
        cwd=str(src),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    assert proc.stdout is not None and proc.stderr is not None
    errors = proc.stderr

    def drain() -> None:
        shown = 0.0
        with log_path.open("a", encoding="utf-8") as log:
            for line in errors:
                log.write(line)
                tail.append(line.rstrip("\n"))
                # A slow phase (model download, export) still shows signs of life (a
                # watchdog reads them), without flooding the cell with every log line.
                now = time.monotonic()
                if now - shown >= STDERR_EVERY_S or "Error" in line or "Traceback" in line:
                    shown = now
                    print(line, end="", file=sys.stderr, flush=True)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    final: FinalEvent | None = None
    for line in proc.stdout:
        event = parse_event(line)
        if event is not None and is_final(event):
            final = event
            if isinstance(event, Done):
                continue
        print(line, end="", flush=True)
    code = proc.wait()
    reader.join(timeout=10)
    if isinstance(final, Done):
        return final
    if final is None:
        _emit(
            Error(
                kind="internal",
                message=f"The training process ended without finishing (exit code {code}).",
                fix="Its last lines: " + " | ".join(list(tail)[-5:]),
            )
        )
    message = final.message if isinstance(final, Error) else ""
    raise RuntimeError(f"training did not finish: {message or f'exit code {code}'}")


def remote_package(job_data: dict[str, Any], work: Path, done: Done | None) -> dict[str, Any]:
    """The tuned model's folder as one tar with every file's sha256; pushed to the hub
    when the job names a repo. Prints the run's final ``done`` event."""
    if done is None:
        raise RuntimeError("training did not finish (see above): nothing to package")
    job = ColabJob.from_dict(job_data)
    try:
        model = done.model or job.run_name
        folder = work / "data" / "models" / "tuned" / model
        _emit(Exporting(what="package", index=1, total=2 if job.push_repo else 1))
        files = make_manifest(folder, model)["files"]
        out = work / OUT_FOLDER
        out.mkdir(parents=True, exist_ok=True)
        archive = out / f"{job.run_name}.tar"
        manifest = json.dumps({"model": model, "files": files}, indent=1).encode("utf-8")
        tmp = temp_path(archive)  # streamed (a model is too big for one write_atomic)
        try:
            with tarfile.open(tmp, "w") as tar:
                tar.add(folder, arcname=model)
                # The checksums travel with the files: an archive downloaded by hand is
                # checked too.
                member = tarfile.TarInfo(MANIFEST_NAME)
                member.size = len(manifest)
                tar.addfile(member, io.BytesIO(manifest))
            os.replace(tmp, archive)
        finally:
            tmp.unlink(missing_ok=True)
        outputs = {
            kind: str(Path(path).relative_to(folder).as_posix())
            for kind, path in done.outputs.items()
            if Path(path).is_relative_to(folder)
        }
        hub_repo = ""
        if job.push_repo:
            _emit(Exporting(what="push", index=2, total=2))
            from huggingface_hub import CommitOperationAdd, HfApi

            token = remote_hub_token()
            if not token:
                raise NotebookError(
                    f"No Hugging Face token to push to {job.push_repo}: add the Colab secret "
                    f"{TOKEN_NAME} (or set the environment variable) and run this cell again."
                )
            api = HfApi(token=token)
            api.create_repo(job.push_repo, private=True, exist_ok=True, repo_type="model")
            # One commit under <run>/ with the manifest last in it: the app pulls a run
            # once its manifest is there, so it never sees half a run, and runs pushed to
            # the same repo never mix (core/colab/hub_results.py reads this layout).
            ops = [
                CommitOperationAdd(
                    path_in_repo=f"{job.run_name}/{rel}", path_or_fileobj=str(folder / rel)
                )
                for rel in files
            ]
            ops.append(
                CommitOperationAdd(
                    path_in_repo=f"{job.run_name}/{MANIFEST_NAME}", path_or_fileobj=manifest
                )
            )
            api.create_commit(
                job.push_repo,
                ops,
                commit_message=f"CoT-RAG Studio run {job.run_name}",
                repo_type="model",
            )
            hub_repo = job.push_repo
        result = {
            "model": model,
            "outputs": outputs,
            "metrics": done.metrics,
            "archive": f"{OUT_FOLDER}/{archive.name}",
            "archive_sha256": file_sha256(archive),
            "files": files,
            "hub_repo": hub_repo,
            "remote": True,
        }
        _emit(Done(**result))
        return result
    except Exception as exc:
        _emit(Error(kind="internal", message=f"Packaging the results failed: {exc}", fix=""))
        raise
