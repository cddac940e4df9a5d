"""What a model file or folder is, read from the files themselves (nothing is loaded).

A GGUF says its quantization, licence and chat template in its header; a Hugging Face
folder in ``config.json`` and ``tokenizer_config.json``; an MLX folder is a Hugging Face
folder whose config carries a ``quantization`` block (or that the hub tags ``mlx``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.llm.engines import read_gguf_metadata
from core.models.hub import quantization_of

ModelFormat = Literal["gguf", "hf", "mlx", "adapter", "unknown"]

# llama.cpp's ``general.file_type`` (enum llama_ftype) for the quantizations in use.
GGUF_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4",
}  # fmt: skip

_GGUF_KEYS = {
    "general.type",
    "general.file_type",
    "general.license",
    "general.architecture",
    "general.name",
    "general.size_label",
    "tokenizer.chat_template",
}


@dataclass
class ModelFacts:
    format: ModelFormat
    size_bytes: int
    quantization: str | None = None
    licence: str | None = None
    chat_template: bool = False
    architecture: str | None = None
    title: str | None = None
    """The model's own name for itself (GGUF general.name, config _name_or_path)."""


def inspect_model(path: Path) -> ModelFacts:
    """The facts of a model file or folder; ``unknown`` when it is neither."""
    if path.is_file():
        return (
            _gguf_facts(path)
            if path.suffix.lower() == ".gguf"
            else ModelFacts("unknown", path.stat().st_size)
        )
    if path.is_dir():
        return _folder_facts(path)
    return ModelFacts("unknown", 0)


def _gguf_facts(path: Path) -> ModelFacts:
    meta = read_gguf_metadata(path, _GGUF_KEYS)
    file_type = meta.get("general.file_type")
    quant = GGUF_FILE_TYPES.get(file_type) if isinstance(file_type, int) else None
    return ModelFacts(
        format="adapter" if meta.get("general.type") == "adapter" else "gguf",
        size_bytes=path.stat().st_size,
        quantization=quant or quantization_of(path.name),
        licence=_str(meta.get("general.license")),
        chat_template=bool(meta.get("tokenizer.chat_template")),
        architecture=_str(meta.get("general.architecture")),
        title=_str(meta.get("general.name")),
    )


def _folder_facts(path: Path) -> ModelFacts:
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    config = _json(path / "config.json")
    tokenizer = _json(path / "tokenizer_config.json")
    template = bool(tokenizer.get("chat_template")) or (path / "chat_template.jinja").is_file()
    if (path / "adapter_config.json").is_file() and not config:
        adapter = _json(path / "adapter_config.json")
        return ModelFacts(
            "adapter", size, licence=None, chat_template=template,
            title=_str(adapter.get("base_model_name_or_path")),
        )  # fmt: skip
    if not config:
        return ModelFacts("unknown", size)
    quant_block = config.get("quantization") or config.get("quantization_config")
    is_mlx = "quantization" in config or (path / "mlx_config.json").is_file()
    quant = None
    if isinstance(quant_block, dict):
        bits = quant_block.get("bits") or (quant_block.get("load_in_4bit") and 4)
        quant = f"{bits}bit" if bits else str(quant_block.get("quant_method", "")) or None
    archs = config.get("architectures") or []
    return ModelFacts(
        format="mlx" if is_mlx else "hf",
        size_bytes=size,
        quantization=quant or _str(config.get("torch_dtype") or config.get("dtype")),
        licence=_card_licence(path / "README.md"),
        chat_template=template,
        architecture=str(archs[0]) if archs else _str(config.get("model_type")),
        title=_str(config.get("_name_or_path")),
    )


def _card_licence(readme: Path) -> str | None:
    """``license:`` from a model card's YAML header (the hub writes it there)."""
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    for line in text.split("\n---", 1)[0].splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "license" and value.strip():
            return value.strip().strip("'\"")
    return None


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _str(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None
