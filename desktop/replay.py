"""Turn a saved run (RunRecord dict) back into the events that drew it, to reopen it."""

from __future__ import annotations

from typing import Any

from core.agent.events import (
    Answer,
    BlockEnd,
    BlockStart,
    Event,
    Finished,
    Retrieval,
)
from core.agent.record import RunRecord


def events_from_record(data: dict[str, Any]) -> list[Event]:
    """The events of a finished run, in the order they happened.

    Records of version 2 keep the position of every block, retrieval and protocol
    error. Version 1 records did not: there the retrieval before a passages block is
    the next unused one, and protocol errors go just before the answer.
    """
    record = RunRecord.from_dict(data)
    events: list[Event] = []
    if record.has_positions:
        for kind, value in record.timeline():
            if kind == "block":
                events.extend(_block_events(value))
            else:
                events.append(value)
    else:
        events.extend(_guessed_order(record))
    if record.answer and not any(b["tag"] == "answer" for b in record.blocks):
        events.append(BlockStart("answer"))
        events.append(BlockEnd("answer", record.answer))
    if record.answer:
        events.append(Answer(record.answer, list(record.citations), cut=record.answer_cut))
    events.append(
        Finished(
            record.finished or "answered",
            record.stats,
            record.trace,
            tuple(record.spans),
            record.error,
        )
    )
    return events


def _block_events(block: dict[str, Any]) -> list[Event]:
    tag, author, kind = block["tag"], block.get("author", "model"), block.get("kind", "")
    return [BlockStart(tag, author, kind), BlockEnd(tag, block["text"], author, kind)]


def _guessed_order(record: RunRecord) -> list[Event]:
    events: list[Event] = []
    retrievals = list(record.retrievals)
    errors_shown = False

    def flush_pending() -> None:
        nonlocal errors_shown
        while retrievals:
            events.append(retrievals.pop(0))
        if not errors_shown:
            events.extend(record.protocol_errors)
            errors_shown = True

    for block in record.blocks:
        if block["tag"] == "query_res" and retrievals and not _is_note(block["text"]):
            events.append(retrievals.pop(0))
        if block["tag"] == "answer":
            flush_pending()
        events.extend(_block_events(block))
    flush_pending()
    return events


def _is_note(text: str) -> bool:
    # Passages blocks start with "[n] "; the loop's notes are plain sentences.
    return not text.lstrip().startswith("[")


def record_question(data: dict[str, Any]) -> str:
    return str(data.get("question", ""))


__all__ = ["Retrieval", "events_from_record", "record_question"]
