"""The first start: whether a data folder is fresh, the sample knowledge base made from the
app's own user guide (``resources/guide``), and the questions offered to ask it.

The window's welcome and `cotrag kb sample` both start here. It only ever adds: a
knowledge base that already has the sample's name is used as it is, never indexed into,
and a sample whose indexing is cancelled or fails is deleted again (it was made by this
call), so no half-made guide is left behind.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.conversations import ConversationStore
from core.dataset.storage import DatasetStore
from core.errors import CotragError
from core.knowledge import service
from core.knowledge.indexer import IndexEvent, IndexSummary
from core.knowledge.store import has_knowledge_bases
from core.models.installed import ModelRegistry
from core.resources import resource_path
from core.workspace import Workspace

SAMPLE_KB = "CoT-RAG Studio guide"
"""The name of the sample knowledge base."""
GUIDE_FOLDER = "guide"
"""The user guide's folder under ``resources/``: its Markdown files and questions.json."""
QUESTIONS_FILE = "questions.json"


class SampleFailed(CotragError, RuntimeError):
    """The user guide could not be indexed (the sample knowledge base is not kept)."""


@dataclass(frozen=True)
class SuggestedQuestion:
    text: str
    source: str
    """The guide file whose passage answers it."""


@dataclass(frozen=True)
class SampleDone:
    """How making the sample knowledge base ended (the last event of :func:`make_sample_kb`)."""

    name: str
    outcome: Literal["made", "found", "cancelled"]
    """``made`` now, ``found`` (one of that name was there: used as it is, not indexed
    into) or ``cancelled`` (nothing kept)."""
    summary: IndexSummary | None = None
    """The indexing run's summary (None when the knowledge base was found)."""

    @property
    def ready(self) -> bool:
        """The knowledge base exists and can be asked."""
        return self.outcome != "cancelled"


SampleEvent = IndexEvent | SampleDone


def guide_files() -> list[Path]:
    """The user guide's Markdown files, in name order."""
    files = sorted(resource_path(GUIDE_FOLDER).glob("*.md"))
    if not files:
        raise FileNotFoundError(
            f"The user guide has no pages in {resource_path(GUIDE_FOLDER)}. Reinstall the app."
        )
    return files


def suggested_questions() -> list[SuggestedQuestion]:
    """The questions the welcome offers, each answered by a passage of the guide."""
    path = resource_path(GUIDE_FOLDER, QUESTIONS_FILE)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        questions = [SuggestedQuestion(str(r["question"]), str(r["source"])) for r in rows]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(
            f"{path} must be a JSON list of {{'question': ..., 'source': ...}} ({exc})."
        ) from exc
    return [q for q in questions if q.text.strip()]


def is_fresh(ws: Workspace) -> bool:
    """Whether nothing was made in this data folder yet: no knowledge base, dataset,
    conversation, or model added, pulled or tuned. Read from the folders without opening
    the store (quick enough for the GUI thread); knowledge bases on a Chroma server
    cannot be seen that way, so such a folder never counts as fresh."""
    if ws.config.store.chroma_host:
        return False
    layout = ws.layout
    registry = ModelRegistry(layout)
    return not (
        has_knowledge_bases(layout)
        or DatasetStore(layout.datasets).names()
        or any(ConversationStore(layout.conversations).folder.glob("*.json"))
        or registry.library()
        or registry.tuned()
    )


def make_sample_kb(ws: Workspace, cancel: threading.Event | None = None) -> Iterator[SampleEvent]:
    """Make the sample knowledge base from the user guide: the indexing's own events
    (FileDone, Progress, IndexSummary), then one :class:`SampleDone`. ``cancel`` stops it as
    it stops any indexing; the half-made sample is then deleted. Drive the whole iteration
    from one thread (indexing holds the data dir's write lock)."""
    files = guide_files()
    kb, made = service.open_kb(ws, SAMPLE_KB)
    if not made:  # there already, made by an earlier run, the user or the CLI: used as it is
        yield SampleDone(SAMPLE_KB, "found")
        return
    summary: IndexSummary | None = None
    keep = False
    try:
        events = service.index(ws, kb, files, cancel=cancel)
        try:
            for event in events:
                if isinstance(event, IndexSummary):
                    summary = event
                yield event
        finally:
            # Abandoned halfway: the run lets go of the write lock before the delete below.
            if isinstance(events, Generator):
                events.close()
        if summary is not None and summary.failures:
            path, reason = summary.failures[0]
            raise SampleFailed(
                f"The user guide could not be indexed ({Path(path).name}: {reason})."
            )
        keep = summary is not None and not summary.cancelled
    finally:
        if not keep:
            service.delete(ws, SAMPLE_KB)
    yield SampleDone(SAMPLE_KB, "made" if keep else "cancelled", summary)
