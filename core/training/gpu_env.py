"""The GPU environment: unsloth and its pinned libraries in a virtual environment of their own.

unsloth pins older trl / transformers / datasets than the app, and brings a CUDA
build of torch; installing it next to the app would break the app. So
``cotrag train setup-gpu`` (and the Training tab's button) makes
``<data dir>/envs/unsloth`` with unsloth, llama-cpp-python (for the GGUF exports),
llama.cpp's gguf-py and this app's own code without its dependencies; the training
worker is then started from there when a run's engine is auto or unsloth.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.fileio import write_atomic
from core.paths import DataLayout
from core.training.gguf_export import ConversionMissing, convert_dir
from core.training.process import gpu_env, gpu_env_ready

WORKER_DEPS = ["tomli-w", "filelock", "platformdirs", "peft", "sentencepiece", "safetensors"]


@dataclass(frozen=True)
class GpuStatus:
    nvidia: bool
    """An NVIDIA driver is present (``nvidia-smi`` runs)."""
    env_ready: bool
    sentence: str


def gpu_status(layout: DataLayout) -> GpuStatus:
    nvidia = _nvidia_present()
    ready = gpu_env_ready(layout)
    if ready:
        sentence = "GPU environment ready: runs with engine auto train with unsloth on the GPU."
    elif nvidia:
        sentence = (
            "An NVIDIA GPU is present but the GPU environment is missing: set it up "
            "(`cotrag train setup-gpu`, a few GB of downloads) to train with unsloth; until "
            "then training runs on the CPU."
        )
    else:
        sentence = "No NVIDIA GPU found: training runs on the CPU (torch + peft)."
    return GpuStatus(nvidia, ready, sentence)


def cuda_visible() -> bool:
    """A CUDA GPU is there for a worker started from here: an NVIDIA driver answers and
    ``CUDA_VISIBLE_DEVICES`` does not hide every device (a fraction of a second, no torch)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1", "none", "NoDevFiles"):
        return False
    return _nvidia_present()


def _nvidia_present() -> bool:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        return subprocess.run([exe, "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def app_source() -> Path | None:
    """This app's source folder (installable with pip), or None in a frozen build."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def setup_gpu_env(layout: DataLayout, say: Callable[[str], None] = print) -> int:
    """Create or complete the GPU environment; returns a process exit code."""
    env = gpu_env(layout)
    source = app_source()
    if source is None:
        say(
            "This build of the app has no source folder to install into the GPU environment: "
            "install cotrag-studio with pip to train with unsloth."
        )
        return 1
    python = env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    steps: list[tuple[str, list[str]]] = []
    if not python.exists():
        steps.append(("creating the environment", [sys.executable, "-m", "venv", str(env)]))
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    steps += [
        ("installing unsloth (brings its own CUDA torch: several GB)", [*pip, "unsloth"]),
        ("installing the worker's libraries", [*pip, *WORKER_DEPS]),
        ("installing llama-cpp-python (GGUF quantizing)", [*pip, _llama_cpp_spec()]),
        ("installing this app's code", [*pip, "--no-deps", str(source)]),
    ]
    try:
        gguf_py = convert_dir() / "gguf-py"
        if gguf_py.is_dir():
            steps.append(("installing gguf-py", [*pip, str(gguf_py)]))
    except ConversionMissing:
        pass
    for what, command in steps:
        say(f"==> {what}")
        try:
            code = subprocess.run(command).returncode
        except OSError as exc:
            say(f"Could not run {command[0]}: {exc}")
            return 1
        if code != 0:
            say(f"Setting up the GPU environment failed while {what} (exit {code}); see above.")
            return code
    write_atomic(env / "READY", "unsloth\n")
    say(f"GPU environment ready in {env}.")
    return 0


def _llama_cpp_spec() -> str:
    try:
        import llama_cpp

        return f"llama-cpp-python=={llama_cpp.__version__}"
    except ImportError:
        return "llama-cpp-python"
