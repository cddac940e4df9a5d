"""A run, kept: the events of one agent run folded into a record that saves as JSON.

The CLI's ``--json``, the eval command and the desktop's saved conversations all
use this one shape, so a conversation saved by one reopens in the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from core.agent.events import (
    Answer,
    BlockEnd,
    Event,
    Finished,
    ProtocolError,
    Retrieval,
    RunStats,
)
from core.agent.parser import results_numbers
from core.knowledge.types import Hit

RECORD_VERSION = 1


@dataclass
class RunRecord:
    question: str
    mode: str = "loop"
    trace: str = ""
    """The search turn as the model saw it, tags and injected ``<query_res>`` included."""
    blocks: list[dict[str, str]] = field(default_factory=list)
    retrievals: list[Retrieval] = field(default_factory=list)
    results: list[int] = field(default_factory=list)
    """The vetted passage numbers (from the ``<results>`` block; all passages in rag mode)."""
    answer: str = ""
    citations: list[int] = field(default_factory=list)
    protocol_errors: list[ProtocolError] = field(default_factory=list)
    stats: RunStats = field(default_factory=RunStats)
    finished: str = ""
    """How the run ended (answered, retrieved, cancelled, error); empty while it runs."""
    error: str = ""

    def add(self, event: Event) -> None:
        if isinstance(event, BlockEnd):
            self.blocks.append({"tag": event.tag, "text": event.text})
            if event.tag == "results":
                shown = {n for r in self.retrievals for n in r.numbers}
                self.results = [n for n in results_numbers(event.text) if n in shown]
        elif isinstance(event, Retrieval):
            self.retrievals.append(event)
            if self.mode == "rag":
                self.results = list(event.numbers)
        elif isinstance(event, ProtocolError):
            self.protocol_errors.append(event)
            if event.kind == "results_cite_nothing":
                self.results = sorted({n for r in self.retrievals for n in r.numbers})
        elif isinstance(event, Answer):
            self.answer = event.text
            self.citations = list(event.citations)
        elif isinstance(event, Finished):
            self.finished = event.reason
            self.stats = event.stats
            self.trace = event.trace
            self.error = event.error

    @property
    def passages(self) -> dict[int, Hit]:
        """Every passage shown during the run, by its number."""
        found: dict[int, Hit] = {}
        for retrieval in self.retrievals:
            for number, hit in zip(retrieval.numbers, retrieval.hits, strict=False):
                found.setdefault(number, hit)
        return found

    @property
    def well_formed(self) -> bool:
        """At least one search, a results block and no protocol error (loop mode)."""
        return (
            bool(self.retrievals)
            and any(b["tag"] == "results" for b in self.blocks)
            and not self.protocol_errors
        )

    # -- JSON ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "question": self.question,
            "mode": self.mode,
            "trace": self.trace,
            "blocks": [dict(b) for b in self.blocks],
            "retrievals": [
                {
                    "query": r.query,
                    "hits": [
                        _hit_to_dict(number, hit)
                        for number, hit in zip(r.numbers, r.hits, strict=False)
                    ],
                }
                for r in self.retrievals
            ],
            "results": list(self.results),
            "answer": self.answer,
            "citations": list(self.citations),
            "protocol_errors": [{"kind": e.kind, "detail": e.detail} for e in self.protocol_errors],
            "stats": self.stats.to_dict(),
            "finished": self.finished,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        version = int(data.get("version", RECORD_VERSION))
        if version > RECORD_VERSION:
            raise ValueError(
                f"This run was saved by a newer version of the app (record version {version}); "
                "update the app to open it."
            )
        retrievals = []
        for item in data.get("retrievals", []):
            hits = [_hit_from_dict(h) for h in item.get("hits", [])]
            numbers = [int(h["number"]) for h in item.get("hits", [])]
            retrievals.append(Retrieval(str(item["query"]), hits, numbers))
        stat_names = {f.name for f in fields(RunStats)}
        stats = RunStats(**{k: v for k, v in data.get("stats", {}).items() if k in stat_names})
        return cls(
            question=str(data["question"]),
            mode=str(data.get("mode", "loop")),
            trace=str(data.get("trace", "")),
            blocks=[{"tag": str(b["tag"]), "text": str(b["text"])} for b in data.get("blocks", [])],
            retrievals=retrievals,
            results=[int(n) for n in data.get("results", [])],
            answer=str(data.get("answer", "")),
            citations=[int(n) for n in data.get("citations", [])],
            protocol_errors=[
                ProtocolError(str(e["kind"]), str(e.get("detail", "")))
                for e in data.get("protocol_errors", [])
            ],
            stats=stats,
            finished=str(data.get("finished", "")),
            error=str(data.get("error", "")),
        )


def _hit_to_dict(number: int, hit: Hit) -> dict[str, Any]:
    return {
        "number": number,
        "id": hit.id,
        "label": hit.label,
        "source": hit.source,
        "heading": hit.heading,
        "score": hit.score,
        "text": hit.text,
        "chunk_index": hit.chunk_index,
        "start": hit.start,
        "end": hit.end,
        "method": hit.method,
    }


def _hit_from_dict(data: dict[str, Any]) -> Hit:
    return Hit(
        id=str(data["id"]),
        text=str(data["text"]),
        score=float(data["score"]),
        source=str(data["source"]),
        heading=str(data.get("heading", "")),
        chunk_index=int(data.get("chunk_index", 0)),
        start=int(data.get("start", 0)),
        end=int(data.get("end", 0)),
        method=str(data.get("method", "dense")),
    )
