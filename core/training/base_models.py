"""The model a run starts from, as Hugging Face weights the trainer can read.

- ``default``: the bundled GGUF, dequantized once into ``models/base/<name>-hf``
  (transformers reads GGUF). The LoRA exported from such a run is applied by
  llama.cpp to that same GGUF, whose weights are exactly the dequantized ones.
- a ``.gguf`` file: dequantized the same way, once per file.
- a Hugging Face model folder (``config.json``): used in place.
- a tuned model's registry name: its merged folder (training goes on from it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.errors import CotragError, ModelNotFound
from core.llm.engines import default_model_path
from core.models.installed import ModelRegistry
from core.paths import DataLayout


class BaseModelError(CotragError, ValueError):
    pass


@dataclass(frozen=True)
class BaseModel:
    reference: str
    """What the spec said (``default``, a path, a registry name)."""
    hf_dir: Path
    """Hugging Face weights (may not exist yet: :func:`ensure_hf` writes them)."""
    gguf: Path | None
    """The GGUF the adapter applies to in llama.cpp (None: exported on demand)."""
    name: str

    @property
    def ready(self) -> bool:
        return (self.hf_dir / "config.json").is_file()


def resolve_base(reference: str, layout: DataLayout) -> BaseModel:
    ref = (reference or "default").strip()
    if ref == "default":
        gguf = default_model_path()
        return BaseModel(ref, _dequantized_dir(gguf, layout, bundled=True), gguf, gguf.stem)
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BaseModelError(
                f"{path} has no config.json: choose a Hugging Face model folder or a .gguf file."
            )
        gguf_files = sorted(path.glob("*.gguf"))
        return BaseModel(ref, path, gguf_files[0] if gguf_files else None, path.name)
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelNotFound(f"Base model {path} does not exist.")
        return BaseModel(ref, _dequantized_dir(path, layout), path, path.stem)
    entry = ModelRegistry(layout).find(ref)
    if entry is not None and entry.merged_dir is not None:
        return BaseModel(ref, entry.merged_dir, entry.default_gguf, entry.name)
    pulled = entry.default_gguf if entry is not None and entry.kind != "tuned" else None
    if entry is not None and pulled is not None:  # a pulled or added GGUF
        return BaseModel(ref, _dequantized_dir(pulled, layout), pulled, entry.name)
    raise ModelNotFound(
        f"Base model {ref!r} is not 'default', a .gguf file, a model folder or a model name "
        "(see `cotrag models list`)."
    )


def _dequantized_dir(gguf: Path, layout: DataLayout, *, bundled: bool = False) -> Path:
    if bundled:
        return layout.models / "base" / f"{gguf.stem}-hf"
    digest = hashlib.sha256(str(gguf.resolve()).encode()).hexdigest()[:8]
    return layout.models / "base" / f"{gguf.stem}-{digest}-hf"


def ensure_hf(base: BaseModel) -> Path:
    """Write the dequantized Hugging Face folder if it is missing; returns it.

    Written to a temp folder and renamed, so a kill mid-way leaves nothing half-made.
    """
    if base.ready:
        return base.hf_dir
    if base.gguf is None:
        raise BaseModelError(f"{base.hf_dir} has no weights.")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(base.gguf.parent), base.gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise BaseModelError(
            f"transformers cannot read {base.gguf.name} ({exc}); choose a Hugging Face "
            "model folder as the base."
        ) from exc
    # A model loaded from GGUF refuses save_pretrained: copy its weights into a plain one.
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    config = AutoConfig.for_model(**settings)
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    tmp = base.hf_dir.with_name(base.hf_dir.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "SOURCE").write_text(f"dequantized from {base.gguf}\n", encoding="utf-8")
    shutil.rmtree(base.hf_dir, ignore_errors=True)
    os.replace(tmp, base.hf_dir)
    return base.hf_dir


def load_tokenizer(base: BaseModel) -> object:
    """The base's tokenizer (from the HF folder, or straight from the GGUF)."""
    from transformers import AutoTokenizer

    if base.ready:
        return AutoTokenizer.from_pretrained(str(base.hf_dir))
    assert base.gguf is not None
    return AutoTokenizer.from_pretrained(str(base.gguf.parent), gguf_file=base.gguf.name)
