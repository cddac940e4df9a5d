"""The job a Colab notebook carries (its first cell, as JSON), and the names the app and
the notebook's kernel agree on: folders, files, environment variables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.colab.errors import NotebookError
from core.training.gguf_export import convert_dir
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


def _local_llama_cpp_version() -> str:
    try:
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
        # The runtime has no knowledge base to check the tuned model on: no guard there.
        spec={**spec.to_dict(), "guard": False},
        dataset_name=dataset_name or spec.dataset,
        dataset_file=Path(dataset_file).name,
        dataset_sha256=dataset_sha256,
        dataset_meta=dict(dataset_meta or {}),
        dataset_repo=dataset_repo or None,
        push_repo=push_repo or None,
        base_repo=base_repo or None,
        llama_cpp_version=_local_llama_cpp_version(),
    )
