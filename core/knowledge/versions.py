"""Versions of one knowledge base's vectors: which collection serves, and which embedder made it.

    kb/<id>/versions.json   {"active": 2, "versions": [{"number": 1, ...}, {"number": 2, ...}]}

Version 1 is the knowledge base's own collection (named by its id; it also carries
the name a person sees). Re-embedding with another embedder builds version N in a
collection ``<id>-vN`` while version ``active`` keeps serving; the switch is one
atomic write of this file. A knowledge base without the file has one version, its
own collection, with the embedder its metadata names.

States: ``building`` (being filled; resumable), ``ready`` (complete and checked; can
serve), ``removed`` (its vectors were deleted to free space; the record stays so the
history reads right).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import CotragError
from core.fileio import CachedJsonFile

STATES = ("building", "ready", "removed")


@dataclass(frozen=True)
class Version:
    number: int
    collection: str
    embedder: str
    state: str = "ready"
    created: str = ""
    chunks: int = 0
    """Chunks it held when it was last completed (0 while building)."""
    done: int = 0
    """Chunks embedded so far while building (progress of a resumable build)."""


@dataclass
class Versions:
    active: int = 1
    versions: list[Version] = field(default_factory=list)

    def get(self, number: int) -> Version | None:
        return next((v for v in self.versions if v.number == number), None)

    @property
    def current(self) -> Version:
        found = self.get(self.active)
        assert found is not None, "versions.json names an active version it does not hold"
        return found

    def put(self, version: Version) -> None:
        self.versions = [v for v in self.versions if v.number != version.number] + [version]
        self.versions.sort(key=lambda v: v.number)

    def next_number(self) -> int:
        return max((v.number for v in self.versions), default=0) + 1

    def building(self, embedder: str) -> Version | None:
        return next(
            (v for v in self.versions if v.state == "building" and v.embedder == embedder), None
        )

    def copy(self) -> Versions:
        return Versions(self.active, list(self.versions))

    def to_json(self) -> dict[str, Any]:
        return {"active": self.active, "versions": [asdict(v) for v in self.versions]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Versions:
        known = set(Version.__dataclass_fields__)
        versions = [
            Version(**{k: v for k, v in row.items() if k in known}) for row in data["versions"]
        ]
        out = cls(int(data["active"]), sorted(versions, key=lambda v: v.number))
        if out.get(out.active) is None:
            raise ValueError(f"active version {out.active} is not listed")
        return out


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class VersionsUnreadable(CotragError, ValueError):
    """versions.json cannot be read: which version serves is unknown, so nothing guesses."""


class VersionsFile:
    """versions.json, re-read only when the file changed, written atomically."""

    def __init__(self, path: Path, kb_id: str, first_embedder: str) -> None:
        self.path = path
        first = Version(1, kb_id, first_embedder, "ready")
        self._file = CachedJsonFile(
            path,
            # A knowledge base without the file has one version, its own collection.
            parse=lambda raw: Versions(1, [first]) if raw is None else Versions.from_json(raw),
            dump=Versions.to_json,
            copy=Versions.copy,
            damaged=self._unreadable,
        )

    def _unreadable(self, exc: Exception) -> Versions:
        # Not guessed around: the serving version would be unknown, so the error says
        # which file to look at.
        raise VersionsUnreadable(
            f"{self.path} cannot be read ({exc}), so which version of the vectors serves "
            "is unknown; restore the file from a backup."
        ) from exc

    def read(self) -> Versions:
        return self._file.read()

    def write(self, versions: Versions) -> None:
        self._file.write(versions)

    def update(self, number: int, **changes: Any) -> Versions:
        versions = self.read()
        found = versions.get(number)
        if found is None:
            raise KeyError(number)
        versions.put(replace(found, **changes))
        self.write(versions)
        return versions
