"""The Hugging Face hub as the Models tab and the CLI see it: search, list files, fit.

Everything goes through the real ``huggingface_hub`` client, pointed at ``endpoint``
(``HF_ENDPOINT`` by default, a loopback server in the tests). The access token is
passed explicitly on every call; with none, ``token=False`` keeps the library from
reading ``~/.cache/huggingface/token`` behind the user's back, so what the app shows
is what its own token store (:mod:`core.models.token`) says.

Hub errors become the sentences of :mod:`core.errors` (:func:`hub_errors`), so a
user reads "accept its licence on the hub page" rather than a 401 traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from core.errors import (
    CotragError,
    GatedRepo,
    HubError,
    HubFileNotFound,
    HubRepoNotFound,
    HubUnreachable,
)

if TYPE_CHECKING:
    from huggingface_hub import HfApi

FileFormat = Literal["gguf", "safetensors", "mlx", "pytorch", "config", "other"]
SortKey = Literal["downloads", "likes", "recent"]

MODEL_FORMATS: frozenset[str] = frozenset({"gguf", "safetensors", "mlx", "pytorch"})
RAM_SHARE = 0.8
"""A model file above this share of total memory will not load well next to the OS and app."""

_SORTS = {"downloads": "downloads", "likes": "likes", "recent": "last_modified"}
# The hub returns only what is asked for with expand=; these are what HubModel shows.
_SEARCH_FIELDS = [
    "downloads",
    "likes",
    "lastModified",
    "library_name",
    "tags",
    "gated",
    "pipeline_tag",
]
_CONFIG_NAMES = re.compile(
    r"(config|generation_config|tokenizer|tokenizer_config|special_tokens_map|vocab|merges"
    r"|added_tokens|preprocessor_config|chat_template)(\.[a-z]+)?$",
    re.IGNORECASE,
)
_CONFIG_SUFFIXES = (".json", ".jinja", ".model", ".tiktoken")
_PYTORCH_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
# llama.cpp's quantization names as they appear in file names: Q4_K_M, q8_0, IQ3_XXS,
# F16, BF16, TQ1_0, MXFP4. Bounded by non-alphanumerics so "Q4" inside a word is not one.
_QUANT = re.compile(
    r"(?<![a-z0-9])(i?q\d(?:_[a-z0-9]+)*|bf16|f16|f32|tq\d_\d|mxfp4)(?![a-z0-9])",
    re.IGNORECASE,
)


@dataclass
class HubModel:
    """One search result: enough to rank and filter without listing its files."""

    repo_id: str
    downloads: int
    likes: int
    last_modified: str | None
    """ISO 8601 time of the last commit, when the hub said."""
    library: str | None
    tags: list[str] = field(default_factory=list)
    gated: bool | str = False
    """False, or the hub's approval mode (``auto`` / ``manual``): the licence must be accepted."""
    pipeline_tag: str | None = None


@dataclass
class HubFile:
    """One file of a repository at one commit."""

    path: str
    size: int
    sha256: str | None
    """The LFS checksum (large files only); small files are checked by their git blob id."""
    blob_id: str | None
    format: FileFormat
    quantization: str | None = None
    """``Q4_K_M``, ``Q8_0``, ``F16``… parsed from a GGUF file name."""

    @property
    def is_model(self) -> bool:
        return self.format in MODEL_FORMATS


@dataclass
class RepoFiles:
    """A repository's files at one commit, with what decides whether the app may use it."""

    repo_id: str
    commit: str
    files: list[HubFile]
    gated: bool | str = False
    licence: str | None = None
    library: str | None = None
    tags: list[str] = field(default_factory=list)

    def ggufs(self) -> list[HubFile]:
        """The GGUF files, smallest first (the order a user picks a quantization in)."""
        return sorted((f for f in self.files if f.format == "gguf"), key=lambda f: f.size)

    def file(self, path: str) -> HubFile | None:
        return next((f for f in self.files if f.path == path), None)


def quantization_of(filename: str) -> str | None:
    """``Qwen2.5-0.5B-Instruct-q4_k_m.gguf`` → ``Q4_K_M``; None when the name says none."""
    stem = Path(filename).name
    if stem.lower().endswith(".gguf"):
        stem = stem[: -len(".gguf")]
    # Dots separate fields in some names ("model.Q4_K_M"); make them boundaries too.
    match = _QUANT.search(stem.replace(".", "-"))
    return match.group(1).upper() if match else None


def file_format(path: str, *, mlx_repo: bool) -> FileFormat:
    """What kind of file ``path`` is, by name; ``mlx_repo`` turns safetensors into MLX weights."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(".gguf"):
        return "gguf"
    if name.endswith(".safetensors"):
        return "mlx" if mlx_repo else "safetensors"
    if name.endswith(_PYTORCH_SUFFIXES):
        return "pytorch"
    if name.endswith(_CONFIG_SUFFIXES) or _CONFIG_NAMES.match(name):
        return "config"
    return "other"


def is_mlx_repo(library: str | None, tags: list[str]) -> bool:
    """The hub tags MLX conversions ``mlx`` (library or tag); their weights are safetensors."""
    return library == "mlx" or "mlx" in tags


def licence_of(card_data: Any, tags: list[str]) -> str | None:
    """The licence from the model card's header, else from the hub's ``license:`` tag."""
    licence = getattr(card_data, "license", None) if card_data is not None else None
    if isinstance(licence, list):
        licence = licence[0] if licence else None
    if isinstance(licence, str) and licence:
        return licence
    for tag in tags:
        if tag.startswith("license:"):
            return tag.partition(":")[2] or None
    return None


class HubClient:
    """The hub at ``endpoint`` with ``token`` (or none), caching into ``cache_dir``.

    ``cache_dir`` is the standard hub cache (``HF_HUB_CACHE`` by default), so files
    downloaded here are found by every other Hugging Face tool, and theirs by us.
    """

    def __init__(
        self, endpoint: str | None = None, token: str | None = None, cache_dir: Path | None = None
    ) -> None:
        from huggingface_hub import constants

        self.endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
        self.token = token or None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)

    @property
    def auth(self) -> str | Literal[False]:
        """What to pass as ``token=``: ours, or False so the library never looks for one."""
        return self.token or False

    def repo_url(self, repo_id: str) -> str:
        """The repository's page, where a gated licence is accepted."""
        return f"{self.endpoint}/{repo_id}"

    def search(
        self,
        text: str,
        *,
        library: str | None = None,
        sort: SortKey = "downloads",
        limit: int = 30,
    ) -> list[HubModel]:
        """Models whose id contains ``text``, best first by ``sort``; ``library`` e.g. ``gguf``."""
        if sort not in _SORTS:
            raise ValueError(f"sort must be one of {sorted(_SORTS)}, not {sort!r}.")
        with hub_errors(self):
            refused_at_once(self.endpoint)
            found = self._api().list_models(
                search=text.strip() or None,
                filter=library or None,
                sort=_SORTS[sort],  # type: ignore[arg-type]
                limit=limit,
                expand=_SEARCH_FIELDS,  # type: ignore[arg-type]
                token=self.auth,
            )
            return [_hub_model(info) for info in found]

    def files(self, repo_id: str, revision: str = "main") -> RepoFiles:
        """The files of ``repo_id`` at ``revision`` with sizes, checksums and formats."""
        with hub_errors(self, repo_id, revision=revision):
            info = self._api().model_info(
                repo_id, revision=revision, files_metadata=True, token=self.auth
            )
        tags = list(info.tags or [])
        mlx = is_mlx_repo(info.library_name, tags)
        files = []
        for sibling in info.siblings or []:
            fmt = file_format(sibling.rfilename, mlx_repo=mlx)
            lfs = sibling.lfs
            files.append(
                HubFile(
                    path=sibling.rfilename,
                    size=int(sibling.size or (lfs.size if lfs else 0) or 0),
                    sha256=lfs.sha256 if lfs else None,
                    blob_id=sibling.blob_id,
                    format=fmt,
                    quantization=quantization_of(sibling.rfilename) if fmt == "gguf" else None,
                )
            )
        return RepoFiles(
            repo_id=info.id,
            commit=info.sha or "",
            files=files,
            gated=info.gated or False,
            licence=licence_of(info.card_data, tags),
            library=info.library_name,
            tags=tags,
        )

    def fit_warnings(self, file: HubFile, *, dest: Path) -> list[str]:
        """Sentences saying why ``file`` may not fit here: disk at ``dest``, memory for a model."""
        warnings = []
        free = free_disk(dest)
        if free is not None and file.size > free:
            warnings.append(
                f"{file.path} needs {gb(file.size)} but {dest} has only {gb(free)} free: "
                "free some space or pick a smaller file."
            )
        ram = total_ram()
        if file.is_model and ram is not None and file.size > RAM_SHARE * ram:
            warnings.append(
                f"{file.path} ({gb(file.size)}) is larger than {RAM_SHARE:.0%} of this "
                f"computer's memory ({gb(ram)}): it may not load, or run very slowly; "
                "pick a smaller quantization."
            )
        return warnings

    def _api(self) -> HfApi:
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self.auth, library_name="cotrag-studio")


def refused_at_once(endpoint: str) -> None:
    """A search the user waits for: a hub whose address cannot be resolved or that refuses
    the connection says so now (httpx's ConnectError), not after the library's five
    retries (23 s of "Searching…" with no network). Through a proxy the proxy decides."""
    import httpx2

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=5).close()
    except (ConnectionRefusedError, socket.gaierror) as e:
        raise httpx2.ConnectError(str(e)) from e
    except OSError:
        return  # slow or odd: the library's own request and retries decide


def _hub_model(info: Any) -> HubModel:
    modified = info.last_modified
    return HubModel(
        repo_id=info.id,
        downloads=int(info.downloads or 0),
        likes=int(info.likes or 0),
        last_modified=modified.isoformat() if modified is not None else None,
        library=info.library_name,
        tags=list(info.tags or []),
        gated=info.gated or False,
        pipeline_tag=info.pipeline_tag,
    )


@contextmanager
def hub_errors(
    client: HubClient,
    repo_id: str | None = None,
    *,
    filename: str | None = None,
    revision: str = "main",
) -> Iterator[None]:
    """Turn ``huggingface_hub`` and network errors into :mod:`core.errors` sentences.

    The hub reports a private repository as missing (it will not confirm it exists),
    so the "not found" sentence mentions the token too.
    """
    import httpx2
    from huggingface_hub import errors as hf

    repo = repo_id or "the repository"
    try:
        yield
    except CotragError:
        raise
    except hf.GatedRepoError as e:  # before RepositoryNotFoundError: it is a subclass
        raise GatedRepo(
            f"The repository {repo} is gated: accept its licence on the hub page "
            f"({client.repo_url(repo)}) and set your access token (`cotrag models login`)."
        ) from e
    except hf.RepositoryNotFoundError as e:
        raise HubRepoNotFound(
            f"No repository {repo} on the hub (or it is private: set a token that can read it)."
        ) from e
    except hf.RevisionNotFoundError as e:
        raise HubFileNotFound(f"{repo} has no revision {revision!r}.") from e
    except hf.RemoteEntryNotFoundError as e:
        raise HubFileNotFound(
            f"{repo} has no file {filename or 'by that name'} at {revision}."
        ) from e
    except hf.HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status == 401:
            raise HubError(
                "The hub refused the access token: set a valid one (`cotrag models login`)."
            ) from e
        raise HubError(f"The hub at {client.endpoint} answered {status}: {_first_line(e)}") from e
    except (hf.OfflineModeIsEnabled, httpx2.TransportError) as e:
        if isinstance(e, hf.OfflineModeIsEnabled):
            raise HubUnreachable(
                "Offline mode is on (HF_HUB_OFFLINE): unset it to reach the hub."
            ) from e
        raise HubUnreachable(
            f"Cannot reach the hub at {client.endpoint}: check the connection or HF_ENDPOINT."
        ) from e


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def free_disk(path: Path) -> int | None:
    """Free bytes on the volume that holds ``path`` (or would: the nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def total_ram() -> int | None:
    """Physical memory in bytes (Linux and macOS), None where the OS does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and page_size > 0:
            return pages * page_size
    except (AttributeError, ValueError, OSError):
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gb(size: int) -> str:
    """Bytes in the unit a user thinks of downloads in (GB, MB, kB)."""
    if size >= 1e9:
        return f"{size / 1e9:.1f} GB"
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"
