"""Saved conversations: one JSON file each, holding the full trace of every turn."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import CotragError


class ConversationNotFound(CotragError, FileNotFoundError):
    pass


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
        return cls(
            id=str(data["id"]),
            title=str(data.get("title", "")),
            created=float(data.get("created", 0.0)),
            kb=str(data.get("kb", "")),
            model=str(data.get("model", "")),
            turns=list(data.get("turns", [])),
        )


_ID_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class ConversationStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, conv_id: str) -> Path:
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
        path = self._path(conv.id)
        tmp = path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(conv.to_dict(), ensure_ascii=False, indent=1), "utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def load(self, conv_id: str) -> Conversation:
        path = self._path(conv_id)
        try:
            return Conversation.from_dict(json.loads(path.read_text("utf-8")))
        except FileNotFoundError as exc:
            raise ConversationNotFound(f"No conversation {conv_id!r}.") from exc
        except (ValueError, KeyError) as exc:
            raise CotragError(f"Conversation file {path.name} is damaged ({exc}).") from exc

    def list(self) -> list[Conversation]:
        """Newest first; damaged files are skipped rather than hiding the others."""
        items = []
        for path in self.folder.glob("*.json"):
            try:
                items.append(Conversation.from_dict(json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, KeyError):
                continue
        return sorted(items, key=lambda c: c.created, reverse=True)

    def delete(self, conv_id: str) -> None:
        path = self._path(conv_id)
        if not path.exists():
            raise ConversationNotFound(f"No conversation {conv_id!r}.")
        path.unlink()

    def export(self, conv_id: str, target: Path) -> Path:
        conv = self.load(conv_id)
        target.write_text(json.dumps(conv.to_dict(), ensure_ascii=False, indent=2), "utf-8")
        return target
