"""Pulling a model from the hub: which files, downloaded into the hub cache, then registered.

A GGUF repository usually holds one file per quantization: a pull takes the one the user
named, or the preferred quantization that fits in memory. A Hugging Face (or MLX)
repository is a folder: a pull takes the weights in one format plus the config and
tokenizer files, never another format's copy of the same weights.

A pull is remembered in ``models/pulls/<id>.json`` from start to finish, so a pull that
was paused, cancelled by a crash or cut by a reboot is listed on the next start and
resumes where its files stopped (each file resumes by itself, see ``download``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import CotragError
from core.fileio import write_atomic, write_json_atomic
from core.models.download import discard_partial, download_file
from core.models.hub import HubClient, HubFile, RepoFiles, total_ram
from core.models.installed import ModelEntry, ModelRegistry
from core.models.journal import pending_downloads
from core.models.transfer import DownloadProgress
from core.paths import DataLayout

GGUF_PREFERENCE = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0", "Q4_1", "Q5_K_S", "Q6_K", "Q8_0")
"""The quantization a pull takes when none is named: small and close to full quality."""

_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_OTHER_WEIGHTS = (".onnx", ".h5", ".msgpack", ".ot", ".tflite", ".mlmodel", ".pt", ".pth")
_SKIP_DIRS = ("onnx/", "openvino/", "coreml/", "original/", "tflite/", "runs/")
_FOLDER_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".safetensors", ".md", ".tiktoken")


@dataclass
class PullPlan:
    repo_id: str
    revision: str
    commit: str
    kind: Literal["gguf", "folder"]
    files: list[str]
    """Paths in the repository, the model file (or first shard) first."""
    sizes: dict[str, int]
    licence: str | None = None
    tags: list[str] = field(default_factory=list)
    name: str | None = None
    """The registry name asked for (None: made from the file or repository name)."""
    note: str = ""
    """Why these files (e.g. which quantization was picked), for the user."""

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def id(self) -> str:
        what = self.files[0] if self.kind == "gguf" else f"folder-{self.commit or self.revision}"
        key = f"{self.repo_id}--{what}"
        return re.sub(r"[^A-Za-z0-9._-]+", "-", key)[:120]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PullPlan:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class PullProgress:
    repo_id: str
    file: str
    file_index: int
    n_files: int
    done: int
    """Bytes on disk for the whole pull."""
    total: int
    bytes_per_s: float
    eta_s: float | None


def plan_pull(
    client: HubClient,
    repo_id: str,
    filename: str | None = None,
    *,
    revision: str = "main",
    name: str | None = None,
    memory_bytes: int | None = None,
) -> PullPlan:
    """Which files pulling ``repo_id`` (or one of its files) means. Raises a sentence
    when the repository holds nothing this app can run or the file is not there."""
    repo = client.files(repo_id, revision=revision)
    by_path = {f.path: f for f in repo.files}
    if filename:
        if filename not in by_path:
            listing = ", ".join(f.path for f in repo.files if f.path.endswith(".gguf"))[:300]
            raise CotragError(
                f"{repo_id} has no file {filename} at {revision}"
                + (f": its GGUF files are {listing}." if listing else ".")
            )
        if filename.lower().endswith(".gguf"):
            return _gguf_plan(repo, revision, by_path[filename], by_path, name, "")
        folder = _folder_files(repo)
        if filename not in folder:
            raise CotragError(
                f"{filename} is not a model file: name a .gguf file, or leave the file out "
                f"to pull {repo_id} as a folder."
            )
        return _folder_plan(repo, revision, folder, name)
    ggufs = [f for f in repo.files if _is_model_gguf(f)]
    if ggufs:
        if memory_bytes is None:
            memory_bytes = total_ram()
        chosen, note = choose_gguf(ggufs, memory_bytes)
        return _gguf_plan(repo, revision, chosen, by_path, name, note)
    folder = _folder_files(repo)
    if "config.json" not in folder or not any(p.endswith((".safetensors", ".bin")) for p in folder):
        raise CotragError(
            f"{repo_id} has neither GGUF files nor weights with a config.json: "
            "it is not a model this app can run."
        )
    return _folder_plan(repo, revision, folder, name)


def choose_gguf(ggufs: list[HubFile], memory_bytes: int | None = None) -> tuple[HubFile, str]:
    """The preferred quantization that fits in memory (the smallest file when none fits)."""
    firsts = [f for f in ggufs if _first_part(f.path)]
    whole = {f.path: _whole_size(f, ggufs) for f in firsts}  # a split model: all its parts
    fits = [f for f in firsts if memory_bytes is None or whole[f.path] < memory_bytes * 0.8]
    pool = fits or sorted(firsts, key=lambda f: whole[f.path])[:1]
    for quant in GGUF_PREFERENCE:
        for f in pool:
            if (f.quantization or "").upper() == quant:
                return f, f"picked {quant}, the preferred quantization that fits in memory"
    chosen = min(pool, key=lambda f: whole[f.path])
    return chosen, f"picked {chosen.path}, the smallest file"


def _whole_size(first: HubFile, ggufs: list[HubFile]) -> int:
    shard = _SHARD.search(first.path)
    if shard is None:
        return first.size
    prefix = first.path[: shard.start()]
    return sum(f.size for f in ggufs if f.path.startswith(prefix) and _SHARD.search(f.path))


def _first_part(path: str) -> bool:
    """A whole GGUF, or the first part of a split one."""
    shard = _SHARD.search(path)
    return shard is None or shard.group(1) == "00001"


def _is_model_gguf(f: HubFile) -> bool:
    low = f.path.lower()
    return low.endswith(".gguf") and "mmproj" not in low and "imatrix" not in low


def _gguf_plan(
    repo: RepoFiles,
    revision: str,
    chosen: HubFile,
    by_path: dict[str, HubFile],
    name: str | None,
    note: str,
) -> PullPlan:
    files = [chosen.path]
    shard = _SHARD.search(chosen.path)
    if shard:  # llama.cpp opens the first shard and finds the others next to it
        total = int(shard.group(2))
        prefix = chosen.path[: shard.start()]
        files = [f"{prefix}-{i:05d}-of-{total:05d}.gguf" for i in range(1, total + 1)]
        missing = [f for f in files if f not in by_path]
        if missing:
            raise CotragError(f"{repo.repo_id} lacks the parts {', '.join(missing)} of the model.")
    return PullPlan(
        repo_id=repo.repo_id,
        revision=revision,
        commit=repo.commit,
        kind="gguf",
        files=files,
        sizes={f: by_path[f].size for f in files},
        licence=repo.licence,
        tags=list(repo.tags),
        name=name,
        note=note,
    )


def _folder_files(repo: RepoFiles) -> dict[str, HubFile]:
    """The files a Hugging Face or MLX folder needs: weights in one format, config,
    tokenizer, the card (for the licence). No code: a model that needs remote code is
    not run."""
    keep: dict[str, HubFile] = {}
    has_safetensors = any(f.path.endswith(".safetensors") for f in repo.files)
    for f in repo.files:
        low = f.path.lower()
        if low.startswith(_SKIP_DIRS) or low.endswith(_OTHER_WEIGHTS) or low.endswith(".gguf"):
            continue
        if low.endswith(".bin"):
            # PyTorch pickles only when there are no safetensors (never both copies).
            if not has_safetensors and low.rsplit("/", 1)[-1].startswith("pytorch_model"):
                keep[f.path] = f
            continue
        if low.endswith(_FOLDER_SUFFIXES):
            keep[f.path] = f
    return keep


def _folder_plan(
    repo: RepoFiles, revision: str, folder: dict[str, HubFile], name: str | None
) -> PullPlan:
    order = sorted(folder, key=lambda p: (not p.endswith(".safetensors"), p))
    return PullPlan(
        repo_id=repo.repo_id,
        revision=revision,
        commit=repo.commit,
        kind="folder",
        files=order,
        sizes={p: folder[p].size for p in order},
        licence=repo.licence,
        tags=list(repo.tags),
        name=name,
    )


# -- running a pull -----------------------------------------------------------------


def pulls_dir(layout: DataLayout) -> Path:
    path = layout.models / "pulls"
    path.mkdir(parents=True, exist_ok=True)
    return path


def downloads_dir(layout: DataLayout) -> Path:
    """The per-file download journal (see ``core.models.download``)."""
    path = layout.models / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def remember(layout: DataLayout, plan: PullPlan) -> Path:
    path = pulls_dir(layout) / f"{plan.id}.json"
    write_json_atomic(path, plan.to_dict(), indent=2)
    return path


def forget(layout: DataLayout, plan: PullPlan) -> None:
    (pulls_dir(layout) / f"{plan.id}.json").unlink(missing_ok=True)


def pending_pulls(layout: DataLayout) -> list[PullPlan]:
    """Pulls that started and did not finish (paused, cancelled by a crash, cut off)."""
    plans = []
    for path in sorted(pulls_dir(layout).glob("*.json")):
        try:
            plans.append(PullPlan.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError):
            continue
    return plans


def bytes_on_disk(client: HubClient, plan: PullPlan, layout: DataLayout) -> int:
    """How much of the pull is already downloaded (complete files and partial ones);
    read from the disk only, so it works offline."""
    from huggingface_hub import try_to_load_from_cache

    partial = {
        p.filename: p.done
        for p in pending_downloads(downloads_dir(layout), client.cache_dir)
        if p.repo_id == plan.repo_id
    }
    done = 0
    for filename, size in plan.sizes.items():
        if filename in partial:
            done += min(partial[filename], size)
            continue
        cached = try_to_load_from_cache(
            plan.repo_id, filename, cache_dir=client.cache_dir, revision=plan.commit or None
        )
        if isinstance(cached, str):
            done += size
    return done


def run_pull(
    client: HubClient,
    plan: PullPlan,
    layout: DataLayout,
    *,
    progress: Callable[[PullProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> ModelEntry:
    """Download every file of ``plan`` (resuming what is on disk) and register the model.

    Cancel raises DownloadCancelled and keeps what was downloaded: the pull stays listed
    in :func:`pending_pulls` until it finishes or :func:`discard_pull` drops it.
    """
    if plan.name:  # before the download, not after it: the name must be free
        existing = ModelRegistry(layout).find(plan.name)
        same = existing is not None and existing.info.get("repo") == plan.repo_id
        if existing is not None and not same:
            raise CotragError(
                f"A model named {plan.name!r} exists ({existing.lineage}): pull under another "
                "name (--name) or delete that one first."
            )
    remember(layout, plan)
    revision = plan.commit or plan.revision
    done_before = 0
    started = time.monotonic()
    first_done: int | None = None
    paths: list[Path] = []
    for index, filename in enumerate(plan.files):

        def on_file(
            p: DownloadProgress,
            index: int = index,
            filename: str = filename,
            before: int = done_before,
        ) -> None:
            nonlocal first_done
            if progress is None:
                return
            done = before + p.done
            if first_done is None:
                first_done = done
            elapsed = time.monotonic() - started
            rate = (done - first_done) / elapsed if elapsed > 0.5 else p.bytes_per_s
            left = plan.total_bytes - done
            progress(
                PullProgress(
                    plan.repo_id, filename, index, len(plan.files), done, plan.total_bytes,
                    rate, left / rate if rate > 0 else None,
                )
            )  # fmt: skip

        paths.append(
            download_file(
                client,
                plan.repo_id,
                filename,
                revision=revision,
                progress=on_file,
                cancel=cancel,
                journal_dir=downloads_dir(layout),
            )
        )
        done_before += plan.sizes.get(filename, 0)
    target = paths[0] if plan.kind == "gguf" else _snapshot_folder(paths[0], plan.files[0])
    _write_ref(target, plan)
    record = {
        "repo": plan.repo_id,
        "revision": plan.revision,
        "commit": plan.commit,
        "files": plan.files,
        "path": str(target),
        "licence": plan.licence,
        "base_model": _base_model(plan.tags),
        "tags": plan.tags[:20],
    }
    entry = ModelRegistry(layout).add_pulled(plan.name, record)
    forget(layout, plan)
    return entry


def discard_pull(client: HubClient, plan: PullPlan, layout: DataLayout) -> None:
    """Drop a pull that will not be finished: its partial files and its journal.
    Files that finished downloading stay in the hub cache (other tools may share them)."""
    try:
        for filename in plan.files:
            discard_partial(
                client,
                plan.repo_id,
                filename,
                plan.commit or plan.revision,
                journal_dir=downloads_dir(layout),
            )
    finally:
        forget(layout, plan)  # a partial left behind is not worth listing the pull again


def _write_ref(target: Path, plan: PullPlan) -> None:
    """``refs/<revision>`` → the commit, so other tools find the files offline by
    ``main`` too (the files were fetched by commit, so a resume never mixes two)."""
    if not plan.commit or plan.revision == plan.commit:
        return
    for parent in target.parents:
        if parent.name == "snapshots":
            write_atomic(parent.parent / "refs" / plan.revision, plan.commit)
            return


def _snapshot_folder(first_file: Path, repo_path: str) -> Path:
    """The snapshot folder that holds ``repo_path`` (a file may sit in a subfolder)."""
    folder = first_file.parent
    for _ in range(repo_path.count("/")):
        folder = folder.parent
    return folder


def _base_model(tags: list[str]) -> str | None:
    for tag in tags:
        if tag.startswith("base_model:") and tag.count(":") == 1:
            return tag.split(":", 1)[1]
    return None
