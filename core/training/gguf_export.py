"""GGUF files for llama.cpp from a tuned model, with llama.cpp's own conversion code.

The conversion scripts (``convert_hf_to_gguf.py``, ``convert_lora_to_gguf.py``, their
``conversion`` package and ``gguf-py``) are copied by the set-up command from the
source of the installed llama-cpp-python, so they always match the llama.cpp that
loads the result. Nothing is downloaded at run time. Quantizing goes through
``llama_cpp.llama_model_quantize``, the installed library itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

from core.errors import CotragError

ENV_CONVERT_DIR = "COTRAG_LLAMA_CONVERT"
CONVERT_FOLDER = "llama.cpp-convert"
QUANT_TYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}


class ConversionMissing(CotragError, FileNotFoundError):
    pass


class ConversionFailed(CotragError, RuntimeError):
    pass


def convert_dir() -> Path:
    """Where the set-up command put llama.cpp's conversion code."""
    candidates: list[Path] = []
    if os.environ.get(ENV_CONVERT_DIR):
        candidates.append(Path(os.environ[ENV_CONVERT_DIR]))
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        candidates.append(Path(frozen) / CONVERT_FOLDER)
    candidates.append(Path(sys.prefix) / "share" / "cotrag" / CONVERT_FOLDER)
    for folder in candidates:
        if (folder / "convert_hf_to_gguf.py").is_file() and (folder / "conversion").is_dir():
            return folder
    raise ConversionMissing(
        "llama.cpp's GGUF conversion code is not installed: run `bash packaging/install.sh` "
        f"again (it copies it to {candidates[-1]}), or set {ENV_CONVERT_DIR} to a llama.cpp "
        "checkout of the installed version."
    )


@contextlib.contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def convert_model(hf_dir: Path, out: Path, metadata: dict[str, str | bool] | None = None) -> Path:
    """A merged Hugging Face folder → an f16 GGUF at ``out`` (written via a temp name).

    ``metadata`` adds GGUF keys (e.g. ``cotrag.tuned``) next to llama.cpp's own.
    """
    folder = convert_dir()
    extra = dict(metadata or {})
    tmp = out.with_name(out.name + ".part")
    with _on_path(folder):
        import gguf
        import torch
        from conversion import ModelBase, ModelType, get_model_architecture, get_model_class

        hparams = ModelBase.load_hparams(hf_dir, False)
        arch = get_model_architecture(hparams, ModelType.TEXT)
        try:
            model_class = get_model_class(arch)
        except NotImplementedError as exc:
            raise ConversionFailed(
                f"llama.cpp cannot convert {arch} models to GGUF (its converter has no such "
                "architecture); keep the adapter and the merged folder."
            ) from exc

        class Tagged(model_class):  # type: ignore[valid-type,misc]
            model_arch = model_class.model_arch

            def set_gguf_parameters(self) -> None:
                super().set_gguf_parameters()
                for key, value in extra.items():
                    if isinstance(value, bool):
                        self.gguf_writer.add_bool(key, value)
                    else:
                        self.gguf_writer.add_string(key, str(value))

        with torch.inference_mode():
            model = Tagged(hf_dir, gguf.LlamaFileType.MOSTLY_F16, tmp, hparams=hparams)
            model.write()
    os.replace(tmp, out)
    return out


def convert_lora(adapter_dir: Path, base_hf_dir: Path, out: Path) -> Path:
    """A peft adapter folder → a GGUF LoRA that llama.cpp applies at load."""
    script = convert_dir() / "convert_lora_to_gguf.py"
    tmp = out.with_name(out.name + ".part")
    argv = [
        str(script),
        str(adapter_dir),
        "--base",
        str(base_hf_dir),
        "--outfile",
        str(tmp),
        "--outtype",
        "f16",
    ]
    saved = sys.argv
    sys.argv = argv
    try:
        with _on_path(script.parent):
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise ConversionFailed(
                f"llama.cpp's LoRA converter stopped (exit {exc.code}); see the log above."
            ) from exc
    finally:
        sys.argv = saved
    if not tmp.is_file():
        raise ConversionFailed("llama.cpp's LoRA converter wrote no file; see the log above.")
    os.replace(tmp, out)
    return out


def quantize(src: Path, out: Path, kind: str, threads: int = 0) -> Path:
    """``src`` (f16 GGUF) → ``out`` in ``kind`` (q8_0 or q4_k_m), with llama.cpp itself.

    Tensors whose rows do not fit the k-quant block size fall back to a type that
    fits (llama.cpp decides, and says so in the log).
    """
    if kind not in QUANT_TYPES:
        raise ValueError(f"unknown quantization {kind!r}; use {', '.join(QUANT_TYPES)}")
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[kind])
    params.nthread = threads
    tmp = out.with_name(out.name + ".part")
    code = llama_cpp.llama_model_quantize(
        str(src).encode(), str(tmp).encode(), ctypes.byref(params)
    )
    if code != 0 or not tmp.is_file():
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ConversionFailed(f"llama.cpp could not quantize {src.name} to {kind} (code {code}).")
    os.replace(tmp, out)
    return out
