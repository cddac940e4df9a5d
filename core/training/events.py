"""The training worker's progress, one JSON object per line behind a sentinel.

    @@cotrag {"event": "step", "step": 12, "total": 60, "loss": 1.93, ...}

The sentinel lets a reader pick the events out of whatever else a process prints
(a library's warnings, a notebook's cell output on a remote GPU), so local and
remote runs are parsed the same way. Kinds:

- ``preparing`` (stage, message): dequantizing the base, tokenizing
- ``started``: engine, device, rows, tokens, steps, the step it resumes from
- ``step``: step, total, loss, lr, tokens_per_s, eta_s, epoch
- ``eval``: step, loss (validation)
- ``checkpoint``: step, path
- ``exporting``: what, index, total
- ``done``: model, outputs, metrics
- ``cancelled``: step, checkpoint
- ``error``: kind (spec, data, base, oom, disk_full, engine, internal), message, fix
- ``log``: message
"""

from __future__ import annotations

import json
from typing import Any

SENTINEL = "@@cotrag "
KINDS = (
    "preparing",
    "started",
    "step",
    "eval",
    "checkpoint",
    "exporting",
    "done",
    "cancelled",
    "error",
    "log",
)
FINAL = ("done", "cancelled", "error")


def format_event(event: str, /, **fields: Any) -> str:
    if event not in KINDS:
        raise ValueError(f"unknown event kind {event!r}")
    return SENTINEL + json.dumps({"event": event, **fields}, ensure_ascii=False)


def parse_line(line: str) -> dict[str, Any] | None:
    """The event on this line, or None for any other output (and for a torn line)."""
    at = line.find(SENTINEL)
    if at < 0:
        return None
    try:
        data = json.loads(line[at + len(SENTINEL) :])
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("event") not in KINDS:
        return None
    return data
