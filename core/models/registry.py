"""Installed models by name: the bundled default and every tuned model.

    models/tuned/<name>/model.json    what it is: base, dataset (name, hash), spec, metrics,
                                      files, where it was trained
    models/tuned/<name>/*.gguf        the llama.cpp exports (merged f16 / q8_0 / q4_k_m,
                                      and the LoRA adapter)
    models/tuned/<name>/adapter/      the peft adapter; merged/ the merged HF weights

Model references stay strings (a path, ``default``, a name, ``name:variant``) until
:meth:`ModelRegistry.resolve` turns them into the file an engine loads.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import CotragError, ModelNotFound
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


@dataclass
class ModelEntry:
    name: str
    kind: str
    """``bundled`` or ``tuned``."""
    folder: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def variants(self) -> dict[str, Path]:
        """The runnable GGUF files by variant name, those that exist."""
        if self.kind == "bundled":
            from core.llm.registry import default_model_path

            return {"q4_1": default_model_path()}
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
    def size_bytes(self) -> int:
        if self.folder is None:
            return sum(p.stat().st_size for p in self.variants.values())
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    def describe(self) -> str:
        if self.kind == "bundled":
            return "the bundled SmolLM2-135M-Instruct (Q4_1, Apache-2.0)"
        base = self.info.get("base", {}).get("name", "?")
        data = self.info.get("dataset", {}).get("name", "?")
        return f"tuned from {base} on dataset {data}"


class ModelRegistry:
    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout

    @property
    def tuned_root(self) -> Path:
        path = self.layout.models / "tuned"
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

    def _entry(self, folder: Path) -> ModelEntry:
        try:
            info = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {"damaged": True}
        return ModelEntry(folder.name, "tuned", folder, info)

    def list(self) -> list[ModelEntry]:
        return [self.bundled(), *self.tuned()]

    def find(self, name: str) -> ModelEntry | None:
        base = name.split(":", 1)[0]
        if base == "default":
            return self.bundled()
        folder = self.tuned_root / base
        return self._entry(folder) if (folder / MODEL_FILE).is_file() else None

    def resolve(self, reference: str | None) -> str:
        """The file an engine loads for ``reference`` ('' = the bundled model).

        A path is returned as it is; ``name`` gives the tuned model's best export and
        ``name:variant`` (q8_0, f16, q4_k_m, lora) a given one.
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
        variants = entry.variants
        if not variants:
            raise ModelNotFound(f"The tuned model {name!r} has no GGUF export to run.")
        chosen = variant or entry.default_variant
        if chosen not in variants:
            raise ModelNotFound(
                f"The tuned model {name!r} has no {chosen} export: use one of "
                f"{', '.join(variants)}."
            )
        return str(variants[chosen])

    def reserve(self, name: str) -> Path:
        """A fresh folder for a tuned model being written (``<name>.part``)."""
        from core.dataset.storage import check_name

        check_name(name, "model")
        if (self.tuned_root / name / MODEL_FILE).exists():
            raise CotragError(f"A model named {name!r} exists: choose another name or delete it.")
        part = self.tuned_root / f"{name}.part"
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        return part

    def commit(self, part: Path, name: str, info: dict[str, Any]) -> ModelEntry:
        """Write model.json and move the folder into place (the model appears at once)."""
        (part / MODEL_FILE).write_text(
            json.dumps({"name": name, **info}, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        final = self.tuned_root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(part, final)
        return ModelEntry(name, "tuned", final, {"name": name, **info})

    def delete(self, name: str) -> None:
        entry = self.find(name)
        if entry is None:
            raise ModelNotFound(f"No model named {name!r} (see `cotrag models list`).")
        if entry.kind == "bundled":
            raise CotragError("The bundled model ships with the app and cannot be deleted.")
        assert entry.folder is not None
        # Renamed first, so a kill mid-way never leaves a half-deleted model that lists.
        trash = entry.folder.with_name(f".{entry.name}.deleting")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(entry.folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
