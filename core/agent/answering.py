"""The answer stage: the model answers from the passages the search turn vetted.

It runs in a session of its own (the answer model's, which may be another model than the
searcher's), on a prompt of the question and the numbered passages; passages that do not
fit the context window are dropped from the end (the model listed the most useful first).
It streams the answer as ``Token`` events in an ``answer`` block and ends with an
:class:`~core.agent.events.Answer` whose citations are the ``[n]`` it wrote among the
passages it was given, and whether the token limit cut it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from core.agent import prompts
from core.agent.events import Answer, BlockEnd, BlockStart, Event, Prompt, Token
from core.agent.grammar import answer_grammar
from core.agent.parser import bracket_citations
from core.agent.state import RunState
from core.config import GenerationConfig
from core.knowledge.types import Hit
from core.llm.base import Backend, Sampling, StreamRequest

CONTEXT_MARGIN = 16
"""Tokens kept free at the end of the context window for the closing tags the loop writes."""


def answer(
    run: RunState,
    backend: Backend,
    generation: GenerationConfig,
    sampling: Sampling,
    *,
    grammar: bool,
    reuse_cache: bool,
) -> Iterator[Event]:
    """The answer stage of ``run`` on ``backend`` (``grammar``: every sentence must end
    citing a passage it was given)."""
    numbered = [(n, run.passages[n]) for n in run.vetted]
    messages = _messages(run, numbered)
    prompt = backend.chat_prompt(messages)
    budget = generation.n_ctx - generation.answer_max_tokens
    while numbered and backend.count_tokens(prompt) > budget - CONTEXT_MARGIN:
        numbered.pop()
        messages = _messages(run, numbered)
        prompt = backend.chat_prompt(messages)
    yield Prompt("closed" if run.mode == "closed" else "answer", messages, prompt)
    session = backend.session(prompt, reuse_cache=reuse_cache)
    halt = threading.Event()
    request = StreamRequest(
        max_tokens=generation.answer_max_tokens,
        grammar=answer_grammar([n for n, _ in numbered]) if grammar and numbered else None,
        sampling=sampling,
        cancel=halt,
    )
    yield BlockStart("answer")
    parts: list[str] = []
    cut = False
    for chunk in session.stream(request):
        cut = cut or chunk.finish_reason == "length"
        if chunk.text:
            parts.append(chunk.text)
            yield Token("answer", chunk.text)
        if chunk.stats is not None:
            run.gen.add(chunk.stats)
            run.answer_tokens += chunk.stats.completion_tokens
        if run.cancelled:
            halt.set()
    text = "".join(parts)
    yield BlockEnd("answer", text)
    if run.cancelled:
        return
    given = {n for n, _ in numbered}
    yield Answer(text.strip(), [n for n in bracket_citations(text) if n in given], cut=cut)


def _messages(run: RunState, numbered: list[tuple[int, Hit]]) -> list[dict[str, str]]:
    if run.mode == "closed":
        return prompts.closed_messages(run.question)
    return prompts.answer_messages(run.question, numbered)
