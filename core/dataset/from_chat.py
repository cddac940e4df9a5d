"""Saved chat conversations as question/answer pairs to import into a dataset.

Each turn of a conversation is a question the user asked. Its short answer is the user's
corrected answer where the turn holds one (``correction``), else the model's final answer
without its ``[n]`` citations. A turn rated thumbs-down without a correction, and a turn
without an answer (stopped, failed, retriever mode), is skipped and counted with its
reason. The pairs then go through the same checks and real retrieval as pairs from a file
(:func:`core.dataset.pairs.run_pairs`), so a wrong model answer is rejected
with its reason like any other import.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.conversations import (
    FEEDBACK_DOWN,
    Conversation,
    ConversationDamaged,
    ConversationNotFound,
    ConversationStore,
    correction_of,
    feedback_of,
)
from core.dataset.pairs import ImportedPair
from core.errors import CotragError

ALL = "all"
ORIGIN = "conversation"

SKIP_REASONS = {
    "thumbs_down": "rated thumbs-down without a corrected answer",
    "no_answer": "without an answer (stopped, failed or retriever mode)",
    "no_question": "without a question",
    "other_kb": "asked of another knowledge base",
}
"""Why a turn was left out, as the end of the sentence "N turns …"."""

_CITATIONS_RE = re.compile(r"\s*\[\s*\d{1,4}(?:\s*[,;]\s*\d{1,4})*\s*\]")


class NothingToImport(CotragError, ValueError):
    pass


@dataclass
class ChatImport:
    """The pairs from some conversations, and what was left out and why."""

    pairs: list[ImportedPair] = field(default_factory=list)
    conversations: int = 0
    turns: int = 0
    corrected: int = 0
    """Pairs whose answer is the user's correction (the rest are the model's answers)."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Turns left out, by a key of :data:`SKIP_REASONS`."""
    other_kbs: Counter[str] = field(default_factory=Counter)
    """Turns left out because they were asked of another knowledge base, by its name."""
    warnings: list[str] = field(default_factory=list)
    """Sentences about files left out (a damaged file when importing all)."""

    def skipped_sentence(self) -> str:
        """``"3 turns skipped: 2 rated thumbs-down …; 1 without an answer …"`` ('' if none)."""
        total = sum(self.skipped.values())
        if not total:
            return ""
        parts = []
        for key, count in self.skipped.most_common():
            text = f"{count} {SKIP_REASONS.get(key, key)}"
            if key == "other_kb" and self.other_kbs:
                text += " (" + ", ".join(f"{k!r}: {v}" for k, v in self.other_kbs.items()) + ")"
            parts.append(text)
        return f"{total} turn{'s' * (total != 1)} skipped: " + "; ".join(parts) + "."


def short_answer(text: str) -> str:
    """A model's cited answer as a short answer: its ``[n]`` citations and the final full
    stop taken out (``The default is 14 [1].`` → ``The default is 14``)."""
    plain = _CITATIONS_RE.sub("", text)
    return " ".join(plain.split()).rstrip(" .")


def _turn_kb(conversation: Conversation, turn: dict[str, Any]) -> str:
    if turn.get("mode") == "closed":
        return ""  # answered without the documents: no knowledge base to disagree with
    info = turn.get("info")
    knowledge = info.get("knowledge_base") if isinstance(info, dict) else None
    if isinstance(knowledge, dict) and knowledge.get("name"):
        return str(knowledge["name"])
    return conversation.kb


def _shown_chunks(turn: dict[str, Any]) -> tuple[tuple[int, str], ...]:
    """``(number, chunk id)`` of the passages the turn's run showed."""
    found: dict[int, str] = {}
    for retrieval in turn.get("retrievals") or []:
        if not isinstance(retrieval, dict):
            continue
        for hit in retrieval.get("hits") or []:
            try:
                found.setdefault(int(hit["number"]), str(hit["id"]))
            except (KeyError, TypeError, ValueError):
                continue
    return tuple(sorted(found.items()))


def turn_pair(
    conversation: Conversation, index: int, turn: dict[str, Any], kb: str
) -> ImportedPair | str:
    """The pair a turn gives, or the key of :data:`SKIP_REASONS` saying why it gives none."""
    question = str(turn.get("question") or "").strip()
    if not question:
        return "no_question"
    asked_of = _turn_kb(conversation, turn)
    if kb and asked_of and asked_of != kb:
        return "other_kb"
    correction = correction_of(turn)
    ref = f"conversation {conversation.id} turn {index}"
    if correction is not None:
        return ImportedPair(
            question,
            correction.answer,
            origin=ORIGIN,
            ref=ref,
            cited=correction.cited,
            cited_chunks=_shown_chunks(turn) if correction.cited else (),
        )
    if feedback_of(turn) == FEEDBACK_DOWN:
        return "thumbs_down"
    answer = short_answer(str(turn.get("answer") or ""))
    if not answer:
        return "no_answer"
    return ImportedPair(question, answer, origin=ORIGIN, ref=ref)


def _load_named(store: ConversationStore, ids: list[str]) -> list[Conversation]:
    """The named conversations; the first missing, damaged or empty one fails the import
    (so nothing half-imported is mistaken for what was asked)."""
    conversations = []
    for conv_id in dict.fromkeys(ids):
        try:
            conversation = store.load(conv_id)  # or ConversationDamaged, a sentence already
        except ConversationNotFound as exc:
            raise ConversationNotFound(
                f"No saved conversation {conv_id!r}; `cotrag dataset conversations` lists them."
            ) from exc
        if not conversation.turns:
            raise NothingToImport(
                f"Conversation {conv_id} (“{conversation.title}”) has no questions to import."
            )
        conversations.append(conversation)
    return conversations


def conversations_to_import(
    store: ConversationStore, ids: list[str]
) -> tuple[list[Conversation], list[str]]:
    """The conversations named by ``ids`` (``["all"]``: every saved one, oldest first,
    damaged files left out with a warning each), and those warnings."""
    if [i.casefold() for i in ids] != [ALL]:
        if ALL in (i.casefold() for i in ids):
            raise CotragError("Give conversation ids or `all`, not both.")
        return _load_named(store, ids), []
    warnings, conversations = [], []
    for conv_id in store.ids():
        try:
            conversations.append(store.load(conv_id))
        except ConversationDamaged as exc:
            warnings.append(f"{exc} It was left out.")
    if not conversations:
        raise NothingToImport(
            "There are no saved conversations to import"
            + (" (every conversation file is damaged)" if warnings else "")
            + "; ask in the chat or with `cotrag ask --save` first."
        )
    if not any(c.turns for c in conversations):
        raise NothingToImport("The saved conversations have no questions to import.")
    return conversations, warnings


def pairs_from_conversations(store: ConversationStore, ids: list[str], kb: str) -> ChatImport:
    """Every usable turn of the conversations as a pair for knowledge base ``kb``."""
    conversations, warnings = conversations_to_import(store, ids)
    out = ChatImport(conversations=len(conversations), warnings=warnings)
    for conversation in conversations:
        for index, turn in enumerate(conversation.turns, 1):
            out.turns += 1
            pair = turn_pair(conversation, index, turn, kb)
            if isinstance(pair, str):
                out.skipped[pair] += 1
                if pair == "other_kb":
                    out.other_kbs[_turn_kb(conversation, turn)] += 1
                continue
            out.pairs.append(pair)
            out.corrected += correction_of(turn) is not None
    return out
