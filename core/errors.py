"""Typed errors. Each subclasses a built-in and says what to do next."""

from __future__ import annotations


class CotragError(Exception):
    """Base for errors a user should see as a sentence (not a traceback)."""


class ConfigError(CotragError, ValueError):
    """A setting has a value that cannot work; the message names the field and the fix."""


class KnowledgeBaseNotFound(CotragError, KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return (
            f"No knowledge base named {self.name!r}. "
            "List them with `cotrag kb list` or create it with `cotrag kb create`."
        )


class KnowledgeBaseExists(CotragError, FileExistsError):
    pass


class KnowledgeBaseBusy(CotragError, RuntimeError):
    """Another process is writing to the same data dir."""


class DocumentError(CotragError, ValueError):
    """A document could not be read. ``reason`` is a short sentence for the per-file report."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class UnsupportedFormat(DocumentError):
    pass


class EmptyDocument(DocumentError):
    pass


class BinaryContent(DocumentError):
    pass


class CorruptDocument(DocumentError):
    pass


class EncryptedDocument(DocumentError):
    pass


class UnreadableFile(DocumentError, PermissionError):
    pass


class ModelNotFound(CotragError, FileNotFoundError):
    pass


class BackendNotInstalled(CotragError, ImportError):
    """An engine's Python package is missing; the message names the extra to install."""

    def __init__(self, engine: str, package: str, extra: str | None = None) -> None:
        hint = f"pip install 'cotrag-studio[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"The {engine} backend needs the {package!r} package: {hint}")
        self.engine = engine
        self.package = package
        self.extra = extra


class ModelLoadFailed(CotragError, RuntimeError):
    """The model file exists but the engine could not load it (corrupt, wrong format)."""


class UnsupportedModel(CotragError, NotImplementedError):
    """The model's format is recognised but no engine in this build can run it yet."""


class ContextOverflow(CotragError, ValueError):
    """The sequence no longer fits in the model's context window."""


class GrammarError(CotragError, ValueError):
    """A GBNF grammar did not parse."""


class VanishedFile(DocumentError, FileNotFoundError):
    """The file was listed but is gone when read (moved or deleted meanwhile)."""


class DocumentTooLarge(DocumentError):
    """The file is over the loader's size limit; the reason names the limit."""


class HubError(CotragError, OSError):
    """The model hub refused a request or could not be asked; the message says what to do."""


class GatedRepo(HubError, PermissionError):
    """The repository needs its licence accepted on the hub page and a token that may read it."""


class HubRepoNotFound(HubError, FileNotFoundError):
    """No such repository, or a private one the token (if any) may not read."""


class HubFileNotFound(HubError, FileNotFoundError):
    """The repository exists but not the file, or not at that revision."""


class HubUnreachable(HubError, ConnectionError):
    """No answer from the hub: no network, a wrong HF_ENDPOINT, or offline mode."""


class DownloadCorrupt(HubError, ValueError):
    """The downloaded bytes do not match the size or checksum the hub announced."""


class DownloadCancelled(CotragError, InterruptedError):
    """The user paused the download; the partial file is kept so it can resume."""


class DiskFull(CotragError, OSError):
    """Not enough free space for a download; the message names the folder and the amount."""


class TokenStoreUnavailable(CotragError, RuntimeError):
    """No usable OS keyring to keep the hub token in (and it is never written to a file)."""


class DownloadBusy(CotragError, RuntimeError):
    """Another program is writing the same file into the hub cache right now."""
