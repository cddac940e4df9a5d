"""Application settings: dataclasses persisted as TOML with a ``schema_version``."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import tomli_w

from core.errors import ConfigError
from core.fileio import write_atomic

SCHEMA_VERSION = 1

GrammarSetting = Literal["auto", "on", "off"]
FirstQuerySetting = Literal["auto", "question", "model"]
SearchMethod = Literal["dense", "bm25", "hybrid"]
EmbedderBackend = Literal["auto", "torch", "onnx", "openvino"]


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass
class ChunkingConfig:
    size: int = 1000
    """Target chunk length in characters."""
    overlap: int = 150
    """Characters repeated from the end of a chunk at the start of the next (within a section)."""
    min_chars: int = 30
    """Chunks shorter than this are dropped (page numbers, stray headings)."""

    def __post_init__(self) -> None:
        _require(self.size >= 100, f"chunking.size is {self.size}: use 100 characters or more.")
        _require(
            0 <= self.overlap < self.size // 2,
            f"chunking.overlap is {self.overlap}: use 0 up to half of chunking.size ({self.size}).",
        )
        _require(self.min_chars >= 0, "chunking.min_chars must be 0 or more.")


@dataclass
class RetrievalConfig:
    k: int = 4
    """Passages returned per search."""
    method: SearchMethod = "hybrid"
    """dense (embeddings), bm25 (keywords) or hybrid (reciprocal rank fusion of both)."""

    def __post_init__(self) -> None:
        _require(1 <= self.k <= 50, f"retrieval.k is {self.k}: use 1 to 50.")
        _require(
            self.method in ("dense", "bm25", "hybrid"),
            f"retrieval.method is {self.method!r}: use dense, bm25 or hybrid.",
        )


@dataclass
class EmbeddingConfig:
    backend: EmbedderBackend = "auto"
    """Runtime of the embedding model: torch, onnx (ONNX Runtime), openvino, or auto (the
    fastest of openvino, onnx, torch that is installed; torch on a GPU). Exports are checked
    against torch's vectors before use, so any backend can search a knowledge base built
    with another."""

    def __post_init__(self) -> None:
        _require(
            self.backend in ("auto", "torch", "onnx", "openvino"),
            f"embedding.backend is {self.backend!r}: use auto, torch, onnx or openvino.",
        )


@dataclass
class GenerationConfig:
    temperature: float = 0.2
    """Sampling temperature; 0 is greedy."""
    top_p: float = 0.9
    """Nucleus sampling mass."""
    repeat_penalty: float = 1.1
    """Penalty on recently generated tokens (1.0 = off)."""
    presence_penalty: float = 0.0
    """Subtracted from the logit of a token already generated in the stream (0 = off)."""
    frequency_penalty: float = 0.0
    """Subtracted once per time a token was generated in the stream (0 = off)."""
    no_repeat_ngram: int = 0
    """Forbid repeating any n-gram of this many tokens within a stream (0 = off; try 4)."""
    seed: int = 1234
    """Sampling seed, so a run can be reproduced."""
    n_ctx: int = 4096
    """Context window given to llama.cpp (tokens)."""
    n_threads: int = 0
    """CPU threads for llama.cpp; 0 picks one per physical core (two threads on one core's
    hyperthreads slow each other; on separate cores they nearly double prompt speed)."""
    answer_max_tokens: int = 256
    """Token budget of the answer stage."""

    def __post_init__(self) -> None:
        _require(0.0 <= self.temperature <= 2.0, "generation.temperature must be within 0..2.")
        _require(0.0 < self.top_p <= 1.0, "generation.top_p must be within (0, 1].")
        _require(self.n_ctx >= 512, f"generation.n_ctx is {self.n_ctx}: use 512 or more.")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            _require(-2.0 <= value <= 2.0, f"generation.{name} is {value}: use -2 to 2 (0 = off).")
        _require(
            self.no_repeat_ngram == 0 or 2 <= self.no_repeat_ngram <= 20,
            f"generation.no_repeat_ngram is {self.no_repeat_ngram}: use 0 (off) or 2 to 20.",
        )
        _require(self.n_threads >= 0, "generation.n_threads must be 0 (all cores) or more.")
        _require(self.answer_max_tokens >= 16, "generation.answer_max_tokens must be 16 or more.")


@dataclass
class LoopConfig:
    max_rounds: int = 3
    """Most <query> rounds before the loop asks the model to conclude."""
    min_rounds: int = 1
    """Searches the model must make before it may conclude (enforced by the grammar)."""
    max_block_tokens: int = 160
    """Most tokens in one <think>/<query>/<results> block; longer blocks are closed."""
    max_total_tokens: int = 1024
    """Most tokens the model may write in the whole search turn."""
    grammar: GrammarSetting = "auto"
    """Force the tag structure with a llama.cpp grammar: auto (for models that need it), on, off."""
    first_query: FirstQuerySetting = "auto"
    """Who writes the first search: question (the app searches with your question, then the
    model goes on), model, or auto (question for models not tuned on the tags)."""
    answer_model: str = "auto"
    """The model that writes the answer from the vetted passages: empty for the model that
    searched, ``base`` for the model a tuned model was trained from (the searcher's own
    model when it was not tuned here), ``auto`` for whichever of those two the tuned
    model's guard measured better (the searcher itself when unmeasured), or a model (a
    name, GGUF file or folder)."""

    def __post_init__(self) -> None:
        _require(1 <= self.max_rounds <= 20, "loop.max_rounds must be within 1..20.")
        _require(
            0 <= self.min_rounds <= self.max_rounds,
            f"loop.min_rounds is {self.min_rounds}: use 0 up to loop.max_rounds ({self.max_rounds}).",
        )
        _require(
            8 <= self.max_block_tokens <= 4096, "loop.max_block_tokens must be within 8..4096."
        )
        _require(
            self.max_total_tokens >= self.max_block_tokens,
            "loop.max_total_tokens must be at least loop.max_block_tokens.",
        )
        _require(self.grammar in ("auto", "on", "off"), "loop.grammar must be auto, on or off.")
        _require(
            self.first_query in ("auto", "question", "model"),
            f"loop.first_query is {self.first_query!r}: use auto, question or model.",
        )
        _require(
            isinstance(self.answer_model, str),
            "loop.answer_model must be text: empty, auto, base, or a model name or file.",
        )


@dataclass
class StoreConfig:
    chroma_host: str = ""
    """Empty: embedded PersistentClient in the data dir. Otherwise a Chroma server (HttpClient)."""
    chroma_port: int = 8000
    """Port of the Chroma server when chroma_host is set."""


@dataclass
class AppConfig:
    schema_version: int = SCHEMA_VERSION
    model: str = ""
    """Path of the GGUF model; empty means the bundled default."""
    kb: str = ""
    """The current knowledge base: used when a command names none (`cotrag kb use NAME`)."""
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    store: StoreConfig = field(default_factory=StoreConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppConfig:
        version = int(data.get("schema_version", SCHEMA_VERSION))
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"config schema_version {version} is newer than this app understands "
                f"({SCHEMA_VERSION}); update the app or remove the file."
            )
        kwargs: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        sections = {f.name: f for f in fields(cls)}
        for key, value in data.items():
            if key == "schema_version":
                continue
            if key not in sections:
                raise ConfigError(f"Unknown setting {key!r} in config; remove it.")
            sub = _SECTION_TYPES.get(key)
            if sub is None:
                kwargs[key] = value
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"Setting {key!r} must be a table.")
            known = {f.name for f in fields(sub)}
            unknown = set(value) - known
            if unknown:
                raise ConfigError(f"Unknown setting(s) {sorted(unknown)} in [{key}]; remove them.")
            try:
                kwargs[key] = sub(**value)
            except TypeError as exc:
                raise ConfigError(f"Bad value in [{key}]: {exc}") from exc
        return cls(**kwargs)


_SECTION_TYPES: dict[str, type] = {
    "chunking": ChunkingConfig,
    "retrieval": RetrievalConfig,
    "embedding": EmbeddingConfig,
    "generation": GenerationConfig,
    "loop": LoopConfig,
    "store": StoreConfig,
}


def load_config(path: Path) -> AppConfig:
    """Read the TOML config; a missing file gives the defaults."""
    if not path.exists():
        return AppConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or delete it.") from exc
    return AppConfig.from_dict(data)


def save_config(config: AppConfig, path: Path) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a config."""
    write_atomic(path, tomli_w.dumps(config.to_dict()))
