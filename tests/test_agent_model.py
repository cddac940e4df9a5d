"""The tag loop with the REAL bundled model (SmolLM2-135M via llama.cpp) and a tiny retriever."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fakes import KeywordRetriever

from core.agent.events import (
    Answer,
    BlockEnd,
    BlockStart,
    Event,
    Finished,
    Retrieval,
    Token,
)
from core.agent.loop import Agent
from core.config import AppConfig, GenerationConfig, LoopConfig
from core.llm.base import Backend, Chunk, GenStats, Session, StreamRequest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed in this environment")

pytestmark = pytest.mark.model

PASSAGES = {
    "garden.md": "Tomatoes need six hours of sun a day and water at the roots, not on the leaves.",
    "bikes.md": "A bicycle chain should be cleaned and oiled every few hundred kilometres.",
    "bread.md": "Bread dough rises best in a warm place, covered, for about an hour.",
    "tea.md": "Green tea tastes bitter when the water is boiling; use water around 80 degrees.",
}


@dataclass
class CallLog:
    """What each stream call of a session evaluated (observed, the backend does the work)."""

    sequence_tokens: int
    stats: GenStats = field(default_factory=GenStats)


class ObservedSession:
    def __init__(self, inner: Session, backend: Backend, calls: list[CallLog]) -> None:
        self._inner, self._backend, self._calls = inner, backend, calls

    @property
    def text(self) -> str:
        return self._inner.text

    def append(self, text: str) -> None:
        self._inner.append(text)

    def stream(self, request: StreamRequest) -> Iterator[Chunk]:
        log = CallLog(self._backend.count_tokens(self._inner.text))
        self._calls.append(log)
        for chunk in self._inner.stream(request):
            if chunk.stats is not None:
                log.stats = chunk.stats
            yield chunk


class ObservedBackend:
    """The real backend, with each search-session stream call's counters kept for the test."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.name = inner.name
        self.capabilities = inner.capabilities
        self.sessions: list[list[CallLog]] = []

    def load(self) -> None:
        self._inner.load()

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        return self._inner.chat_prompt(messages)

    def session(self, prompt: str, *, reuse_cache: bool = True) -> ObservedSession:
        calls: list[CallLog] = []
        self.sessions.append(calls)
        inner = self._inner.session(prompt, reuse_cache=reuse_cache)
        return ObservedSession(inner, self._inner, calls)

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture(scope="module")
def real_backend() -> Iterator[Backend]:
    # One thread: on a small, busy CI machine llama.cpp's threads spin against each
    # other and a run slows down tenfold; one thread is steady.
    from core.llm.engines import create_backend, default_model_path

    backend = create_backend(default_model_path(), GenerationConfig(n_ctx=2048, n_threads=1))
    backend.load()
    yield backend
    backend.close()


def test_grammar_run_searches_vets_and_answers_reusing_the_cache(real_backend: Backend) -> None:
    backend = ObservedBackend(real_backend)
    config = AppConfig(
        generation=GenerationConfig(n_ctx=2048, n_threads=1, answer_max_tokens=96),
        loop=LoopConfig(max_rounds=2, max_block_tokens=32, max_total_tokens=160),
    )
    agent = Agent(backend, KeywordRetriever(PASSAGES), config, grammar=True)
    events: list[Event] = list(agent.run("How much sun do tomatoes need?"))

    assert isinstance(events[-1], Finished) and events[-1].reason == "answered"
    assert sum(isinstance(e, Finished) for e in events) == 1
    retrievals = [e for e in events if isinstance(e, Retrieval)]
    assert retrievals, "the grammar makes the first step a search"
    assert any(isinstance(e, BlockEnd) and e.tag == "results" for e in events)
    assert sum(isinstance(e, Answer) for e in events) == 1

    # Protocol order: blocks never nest, tokens belong to the open block, each search
    # follows a closed query and precedes its query_res, the answer comes last.
    open_tag: str | None = None
    last_closed = ""
    for event in events:
        if isinstance(event, BlockStart):
            assert open_tag is None
            open_tag = event.tag
        elif isinstance(event, Token):
            assert event.tag == open_tag
        elif isinstance(event, BlockEnd):
            assert event.tag == open_tag
            open_tag, last_closed = None, event.tag
        elif isinstance(event, Retrieval):
            assert open_tag is None and last_closed == "query"
        elif isinstance(event, Answer):
            assert last_closed == "answer"

    # Resuming after <query_res> evaluates the new tokens only: the cached prefix is
    # reused and far fewer tokens are evaluated than the sequence holds.
    search_calls = backend.sessions[0]
    assert len(search_calls) >= 2
    resumed = search_calls[1]
    assert resumed.stats.cached_tokens > 0
    assert resumed.stats.prompt_tokens < resumed.sequence_tokens / 2
    stats = events[-1].stats
    assert stats.cached_tokens > 0 and stats.completion_tokens > 0


def test_grammar_answer_cites_the_passages_it_was_given(real_backend: Backend) -> None:
    config = AppConfig(generation=GenerationConfig(n_ctx=2048, n_threads=1, answer_max_tokens=96))
    agent = Agent(real_backend, KeywordRetriever(PASSAGES), config, grammar=True)
    events = list(agent.run("How much sun do tomatoes need?", mode="rag"))
    (retrieval,) = [e for e in events if isinstance(e, Retrieval)]
    (answer,) = [e for e in events if isinstance(e, Answer)]
    assert retrieval.hits, "the keyword retriever finds the tomato passage"
    assert answer.citations, answer.text
    assert set(answer.citations) <= set(retrieval.numbers)


def test_an_answer_the_token_limit_ends_is_marked_cut(real_backend: Backend) -> None:
    def answer_with(limit: int) -> Answer:
        config = AppConfig(
            generation=GenerationConfig(n_ctx=2048, n_threads=1, answer_max_tokens=limit)
        )
        agent = Agent(real_backend, KeywordRetriever(PASSAGES), config)
        events = list(agent.run("How much sun do tomatoes need?", mode="rag"))
        (answer,) = [e for e in events if isinstance(e, Answer)]
        return answer

    assert answer_with(16).cut
    assert not answer_with(400).cut
