"""A run, kept: the events of one agent run folded into a record that saves as JSON.

The CLI's ``--json``, the eval command, the desktop's saved conversations and the
dataset builder all use this one shape, so a run saved by one reopens in the
others. The record is exact enough to train on: the messages the engine saw, the
effective settings, the search turn cut into spans by author, and the position of
every block, retrieval and protocol error in the run (``seq``), so a replay puts
each where it happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from core.agent.events import (
    Answer,
    BlockEnd,
    Event,
    Finished,
    Prompt,
    ProtocolError,
    Retrieval,
    RunStats,
    Span,
    Started,
    Vetted,
)
from core.knowledge.types import Hit

RECORD_VERSION = 2
"""1: no spans, messages, settings or positions (still read; replayed by guesswork)."""


@dataclass
class RunRecord:
    question: str
    mode: str = "loop"
    info: dict[str, Any] = field(default_factory=dict)
    """From :class:`Started`: model, engine, template_version, settings, knowledge_base."""
    messages: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """The messages each stage's engine saw: ``search``, ``answer`` or ``closed``."""
    trace: str = ""
    """The search turn as the model saw it, tags and injected ``<query_res>`` included."""
    spans: list[Span] = field(default_factory=list)
    """``trace`` cut by author (model / loop); their texts join to ``trace``."""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    """``{"tag", "text", "author", "kind", "seq"}`` in order."""
    retrievals: list[Retrieval] = field(default_factory=list)
    retrieval_seq: list[int] = field(default_factory=list)
    results: list[int] = field(default_factory=list)
    """The vetted passage numbers that went to the answer stage."""
    results_source: str = ""
    """results (vetted by the model), fallback (it cited nothing usable) or all (rag)."""
    answer: str = ""
    citations: list[int] = field(default_factory=list)
    answer_cut: bool = False
    """The answer stage's token limit ended the answer."""
    protocol_errors: list[ProtocolError] = field(default_factory=list)
    error_seq: list[int] = field(default_factory=list)
    stats: RunStats = field(default_factory=RunStats)
    finished: str = ""
    """How the run ended (answered, retrieved, cancelled, error); empty while it runs."""
    error: str = ""
    version: int = RECORD_VERSION
    """The version the record was read from (old records lack positions)."""
    _seq: int = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def add(self, event: Event) -> None:
        if isinstance(event, Started):
            self.info = dict(event.info)
        elif isinstance(event, Prompt):
            self.messages[event.stage] = [dict(m) for m in event.messages]
        elif isinstance(event, BlockEnd):
            self.blocks.append(
                {
                    "tag": event.tag,
                    "text": event.text,
                    "author": event.author,
                    "kind": event.kind,
                    "seq": self._next(),
                }
            )
        elif isinstance(event, Retrieval):
            self.retrievals.append(event)
            self.retrieval_seq.append(self._next())
        elif isinstance(event, Vetted):
            self.results = list(event.numbers)
            self.results_source = event.source
        elif isinstance(event, ProtocolError):
            self.protocol_errors.append(event)
            self.error_seq.append(self._next())
        elif isinstance(event, Answer):
            self.answer = event.text
            self.citations = list(event.citations)
            self.answer_cut = event.cut
        elif isinstance(event, Finished):
            self.finished = event.reason
            self.stats = event.stats
            self.trace = event.trace
            self.spans = list(event.spans)
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

    @property
    def has_positions(self) -> bool:
        """Whether blocks, retrievals and errors carry their place in the run."""
        return self.version >= 2

    def timeline(self) -> list[tuple[str, Any]]:
        """``("block", dict) | ("retrieval", Retrieval) | ("error", ProtocolError)`` in the
        order they happened (records of version 2 and later)."""
        items: list[tuple[int, str, Any]] = [(int(b["seq"]), "block", b) for b in self.blocks]
        items += [
            (s, "retrieval", r) for s, r in zip(self.retrieval_seq, self.retrievals, strict=True)
        ]
        items += [
            (s, "error", e) for s, e in zip(self.error_seq, self.protocol_errors, strict=True)
        ]
        items.sort(key=lambda item: item[0])
        return [(kind, value) for _, kind, value in items]

    # -- JSON ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "question": self.question,
            "mode": self.mode,
            "info": self.info,
            "messages": {k: [dict(m) for m in v] for k, v in self.messages.items()},
            "trace": self.trace,
            "spans": [s.to_dict() for s in self.spans],
            "blocks": [dict(b) for b in self.blocks],
            "retrievals": [
                {
                    "query": r.query,
                    "seq": seq,
                    "hits": [
                        _hit_to_dict(number, hit)
                        for number, hit in zip(r.numbers, r.hits, strict=False)
                    ],
                }
                for r, seq in zip(self.retrievals, self.retrieval_seq, strict=True)
            ],
            "results": list(self.results),
            "results_source": self.results_source,
            "answer": self.answer,
            "citations": list(self.citations),
            "answer_cut": self.answer_cut,
            "protocol_errors": [
                {"kind": e.kind, "detail": e.detail, "seq": seq}
                for e, seq in zip(self.protocol_errors, self.error_seq, strict=True)
            ],
            "stats": self.stats.to_dict(),
            "finished": self.finished,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        version = int(data.get("version", 1))
        if version > RECORD_VERSION:
            raise ValueError(
                f"This run was saved by a newer version of the app (record version {version}); "
                "update the app to open it."
            )
        positioned = version >= 2
        retrievals, retrieval_seq = [], []
        for i, item in enumerate(data.get("retrievals", [])):
            hits = [_hit_from_dict(h) for h in item.get("hits", [])]
            numbers = [int(h["number"]) for h in item.get("hits", [])]
            retrievals.append(Retrieval(str(item["query"]), hits, numbers))
            retrieval_seq.append(int(item["seq"]) if positioned else -(i + 1))
        errors, error_seq = [], []
        for i, item in enumerate(data.get("protocol_errors", [])):
            errors.append(ProtocolError(str(item["kind"]), str(item.get("detail", ""))))
            error_seq.append(int(item["seq"]) if positioned else -(i + 1))
        blocks: list[dict[str, Any]] = []
        for i, b in enumerate(data.get("blocks", [])):
            blocks.append(
                {
                    "tag": str(b["tag"]),
                    "text": str(b["text"]),
                    "author": str(b.get("author", "model")),
                    "kind": str(b.get("kind", "")),
                    "seq": int(b["seq"]) if positioned else i + 1,
                }
            )
        stat_names = {f.name for f in fields(RunStats)}
        stats = RunStats(**{k: v for k, v in data.get("stats", {}).items() if k in stat_names})
        seqs: list[int] = [int(b["seq"]) for b in blocks] + retrieval_seq + error_seq
        return cls(
            question=str(data["question"]),
            mode=str(data.get("mode", "loop")),
            info=dict(data.get("info", {})),
            messages={
                str(k): [{"role": str(m["role"]), "content": str(m["content"])} for m in v]
                for k, v in data.get("messages", {}).items()
            },
            trace=str(data.get("trace", "")),
            spans=[Span.from_dict(s) for s in data.get("spans", [])],
            blocks=blocks,
            retrievals=retrievals,
            retrieval_seq=retrieval_seq,
            results=[int(n) for n in data.get("results", [])],
            results_source=str(data.get("results_source", "")),
            answer=str(data.get("answer", "")),
            citations=[int(n) for n in data.get("citations", [])],
            answer_cut=bool(data.get("answer_cut", False)),
            protocol_errors=errors,
            error_seq=error_seq,
            stats=stats,
            finished=str(data.get("finished", "")),
            error=str(data.get("error", "")),
            version=version,
            _seq=max(seqs, default=0),
        )


def _hit_to_dict(number: int, hit: Hit) -> dict[str, Any]:
    data: dict[str, Any] = {
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
        "doc_hash": str(hit.extra.get("doc_hash", "")),
    }
    if hit.extra.get("page") is not None:
        data["page"] = int(hit.extra["page"])
    return data


def _hit_from_dict(data: dict[str, Any]) -> Hit:
    extra: dict[str, Any] = {"doc_hash": str(data.get("doc_hash", ""))}
    if data.get("page") is not None:
        extra["page"] = int(data["page"])
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
        extra=extra,
    )
