"""Installed models by name: the bundled default, pulled and added models, tuned models.

    models/tuned/<name>/model.json    what it is: base, dataset (name, hash), spec, metrics,
                                      files, where it was trained
    models/tuned/<name>/*.gguf        the llama.cpp exports (merged f16 / q8_0 / q4_k_m,
                                      and the LoRA adapter)
    models/tuned/<name>/adapter/      the peft adapter; merged/ the merged HF weights
    models/library/<name>.json        a model pulled from the hub (its files stay in the
                                      standard hub cache, shared with other tools) or a
                                      file / folder the user added (it stays where it is)

Model references stay strings (a path, ``default``, a name, ``name:variant``) until
:meth:`ModelRegistry.resolve` turns them into the file an engine loads.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import CotragError, ModelNotFound
from core.fileio import write_atomic, write_json_atomic
from core.llm.engines import default_model_path
from core.models.facts import ModelFacts, inspect_model
from core.names import check_name
from core.paths import DataLayout

MODEL_FILE = "model.json"
VARIANT_FILES = {
    "q8_0": "model.q8_0.gguf",
    "f16": "model.f16.gguf",
    "q4_k_m": "model.q4_k_m.gguf",
    "lora": "adapter.gguf",
}
PREFERRED = ("q8_0", "f16", "q4_k_m", "lora")
"""The file a bare name runs: the best that was exported."""
BUNDLED_LICENCE = "apache-2.0"
BUNDLED_DISPLAY = "SmolLM2-135M (bundled)"
KINDS = ("bundled", "pulled", "added", "tuned")
VERDICTS = ("better", "same", "worse")
"""A tuned model's guard verdict against its base (see core.training.guard)."""
VERDICT_NOTES = {
    "better": "better than base",
    "same": "no different from base",
    "worse": "worse than base",
}


@dataclass
class ModelEntry:
    name: str
    kind: str
    """``bundled``, ``pulled`` (from the hub), ``added`` (a file the user chose) or ``tuned``."""
    folder: Path | None = None
    """A tuned model's folder."""
    info: dict[str, Any] = field(default_factory=dict)
    """model.json of a tuned model; the library record of a pulled or added one."""

    @property
    def path(self) -> Path | None:
        """The file or folder an engine loads (pulled and added models)."""
        raw = self.info.get("path")
        return Path(raw) if self.kind in ("pulled", "added") and raw else None

    @property
    def variants(self) -> dict[str, Path]:
        """The runnable GGUF files by variant name, those that exist."""
        if self.kind == "bundled":
            return {"q4_1": default_model_path()}
        if self.kind in ("pulled", "added"):
            path = self.path
            if path is None or not path.is_file() or path.suffix.lower() != ".gguf":
                return {}
            return {(self.facts.quantization or "gguf").lower(): path}
        assert self.folder is not None
        return {v: self.folder / f for v, f in VARIANT_FILES.items() if (self.folder / f).is_file()}

    @property
    def default_variant(self) -> str:
        variants = self.variants
        for v in PREFERRED:
            if v in variants:
                return v
        return next(iter(variants), "")

    @property
    def default_gguf(self) -> Path | None:
        variant = self.default_variant
        return self.variants.get(variant) if variant else None

    @property
    def merged_dir(self) -> Path | None:
        """Hugging Face weights to train from: a tuned model's merge, a pulled HF folder."""
        if self.kind in ("pulled", "added"):
            path = self.path
            ok = path is not None and path.is_dir() and (path / "config.json").is_file()
            return path if ok and self.format == "hf" else None
        if self.folder is None:
            return None
        merged = self.folder / "merged"
        return merged if (merged / "config.json").is_file() else None

    @property
    def adapter_dir(self) -> Path | None:
        if self.folder is None:
            return None
        adapter = self.folder / "adapter"
        return adapter if (adapter / "adapter_config.json").is_file() else None

    @property
    def facts(self) -> ModelFacts:
        """What the runnable file or folder says of itself (read once, then kept)."""
        cached = self.__dict__.get("_facts")
        if cached is None:
            target = self.path if self.kind in ("pulled", "added") else self.default_gguf
            if target is None and self.kind == "tuned":
                target = self.merged_dir
            cached = inspect_model(target) if target is not None else ModelFacts("unknown", 0)
            self.__dict__["_facts"] = cached
        return cached

    @property
    def present(self) -> bool:
        """Whether its files are there (a pulled model's cache may have been cleaned)."""
        if self.kind in ("pulled", "added"):
            path = self.path
            return path is not None and path.exists()
        return bool(self.variants) or self.merged_dir is not None

    @property
    def format(self) -> str:
        if self.kind == "tuned":
            return "gguf" if self.variants else ("hf" if self.merged_dir else "unknown")
        return self.facts.format

    @property
    def quantization(self) -> str | None:
        if self.kind == "tuned":
            return ", ".join(self.variants) or None
        return self.facts.quantization

    @property
    def licence(self) -> str | None:
        if self.kind == "bundled":
            return BUNDLED_LICENCE
        recorded = self.info.get("licence")
        if recorded:
            return str(recorded)
        if self.kind == "tuned":
            # The bundled base is recorded by its reference "default" (its name is the
            # file's): a model tuned from it showed "?" for its licence.
            base = self.info.get("base", {})
            bundled = "default" in (base.get("reference"), base.get("name"))
            return BUNDLED_LICENCE if bundled else self.facts.licence
        return self.facts.licence

    @property
    def chat_template(self) -> bool:
        return self.facts.chat_template

    @property
    def lineage(self) -> str:
        """Where it came from, in a few words."""
        if self.kind == "bundled":
            return "HuggingFaceTB/SmolLM2-135M-Instruct, shipped with the app"
        if self.kind == "pulled":
            repo = self.info.get("repo", "?")
            commit = str(self.info.get("commit", ""))[:10]
            base = self.info.get("base_model")
            origin = f"{repo}@{commit}" if commit else str(repo)
            return f"{origin} (from {base})" if base else origin
        if self.kind == "added":
            return f"added from {self.info.get('path', '?')}"
        base = self.info.get("base", {}).get("name", "?")
        data = self.info.get("dataset", {}).get("name", "?")
        return f"tuned from {base} on dataset {data}"

    @property
    def reference(self) -> str:
        """The string an engine factory takes (``mlx:`` prefix for MLX folders)."""
        if self.kind in ("pulled", "added"):
            path = self.path
            if path is None:
                return ""
            return f"mlx:{path}" if self.format == "mlx" else str(path)
        gguf = self.default_gguf
        if gguf is not None:
            return str(gguf)
        merged = self.merged_dir
        return str(merged) if merged is not None else ""

    @property
    def size_bytes(self) -> int:
        path = self.path
        files = [str(f) for f in self.info.get("files") or []]
        if self.kind == "pulled" and path is not None and path.is_file() and len(files) > 1:
            root = _snapshot_root(path)  # a split GGUF: every part counts
            if root is not None:
                return sum((root / f).stat().st_size for f in files if (root / f).is_file())
        if self.kind in ("pulled", "added"):
            return self.facts.size_bytes
        if self.folder is None:
            return sum(p.stat().st_size for p in self.variants.values())
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    @property
    def guard(self) -> dict[str, Any]:
        """The held-out check of a tuned model against its base (``{}``: never run)."""
        guard = self.info.get("guard") if self.kind == "tuned" else None
        return guard if isinstance(guard, dict) else {}

    @property
    def verdict(self) -> str:
        """``better``, ``same`` or ``worse`` than its base on held-out questions; ``""``
        when unchecked (not a tuned model, never checked, too few questions, cancelled)."""
        verdict = str(self.guard.get("verdict", ""))
        return verdict if verdict in VERDICTS else ""

    @property
    def verdict_note(self) -> str:
        """The verdict in a picker's words: ``worse than base`` (``""`` when unchecked)."""
        return VERDICT_NOTES.get(self.verdict, "")

    @property
    def display_name(self) -> str:
        """The name a person reads: the bundled model's own (``SmolLM2-135M (bundled)``),
        else the entry's name."""
        return BUNDLED_DISPLAY if self.kind == "bundled" else self.name

    @property
    def picker_label(self) -> str:
        """``name — worse than base`` (the bare name when there is no verdict)."""
        note = self.verdict_note
        return f"{self.name} — {note}" if note else self.name

    def describe(self) -> str:
        if self.kind == "bundled":
            return "the bundled SmolLM2-135M-Instruct (Q4_1, Apache-2.0)"
        return self.lineage


class ModelRegistry:
    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout

    @property
    def tuned_root(self) -> Path:
        path = self.layout.models / "tuned"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def library_root(self) -> Path:
        path = self.layout.models / "library"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def bundled(self) -> ModelEntry:
        return ModelEntry("default", "bundled")

    def tuned(self) -> list[ModelEntry]:
        return [
            self._entry(folder)
            for folder in sorted(self.tuned_root.iterdir())
            if (folder / MODEL_FILE).is_file()
        ]

    def library(self) -> list[ModelEntry]:
        """Pulled and added models."""
        entries = [self._library_entry(p) for p in sorted(self.library_root.glob("*.json"))]
        return [e for e in entries if e is not None]

    def _entry(self, folder: Path) -> ModelEntry:
        try:
            info = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {"damaged": True}
        return ModelEntry(folder.name, "tuned", folder, info)

    def _library_entry(self, record: Path) -> ModelEntry | None:
        try:
            info = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        kind = info.get("kind") if isinstance(info, dict) else None
        if kind not in ("pulled", "added"):
            return None
        return ModelEntry(record.stem, kind, None, info)

    def list(self) -> list[ModelEntry]:
        return [self.bundled(), *self.library(), *self.tuned()]

    def find(self, name: str) -> ModelEntry | None:
        base = name.split(":", 1)[0]
        if base == "default":
            return self.bundled()
        folder = self.tuned_root / base
        if (folder / MODEL_FILE).is_file():
            return self._entry(folder)
        record = self.library_root / f"{base}.json"
        return self._library_entry(record) if record.is_file() else None

    def find_path(self, path: str | Path) -> ModelEntry | None:
        """The pulled or added entry whose file or folder is ``path``."""
        wanted = Path(path).expanduser().resolve()
        for entry in self.library():
            own = entry.path
            if own is not None and own.expanduser().resolve() == wanted:
                return entry
        return None

    def resolve(self, reference: str | None) -> str:
        """The file an engine loads for ``reference`` ('' = the bundled model).

        A path is returned as it is; ``name`` gives a pulled or added model's file, a
        tuned model's best export, and ``name:variant`` (q8_0, f16, q4_k_m, lora) a
        given export.
        """
        ref = (reference or "").strip()
        if not ref or ref == "default":
            return ""
        if Path(ref).expanduser().exists() or ref.startswith("mlx:"):
            return ref
        name, _, variant = ref.partition(":")
        entry = self.find(name)
        if entry is None:
            return ref  # not a name we know: the engine reports the missing path
        if entry.kind in ("pulled", "added"):
            if not entry.present:
                raise ModelNotFound(
                    f"The files of the model {name!r} are gone ({entry.info.get('path')}): "
                    f"pull it again (`cotrag models pull {entry.info.get('repo', '')}`) or "
                    "delete it."
                    if entry.kind == "pulled"
                    else f"The model {name!r} was added from {entry.info.get('path')}, which "
                    "is gone: add it again from where it is now, or delete it."
                )
            return entry.reference
        variants = entry.variants
        if not variants:
            merged = entry.merged_dir
            if merged is not None and not variant:
                return str(merged)
            raise ModelNotFound(f"The tuned model {name!r} has no GGUF export to run.")
        chosen = variant or entry.default_variant
        if chosen not in variants:
            raise ModelNotFound(
                f"The tuned model {name!r} has no {chosen} export: use one of "
                f"{', '.join(variants)}."
            )
        return str(variants[chosen])

    # -- pulled and added models ------------------------------------------------------

    def unique_name(self, wanted: str) -> str:
        """``wanted`` made a valid, unused name (``-2``, ``-3`` … appended when taken)."""
        base = re.sub(r"[^A-Za-z0-9._ -]+", "-", wanted).strip(" .-")[:60] or "model"
        name, n = base, 2
        while self.find(name) is not None or name == "default":
            name = f"{base[:56]}-{n}"
            n += 1
        return name

    def add_local(self, path: Path, name: str | None = None) -> ModelEntry:
        """Register a GGUF file or a model folder where it is (nothing is copied).

        Adding the same path again returns the existing entry.
        """
        path = path.expanduser().resolve()
        existing = self.find_path(path)
        if existing is not None:
            return existing
        facts = inspect_model(path)
        if facts.format in ("unknown", "adapter"):
            raise CotragError(
                f"{path} is not a model this app can run: choose a .gguf file, a Hugging Face "
                "model folder (with config.json) or an MLX folder."
            )
        chosen = name or self.unique_name(path.stem if path.is_file() else path.name)
        return self._write_record(chosen, {"kind": "added", "path": str(path)})

    def add_pulled(self, name: str | None, record: dict[str, Any]) -> ModelEntry:
        """Register a model downloaded into the hub cache: ``record`` has repo, revision,
        commit, files (paths in the repo), path (the snapshot file or folder), licence."""
        existing = self.find_path(record["path"])
        if existing is not None and existing.kind == "pulled":
            return self._write_record(existing.name, {**existing.info, **record})
        repo = str(record.get("repo", "model"))
        path = Path(record["path"])
        stem = path.stem if path.suffix.lower() == ".gguf" else repo.split("/")[-1]
        chosen = name or self.unique_name(stem)
        return self._write_record(chosen, {"kind": "pulled", **record})

    def check_free(self, name: str, path: str = "") -> None:
        """Refuse ``name`` when a tuned model has it, or a pulled / added model of another
        file does (the same file may be registered again under its name)."""
        if (self.tuned_root / name / MODEL_FILE).exists():
            raise CotragError(f"A tuned model named {name!r} exists: choose another name.")
        existing = self._library_entry(self.library_root / f"{name}.json")
        if existing is not None and str(existing.info.get("path", "")) != path:
            raise CotragError(
                f"A model named {name!r} exists ({existing.lineage}): choose another name "
                f"or delete it first (`cotrag models delete {name}`)."
            )

    def _write_record(self, name: str, info: dict[str, Any]) -> ModelEntry:
        check_name(name, "model")
        if name == "default":
            raise CotragError("'default' names the bundled model: choose another name.")
        record = self.library_root / f"{name}.json"
        self.check_free(name, str(info.get("path", "")))
        info = {"name": name, "added": datetime.now(UTC).isoformat(timespec="seconds"), **info}
        write_json_atomic(record, info, indent=2)
        return ModelEntry(name, str(info["kind"]), None, info)

    # -- tuned models -------------------------------------------------------------------

    def reserve(self, name: str) -> Path:
        """A fresh folder for a tuned model being written (``<name>.part``)."""
        check_name(name, "model")
        if (self.tuned_root / name / MODEL_FILE).exists() or (
            self.library_root / f"{name}.json"
        ).exists():
            raise CotragError(f"A model named {name!r} exists: choose another name or delete it.")
        part = self.tuned_root / f"{name}.part"
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        return part

    def commit(self, part: Path, name: str, info: dict[str, Any]) -> ModelEntry:
        """Write model.json and move the folder into place (the model appears at once)."""
        write_json_atomic(part / MODEL_FILE, {"name": name, **info}, indent=2)
        final = self.tuned_root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(part, final)
        return ModelEntry(name, "tuned", final, {"name": name, **info})

    def update_tuned(self, name: str, changes: dict[str, Any]) -> ModelEntry:
        """Set top-level keys of a tuned model's model.json (the file is replaced
        atomically: a crash leaves the old record or the new one)."""
        folder = self.tuned_root / name
        record = folder / MODEL_FILE
        try:
            info = json.loads(record.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelNotFound(f"No tuned model named {name!r}.") from exc
        except (OSError, ValueError) as exc:
            raise CotragError(f"The record of the tuned model {name!r} is damaged: {exc}") from exc
        info.update(changes)
        write_atomic(record, json.dumps(info, ensure_ascii=False, indent=2))
        return ModelEntry(name, "tuned", folder, info)

    def delete(self, name: str) -> str:
        """Remove a model; returns a sentence of what went (and what stayed)."""
        entry = self.find(name)
        if entry is None:
            raise ModelNotFound(f"No model named {name!r} (see `cotrag models list`).")
        if entry.kind == "bundled":
            raise CotragError("The bundled model ships with the app and cannot be deleted.")
        if entry.kind == "added":
            (self.library_root / f"{name}.json").unlink(missing_ok=True)
            return f"Removed {name!r} from the list; its file stays at {entry.info.get('path')}."
        if entry.kind == "pulled":
            freed = remove_from_hub_cache(entry)
            (self.library_root / f"{name}.json").unlink(missing_ok=True)
            return f"Deleted {name!r} ({freed / 1e6:.0f} MB freed in the hub cache)."
        assert entry.folder is not None
        # Renamed first, so a kill mid-way never leaves a half-deleted model that lists.
        trash = entry.folder.with_name(f".{entry.name}.deleting")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(entry.folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return f"Deleted {name!r}."


def tuned_info(model_path: Path) -> dict[str, Any]:
    """The model.json of the tuned model whose export ``model_path`` is (``{}`` for any
    other path): its GGUF files sit next to model.json, its merged folder inside it."""
    if not model_path.exists():
        return {}
    for folder in (model_path.parent, model_path.parent.parent):
        record = folder / MODEL_FILE
        if not record.is_file():
            continue
        try:
            info = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) and info.get("tuned") else {}
    return {}


def recorded_guard(model_file: Path) -> dict[str, Any]:
    """The guard record of the tuned model whose export ``model_file`` is (``{}`` for any
    other file)."""
    guard = tuned_info(model_file).get("guard")
    return guard if isinstance(guard, dict) else {}


def remove_from_hub_cache(entry: ModelEntry) -> int:
    """Delete the snapshot links of a pulled model's own files (``info["files"]``: every
    part of a split GGUF, every file of a folder pull, nothing another pull or tool put in
    the same snapshot), and each blob no other snapshot links to. Returns the bytes freed.
    """
    path = entry.path
    if path is None:
        return 0
    snapshot = _snapshot_root(path)
    repo_root = snapshot.parent.parent if snapshot is not None else None
    names = [str(f) for f in entry.info.get("files") or []]
    links = [snapshot / name for name in names] if snapshot is not None and names else [path]
    freed = 0
    for link in links:
        if not (link.is_symlink() or link.is_file()):
            continue
        blob = link.resolve() if link.is_symlink() else None
        link.unlink(missing_ok=True)
        if blob is None or repo_root is None or not blob.is_file():
            continue
        if not _linked_elsewhere(repo_root, blob):
            freed += blob.stat().st_size
            blob.unlink(missing_ok=True)
    if snapshot is not None:  # folders left empty by the links removed
        for folder in sorted((p for p in snapshot.rglob("*") if p.is_dir()), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            snapshot.rmdir()
    return freed


def _snapshot_root(path: Path) -> Path | None:
    """``…/models--org--name/snapshots/<commit>`` above (or at) a pulled model's path."""
    for candidate in (path, *path.parents):
        if candidate.parent.name == "snapshots":
            return candidate
    return None


def _linked_elsewhere(repo_root: Path, blob: Path) -> bool:
    snapshots = repo_root / "snapshots"
    if not snapshots.is_dir():
        return False
    return any(link.is_symlink() and link.resolve() == blob for link in snapshots.rglob("*"))
