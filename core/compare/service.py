"""The compare use cases of one workspace: one model on a question set (`cotrag eval`), two
models on one question side by side, and two models on a question set, paired
(`cotrag compare`, the Compare tab). Each loads one model at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from core.agent.events import Event
from core.compare.evaluation import EvalReport, ItemResult, QAItem, evaluate
from core.compare.pairs import Comparison, Side, compare
from core.compare.questions import load_items
from core.errors import CotragError
from core.workspace import Workspace

if TYPE_CHECKING:
    from core.agent.loop import Agent, Mode

__all__ = ["CompareRequest", "ask_both", "compare_models", "evaluate_questions", "load_items"]


@dataclass(frozen=True)
class CompareRequest:
    a: Side
    b: Side
    kb: str = ""
    """The knowledge base both search (unused by a closed-book side)."""
    first_query: str | None = None
    """``question``, ``model`` or ``auto``; None: the setting (``loop.first_query``)."""
    answer_model: str | None = None
    """The answer stage's model on both sides (empty, ``base`` or a model); None: the
    setting (``loop.answer_model``)."""

    @property
    def needs_kb(self) -> bool:
        return any(s.mode != "closed" for s in (self.a, self.b))

    def check(self, ws: Workspace) -> None:
        """A side that searches needs a knowledge base that exists."""
        if self.needs_kb:
            if not self.kb:
                raise CotragError("Name a knowledge base with --kb NAME.")
            ws.store.get(self.kb)


def _model(side: Side) -> str | None:
    return None if side.model == "default" else side.model


def agent_for(ws: Workspace, request: CompareRequest, side: Side) -> Agent:
    kb = request.kb if side.mode != "closed" else None
    return ws.agent(
        kb or None,
        model=_model(side),
        first_query=request.first_query,
        answer_model=request.answer_model,
    )


def release(ws: Workspace, side: Side, answer_model: str | None = None) -> None:
    """Close a side's models (its answer stage's too) before the other side loads its own."""
    answer = ws.answer_model_ref(_model(side), answer_model)
    ws.release(_model(side))
    if answer is not None:
        ws.release(answer)


def compare_models(
    ws: Workspace,
    request: CompareRequest,
    items: list[QAItem],
    *,
    on_item: Callable[[int, int, ItemResult], None] | None = None,
    cancel: threading.Event | None = None,
) -> Comparison:
    """All questions on A, then on B, paired per question (McNemar's exact test)."""
    request.check(ws)
    return compare(
        lambda side: agent_for(ws, request, side),
        request.a,
        request.b,
        items,
        kb=request.kb,
        release=lambda side: release(ws, side, request.answer_model),
        on_item=on_item,
        cancel=cancel,
    )


def ask_both(
    ws: Workspace,
    request: CompareRequest,
    question: str,
    *,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[int, Event]]:
    """The events of A (0) answering ``question``, then those of B (1)."""
    for index, side in enumerate((request.a, request.b)):
        agent = agent_for(ws, request, side)
        mode = cast("Mode", side.mode)  # one of MODES, as Side.parse and the tab's list make it
        yield from ((index, event) for event in agent.run(question, mode=mode, cancel=cancel))
        release(ws, side, request.answer_model)
        if cancel is not None and cancel.is_set():
            return


def evaluate_questions(
    ws: Workspace,
    items: list[QAItem],
    *,
    mode: str,
    kb: str | None,
    model: str | None = None,
    grammar: bool | None = None,
    method: str | None = None,
    first_query: str | None = None,
    answer_model: str | None = None,
    on_item: Callable[[int, ItemResult], None] | None = None,
    cancel: threading.Event | None = None,
) -> EvalReport:
    """One model on ``items`` in ``mode`` (a closed-book run searches nothing)."""
    kb_name = kb if mode != "closed" else None
    if kb_name:
        ws.store.get(kb_name)
    agent = ws.agent(
        kb_name,
        model=model,
        grammar=grammar,
        method=method,
        first_query=first_query,
        answer_model=answer_model,
    )
    return evaluate(
        agent,
        items,
        mode=mode,
        kb=kb_name or "",
        model=str(ws.model_path(model)),
        on_item=on_item,
        cancel=cancel,
    )
