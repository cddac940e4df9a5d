"""The runtimes that compute the embedder's vectors: torch (sentence-transformers), the
reference, and ONNX Runtime or OpenVINO running an export of the very same weights.

An export is made here on first use (the app is offline, so nothing is downloaded),
cached, and used only after its vectors have been checked against torch's: each probe
sentence must come out within cosine ``MIN_COSINE`` of torch's vector. The export
folder is written aside and renamed into place when complete, so it is whole or absent.

sentence-transformers' own ``backend="onnx"/"openvino"`` needs optimum, whose releases
pin older transformers (and, for optimum-intel, another torch) than this app ships;
the export and the three steps after the transformer (tokenize, mean-pool, normalise)
are therefore done here, and checked against sentence-transformers itself.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import EmbedderBackend

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

RUNTIME_BATCH_SIZE: dict[EmbedderBackend, int] = {"openvino": 8, "onnx": 4}
"""Texts per forward pass with the fast runtimes. Measured on the npm docs (length-sorted
chunks of up to 256 tokens, 2 cores): OpenVINO is flat from 4 to 16 and slower from 32
(69 chunks/s, 60 at 64, against 78 at 8); ONNX Runtime is fastest at 2-4 (60-53 chunks/s,
42 at 32). Small batches pad less and stay in cache; the forward pass is already
parallel inside."""
MIN_COSINE = 0.999
"""How close (cosine) each exported vector must be to torch's for the export to be used."""
EXPORT_FORMAT = 1
"""Bumped whenever the export recipe changes, so caches made by an older one are redone."""
_INSTALL_HINT = {"onnx": "pip install onnxruntime onnx", "openvino": "pip install openvino"}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_MANIFEST = "export.json"
# Probes for the export check: short and long (past the 256-token cut), code, non-ASCII.
_PROBES = (
    "hello world",
    "How do I publish a scoped package to the npm registry?",
    "npm install --save-dev typescript@5 && npx tsc --init",
    "Les dépendances sont installées dans node_modules ; ß, 東京, emoji 🙂.",
    "Configuration\n\n" + " ".join(f"option{i} sets the value of setting {i}." for i in range(120)),
)


class BackendUnavailable(RuntimeError):
    """A fast runtime cannot be used here; the message says why, and the embedder falls back."""


def load_sentence_transformer(path: Path, device: str) -> Any:
    """The model on torch, through sentence-transformers (the reference runtime)."""
    # The model is local: transformers must never ask the hub for it. Said per call
    # (local_files_only), not with HF_HUB_OFFLINE, which would switch the whole process
    # offline and stop the Models tab's hub search and pulls.
    # Weight-loading progress bars would tear through the CLI's own progress line.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device=device, local_files_only=True)


class RuntimeModel:
    """MiniLM on ONNX Runtime or OpenVINO: tokenize, run the exported transformer, mean-pool
    over real tokens, L2-normalise (the modules sentence-transformers runs for this model)."""

    def __init__(
        self,
        backend: EmbedderBackend,
        tokenizer: Any,
        forward: Callable[[dict[str, np.ndarray]], np.ndarray],
        dimension: int,
    ) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self._forward = forward
        self.dimension = dimension
        # An OpenVINO infer request serves one caller at a time; on a few cores, two
        # concurrent ONNX Runtime calls would only slow each other.
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        import numpy as np

        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        # Similar lengths in a batch pad little (sentence-transformers sorts the same way).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for lo in range(0, len(order), batch_size):
            part = order[lo : lo + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in part])
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            with self._lock:
                hidden = self._forward(feeds)
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[part] = pooled / np.clip(norms, 1e-12, None)
        return out


def _require(module: str, backend: EmbedderBackend) -> Any:
    if module == "openvino":
        # Importing openvino sends a usage event to Google Analytics and writes a client id
        # under ~/intel unless the user opted out; its converter falls back to a silent stub
        # when openvino_telemetry cannot be imported. An offline app does not phone home.
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(
            f"{module} is not installed; {_INSTALL_HINT[backend]} to use it."
        ) from exc


def _check_layout(model_path: Path) -> dict[str, Any]:
    """The model's sentence-transformers settings, if its modules are what we reimplement."""
    try:
        modules = json.loads((model_path / "modules.json").read_text("utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads((model_path / modules[1]["path"] / "config.json").read_text("utf-8"))
        settings = json.loads((model_path / "sentence_bert_config.json").read_text("utf-8"))
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise BackendUnavailable(f"the model folder's settings could not be read ({exc})") from exc
    if "pooling_mode" in pooling:  # the newer single-key spelling
        mean_only = pooling["pooling_mode"] == "mean"
    else:
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
        mean_only = modes == {"pooling_mode_mean_tokens"}
    if kinds != ["Transformer", "Pooling", "Normalize"] or not mean_only:
        raise BackendUnavailable(
            "only a mean-pooled, normalised sentence-transformers model can be exported"
        )
    return {
        "max_seq_length": int(settings.get("max_seq_length", 256)),
        # sentence-transformers 6 writes the newer key; older folders the first one.
        "dimension": int(pooling.get("word_embedding_dimension") or pooling["embedding_dimension"]),
    }


def _tokenizer(model_path: Path, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    # tokenizer.json pads and truncates to a fixed 128; sentence-transformers pads to the
    # longest text in the batch and cuts at the model's max_seq_length.
    config = json.loads((model_path / "tokenizer_config.json").read_text("utf-8"))
    pad = str(config.get("pad_token", "[PAD]"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad) or 0, pad_token=pad)
    return tokenizer


def _fingerprint(model_path: Path) -> str:
    """sha256 over the files the export is made from, so a new model version is re-exported."""
    digest = hashlib.sha256(f"format {EXPORT_FORMAT}".encode())
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        path = model_path / name
        if path.exists():
            digest.update(name.encode())
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def export_dir(cache_dir: Path, model_path: Path, backend: EmbedderBackend) -> Path:
    """The folder holding ``model_path``'s export for ``backend``."""
    return cache_dir / f"{model_path.name}-{backend}"


def has_export(cache_dir: Path, model_path: Path, backend: EmbedderBackend) -> bool:
    """Whether ``cache_dir`` holds a verified export of ``model_path`` for ``backend``."""
    folder = export_dir(cache_dir, model_path, backend)
    return _valid_export(folder, _fingerprint(model_path)) is not None


def open_runtime(
    backend: EmbedderBackend, model_path: Path, cache_dir: Path, threads: int
) -> RuntimeModel:
    """The verified export for ``backend`` (made now if missing or stale), loaded."""
    _require("onnxruntime" if backend == "onnx" else "openvino", backend)
    layout = _check_layout(model_path)
    folder = export_dir(cache_dir, model_path, backend)
    fingerprint = _fingerprint(model_path)
    if _valid_export(folder, fingerprint) is None:
        _make_export(backend, model_path, folder, fingerprint, layout, threads)
    return _load_runtime(backend, model_path, folder, layout, threads)


def _valid_export(folder: Path, fingerprint: str) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((folder / _MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    ok = manifest.get("source") == fingerprint and manifest.get("min_cosine", 0) >= MIN_COSINE
    return manifest if ok else None


def _load_runtime(
    backend: EmbedderBackend,
    model_path: Path,
    folder: Path,
    layout: dict[str, Any],
    threads: int,
) -> RuntimeModel:
    tokenizer = _tokenizer(model_path, layout["max_seq_length"])
    forward: Callable[[dict[str, np.ndarray]], np.ndarray]
    if backend == "onnx":
        ort = _require("onnxruntime", backend)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )

        def forward(feeds: dict[str, np.ndarray]) -> np.ndarray:
            result: np.ndarray = session.run(["last_hidden_state"], feeds)[0]
            return result

    else:
        ov = _require("openvino", backend)
        compiled = ov.Core().compile_model(
            str(folder / "openvino_model.xml"),
            "CPU",
            {
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": threads,
                # bf16 (the default on CPUs with AMX) would move the vectors off torch's.
                "INFERENCE_PRECISION_HINT": "f32",
            },
        )
        request = compiled.create_infer_request()
        output = compiled.output(0)

        def forward(feeds: dict[str, np.ndarray]) -> np.ndarray:
            result: np.ndarray = request.infer(feeds)[output]
            return result

    return RuntimeModel(backend, tokenizer, forward, layout["dimension"])


def _make_export(
    backend: EmbedderBackend,
    model_path: Path,
    folder: Path,
    fingerprint: str,
    layout: dict[str, Any],
    threads: int,
) -> None:
    """Export, check against torch, then move into place: the folder is whole or absent."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    weights = sum(
        (model_path / n).stat().st_size
        for n in ("model.safetensors", "pytorch_model.bin")
        if (model_path / n).exists()
    )
    free = shutil.disk_usage(folder.parent).free
    if free < 2 * weights + (64 << 20):
        raise BackendUnavailable(
            f"{folder.parent} has {free >> 20} MiB free and the export needs about "
            f"{(2 * weights) >> 20} MiB; free some disk space."
        )
    log.info("Exporting the embedding model to %s, once (a few seconds).", backend)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        export_model(backend, model_path, tmp)
        runtime = _load_runtime(backend, model_path, tmp, layout, threads)
        reference = load_sentence_transformer(model_path, "cpu").encode(
            list(_PROBES), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        exported = runtime.encode(_PROBES, RUNTIME_BATCH_SIZE[backend])
        min_cosine = float((reference * exported).sum(axis=1).min())
        if min_cosine < MIN_COSINE:
            raise BackendUnavailable(
                f"its vectors differ from torch's (cosine {min_cosine:.5f} < {MIN_COSINE})"
            )
        manifest = {"source": fingerprint, "backend": backend, "min_cosine": min_cosine}
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1), "utf-8")
        _install(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, folder: Path) -> None:
    """Rename the finished export into place, replacing a stale one."""
    old: Path | None = None
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}-old-", dir=folder.parent))
        os.replace(folder, old / folder.name)
    try:
        os.replace(tmp, folder)
    except OSError:
        # Another process put its (equally checked) export there first: keep that one.
        if not (folder / _MANIFEST).exists():
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def export_model(backend: EmbedderBackend, model_path: Path, out: Path) -> None:
    """Write the transformer (token ids in, last hidden state out) in ``backend``'s format."""
    import torch
    from transformers import AutoModel

    class LastHiddenState(torch.nn.Module):
        """Keyword arguments and a single tensor out: the signature both exporters trace."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            result: torch.Tensor = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            return result

    model = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()
    wrapper = LastHiddenState(model)
    # Two texts of different lengths, so padding (and its mask) is part of the traced graph.
    tokenizer = _tokenizer(model_path, 64)
    encodings = tokenizer.encode_batch(["a short one", "a somewhat longer example sentence"])
    example = tuple(
        torch.tensor([getattr(e, attr) for e in encodings], dtype=torch.int64)
        for attr in ("ids", "attention_mask", "type_ids")
    )
    if backend == "openvino":
        ov = _require("openvino", backend)
        # ov.convert_model is the ovc tool, which reports usage unless its telemetry module
        # is blocked (see _require); it maps torch's attention to OpenVINO's fused op, 15%
        # faster here than the same model read from ONNX.
        if sys.modules.get("openvino_telemetry") is None:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # tracer chatter, not about our vectors
                converted = ov.convert_model(
                    wrapper,
                    example_input=example,
                    input=[(name, [-1, -1], ov.Type.i64) for name in _INPUTS],
                )
            for port, name in zip(converted.inputs, _INPUTS, strict=True):
                port.get_tensor().set_names({name})
            # Full-precision weights: fp16 storage (the default) would move the vectors.
            ov.save_model(converted, str(out / "openvino_model.xml"), compress_to_fp16=False)
            return
    onnx_file = out / "model.onnx"
    _require("onnx", backend)  # torch's exporter writes through it
    with warnings.catch_warnings(), torch.no_grad():
        # Tracer and exporter chatter about constant folding, not about our vectors.
        warnings.simplefilter("ignore")
        axes = {"batch": 0, "tokens": 1}
        torch.onnx.export(
            wrapper,
            example,
            str(onnx_file),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes={
                name: {i: a for a, i in axes.items()} for name in (*_INPUTS, "last_hidden_state")
            },
            opset_version=17,
            dynamo=False,
        )
    if backend == "openvino":
        # Something imported OpenVINO's telemetry before us: its runtime reader stays silent.
        converted = ov.Core().read_model(str(onnx_file))
        # Full-precision weights: fp16 storage (the default) would move the vectors.
        ov.save_model(converted, str(out / "openvino_model.xml"), compress_to_fp16=False)
        onnx_file.unlink()
