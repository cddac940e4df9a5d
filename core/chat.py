"""Asking a question and keeping it: the flow the Chat tab and `cotrag ask` share.

A question goes through the tag loop on the workspace's agent; every event is also added
to the run's record, which becomes a turn of a saved conversation. Imports the agent, the
workspace and the conversations; never the CLI or the desktop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.agent.events import Event
from core.agent.record import RunRecord
from core.conversations import Conversation, ConversationStore
from core.workspace import Workspace

if TYPE_CHECKING:  # the loop itself loads with the model, not with `cotrag --help`
    from core.agent.loop import Mode


@dataclass(frozen=True)
class Question:
    """What to ask, and of what."""

    text: str
    mode: Mode = "loop"
    kb: str = ""
    """The knowledge base searched; not used in the closed mode."""
    model: str | None = None
    """A model name, file or folder; None is the default model."""
    retriever_only: bool = False
    """Stop after ``<results>``."""
    grammar: bool | None = None
    """Force the tag structure with a grammar; None follows ``loop.grammar``."""
    method: str | None = None
    """dense, bm25 or hybrid; None follows ``retrieval.method``."""
    first_query: str | None = None
    """question, model or auto; None follows ``loop.first_query``."""
    answer_model: str | None = None
    """The answer stage's model: empty (the searcher), base or a model; None follows
    ``loop.answer_model``."""

    @property
    def searched_kb(self) -> str | None:
        return (self.kb or None) if self.mode != "closed" else None


class Asking:
    """A question on its way through the loop: iterate it for the events as they come;
    ``record`` holds every event iterated so far (also when the run fails midway)."""

    def __init__(self, events: Iterator[Event], record: RunRecord) -> None:
        self.record = record
        self._events = events

    def __iter__(self) -> Iterator[Event]:
        for event in self._events:
            self.record.add(event)
            yield event


def ask(ws: Workspace, question: Question, cancel: threading.Event | None = None) -> Asking:
    """Load the model and start the run. Its arguments are checked now; the events come
    as the returned object is iterated (a failure is raised after ``Finished``)."""
    agent = ws.agent(
        question.searched_kb,
        model=question.model,
        grammar=question.grammar,
        method=question.method,
        first_query=question.first_query,
        answer_model=question.answer_model,
    )
    events = agent.run(
        question.text, mode=question.mode, retriever_only=question.retriever_only, cancel=cancel
    )
    return Asking(events, RunRecord(question=question.text, mode=question.mode))


def keep_turn(
    store: ConversationStore,
    record: RunRecord,
    conversation: Conversation | None = None,
    *,
    kb: str = "",
    model: str = "",
) -> Conversation:
    """Add the run as the last turn of ``conversation`` (a new one, titled by the question,
    when None) and save it; an ``OSError`` leaves the turn added, in memory."""
    if conversation is None:
        conversation = store.new(record.question, kb=kb, model=model)
    conversation.turns.append(record.to_dict())
    store.save(conversation)
    return conversation
