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
    """The events of a finished run, in trace order.

    A record keeps blocks in order and retrievals apart: the k-th ``query_res``
    block is the k-th retrieval. Retrievals with no such block (rag mode) come
    before the answer; protocol errors, whose position is not kept, just before it.
    """
    record = RunRecord.from_dict(data)
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
        tag, text = block["tag"], block["text"]
        if tag == "query_res" and retrievals:
            events.append(retrievals.pop(0))
        if tag == "answer":
            flush_pending()
        events.append(BlockStart(tag))
        events.append(BlockEnd(tag, text))
    flush_pending()
    if record.answer and not any(b["tag"] == "answer" for b in record.blocks):
        events.append(BlockStart("answer"))
        events.append(BlockEnd("answer", record.answer))
    if record.answer:
        events.append(Answer(record.answer, list(record.citations)))
    events.append(Finished(record.finished or "answered", record.stats, record.trace, record.error))
    return events


def record_question(data: dict[str, Any]) -> str:
    return str(data.get("question", ""))


__all__ = ["Retrieval", "events_from_record", "record_question"]
