"""Saved conversations: one JSON file each, holding the full trace of every turn.

A turn is a ``RunRecord.to_dict()`` plus what the user said about it: ``feedback``
(``"up"``, ``"down"`` or ``""``, the chat's thumbs) and ``correction``
(``{"answer": short answer, "cited": cited answer}``, the user's own answer, which
replaces the model's when the turn becomes a training example).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import CotragError
from core.fileio import write_json_atomic


class ConversationNotFound(CotragError, FileNotFoundError):
    pass


class ConversationDamaged(CotragError, ValueError):
    pass


FEEDBACK_UP = "up"
FEEDBACK_DOWN = "down"


@dataclass(frozen=True)
class Correction:
    answer: str
    """The short answer, as the documents say it."""
    cited: str = ""
    """The answer citing passages as ``[n]`` (numbers of the turn's own run); may be empty."""


def feedback_of(turn: dict[str, Any]) -> str:
    """``"up"``, ``"down"`` or ``""`` (not rated)."""
    value = turn.get("feedback")
    return value if value in (FEEDBACK_UP, FEEDBACK_DOWN) else ""


def correction_of(turn: dict[str, Any]) -> Correction | None:
    """The user's corrected answer of a turn, or None when it holds none."""
    value = turn.get("correction")
    if not isinstance(value, dict):
        return None
    answer = str(value.get("answer") or "").strip()
    if not answer:
        return None
    return Correction(answer, str(value.get("cited") or "").strip())


def set_correction(turn: dict[str, Any], answer: str, cited: str = "") -> None:
    """Record the user's own answer on a turn (an empty answer removes the correction)."""
    answer, cited = answer.strip(), cited.strip()
    if answer:
        turn["correction"] = {"answer": answer, "cited": cited}
    else:
        turn.pop("correction", None)


@dataclass
class Conversation:
    id: str
    title: str
    created: float
    kb: str = ""
    model: str = ""
    turns: list[dict[str, Any]] = field(default_factory=list)
    """Each turn is a RunRecord.to_dict()."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "created": self.created,
            "kb": self.kb,
            "model": self.model,
            "turns": self.turns,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        if not isinstance(data, dict):
            raise ValueError("it does not hold a JSON object")
        turns = data.get("turns", [])
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise ValueError("its turns are not a list of objects")
        return cls(
            id=str(data["id"]),
            title=str(data.get("title", "")),
            created=float(data.get("created", 0.0)),
            kb=str(data.get("kb", "")),
            model=str(data.get("model", "")),
            turns=list(turns),
        )


_ID_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class ConversationStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, conv_id: str) -> Path:
        """The file of conversation ``conv_id`` (an id that could leave the folder is refused)."""
        if not _ID_RE.match(conv_id):
            raise ConversationNotFound(f"No conversation {conv_id!r}.")
        return self.folder / f"{conv_id}.json"

    def new(self, title: str, kb: str = "", model: str = "") -> Conversation:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        conv = Conversation(
            id=f"{stamp}-{uuid.uuid4().hex[:6]}",
            title=title.strip()[:120] or "Conversation",
            created=time.time(),
            kb=kb,
            model=model,
        )
        return conv

    def save(self, conv: Conversation) -> Path:
        path = self.path(conv.id)
        write_json_atomic(path, conv.to_dict(), indent=1)
        return path

    def load(self, conv_id: str) -> Conversation:
        path = self.path(conv_id)
        try:
            return Conversation.from_dict(json.loads(path.read_text("utf-8")))
        except FileNotFoundError as exc:
            raise ConversationNotFound(f"No conversation {conv_id!r}.") from exc
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ConversationDamaged(
                f"Conversation file {path.name} is damaged ({reason}); fix it or delete it."
            ) from exc

    def ids(self) -> list[str]:
        """The id of every saved conversation file, damaged ones included, oldest first
        (ids begin with the time they were made)."""
        return sorted(p.stem for p in self.folder.glob("*.json") if _ID_RE.match(p.stem))

    def list(self) -> list[Conversation]:
        """Newest first; damaged files are skipped rather than hiding the others."""
        items = []
        for path in self.folder.glob("*.json"):
            try:
                items.append(Conversation.from_dict(json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(items, key=lambda c: c.created, reverse=True)

    def delete(self, conv_id: str) -> None:
        path = self.path(conv_id)
        if not path.exists():
            raise ConversationNotFound(f"No conversation {conv_id!r}.")
        path.unlink()

    def export(self, conv_id: str, target: Path) -> Path:
        conv = self.load(conv_id)
        write_json_atomic(target, conv.to_dict(), indent=2)
        return target
