"""A finished run becomes a tuned model: adapter, merged weights, GGUF files, model.json.

Everything is written into ``models/tuned/<name>.part`` and renamed into place at
the end, so the model list never shows a half-exported model; a failure in one GGUF
export is reported and the others are kept.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from core.agent.prompts import template_version
from core.llm.engines import TUNED_KEY
from core.models.installed import VARIANT_FILES, ModelEntry, ModelRegistry
from core.training import gguf_export
from core.training.base_models import BaseModel
from core.training.events import Emit, Exporting, Log
from core.training.spec import TrainSpec
from core.training.trainer import Outcome


def export_model(
    registry: ModelRegistry,
    name: str,
    spec: TrainSpec,
    base: BaseModel,
    outcome: Outcome,
    dataset_info: dict[str, Any],
    emit: Emit,
) -> ModelEntry:
    loaded = outcome.loaded
    assert loaded is not None
    part = registry.reserve(name)
    model, tokenizer = loaded.model, loaded.tokenizer
    wanted = list(spec.exports)
    gguf_merged = [v for v in ("f16", "q8_0", "q4_k_m") if v in wanted]
    steps = (["adapter"] if spec.method == "lora" else []) + (
        ["merged"] if gguf_merged or "merged" in wanted else []
    )
    steps += (["f16"] if gguf_merged else []) + [v for v in gguf_merged if v != "f16"]
    steps += ["lora"] if "lora" in wanted and spec.method == "lora" else []
    failures: dict[str, str] = {}

    def say(what: str) -> None:
        emit(Exporting(what=what, index=steps.index(what) + 1, total=len(steps)))

    if spec.method == "lora":
        say("adapter")
        model.save_pretrained(str(part / "adapter"))
        tokenizer.save_pretrained(str(part / "adapter"))
    merged_dir = part / "merged"
    if "merged" in steps:
        say("merged")
        _save_merged(loaded, merged_dir, spec)
    metadata: dict[str, str | bool] = {
        TUNED_KEY: True,
        "cotrag.base": base.name,
        "cotrag.dataset": str(dataset_info.get("name", "")),
        "general.name": name,
    }
    f16 = part / VARIANT_FILES["f16"]
    if gguf_merged:
        say("f16")
        try:
            gguf_export.convert_model(merged_dir, f16, metadata)
        except Exception as exc:  # one export failing must not lose the others
            failures["f16"] = str(exc)
        for kind in ("q8_0", "q4_k_m"):
            if kind in gguf_merged and f16.is_file():
                say(kind)
                try:
                    gguf_export.quantize(f16, part / VARIANT_FILES[kind], kind, loaded.threads)
                except Exception as exc:
                    failures[kind] = str(exc)
        if "f16" not in wanted and f16.is_file():
            f16.unlink()
    base_gguf: Path | None = base.gguf
    if "lora" in steps:
        say("lora")
        try:
            if base_gguf is None:
                base_gguf = part / "base.f16.gguf"
                gguf_export.convert_model(base.hf_dir, base_gguf)
            gguf_export.convert_lora(part / "adapter", base.hf_dir, part / VARIANT_FILES["lora"])
        except Exception as exc:
            failures["lora"] = str(exc)
    if "merged" not in wanted:
        shutil.rmtree(merged_dir, ignore_errors=True)
    for what, message in failures.items():
        emit(Log(message=f"The {what} export failed: {message}"))
    info = {
        "tuned": True,
        "created": time.time(),
        "base": {
            "reference": base.reference,
            "name": base.name,
            "gguf": str(base.gguf or ""),
            "hf_dir": str(base.hf_dir),
        },
        "base_gguf": str(base_gguf or ""),
        "dataset": dataset_info,
        "spec": spec.to_dict(),
        "metrics": {
            "steps": outcome.step,
            "final_loss": outcome.losses[-1] if outcome.losses else None,
            "first_loss": outcome.losses[0] if outcome.losses else None,
            "eval_loss": outcome.eval_loss,
            "tokens": outcome.tokens,
            "seconds": round(outcome.seconds, 1),
            "tokens_per_s": round(outcome.tokens_per_s, 1),
        },
        "trained_on": {"engine": loaded.engine, "device": loaded.device, "dtype": loaded.dtype},
        "template_version": template_version(),
        "export_failures": failures,
        "format": "tuned",
    }
    return registry.commit(part, name, info)


def _save_merged(loaded: Any, folder: Path, spec: TrainSpec) -> None:
    import torch

    model = loaded.model
    if loaded.engine == "unsloth":  # pragma: no cover - GPU
        model.save_pretrained_merged(str(folder), loaded.tokenizer, save_method="merged_16bit")
        return
    # merge_and_unload changes the wrapped model in place: the adapter was saved first.
    merged = model.merge_and_unload() if spec.method == "lora" else model
    merged = merged.to(torch.float16)
    merged.save_pretrained(str(folder))
    loaded.tokenizer.save_pretrained(str(folder))
