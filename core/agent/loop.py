"""The tag loop: the model thinks and searches; the app runs each query and shows the passages.

One search turn is a single growing session. Generation stops at ``</query>``;
the loop runs the search, appends an escaped ``<query_res>`` block and resumes,
so the engine evaluates only the appended tokens. At ``</results>`` the vetted
passages go to a separate answer stage. The loop enforces the bounds and the
protocol whatever the model writes: it never hangs and never loops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from core.agent import prompts
from core.agent.events import (
    Answer,
    BlockEnd,
    BlockStart,
    Event,
    Finished,
    ProtocolError,
    Retrieval,
    RunStats,
    Token,
)
from core.agent.grammar import answer_grammar, results_body_grammar, segment_grammar
from core.agent.parser import ParseItem, TagParser, bracket_citations, results_numbers
from core.config import AppConfig
from core.errors import ConfigError, CotragError
from core.knowledge.types import Hit
from core.llm.base import Backend, GenStats, Sampling, Session, StreamRequest

Mode = Literal["loop", "rag", "closed"]

SEARCH_STOPS = ("</query>", "</results>", "<query_res>")
MAX_WASTED_MOVES = 2
"""Queries that ran no search (repeated, empty) or forged blocks before the loop concludes."""
_CONTEXT_MARGIN = 16
"""Tokens kept free at the end of the context window for the closing tags the loop writes."""


class Retriever(Protocol):
    def search(self, query: str, k: int) -> list[Hit]: ...


class NoKnowledgeBase(CotragError, ValueError):
    """A mode that searches was asked for without anything to search."""


@dataclass
class _Outcome:
    """How one stream call of the search turn ended."""

    finish: str = "eos"
    stop: str | None = None
    closed: list[str] = field(default_factory=list)
    """Tags of the blocks that were closed during the call, in order."""
    forged: bool = False
    too_long: str | None = None
    """The block the loop cut because it passed loop.max_block_tokens."""
    cancelled: bool = False


@dataclass
class _Run:
    question: str
    mode: Mode
    cancel: threading.Event | None
    gen: GenStats = field(default_factory=GenStats)
    rounds: int = 0
    trace: str = ""
    passages: dict[int, Hit] = field(default_factory=dict)
    """Every passage shown, by its global number."""
    vetted: list[int] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


@dataclass
class _Turn:
    """The state of one search turn."""

    session: Session
    parser: TagParser
    generated: int = 0
    wasted: int = 0
    queries: set[str] = field(default_factory=set)
    numbers: dict[str, int] = field(default_factory=dict)
    shown: set[int] = field(default_factory=set)


class Agent:
    """Runs questions through a backend and a retriever; ``run`` yields typed events."""

    def __init__(
        self,
        backend: Backend,
        retriever: Retriever | None,
        config: AppConfig,
        *,
        grammar: bool = False,
        reuse_cache: bool = True,
    ) -> None:
        """``reuse_cache=False`` evaluates the whole text again at every round: only the
        baseline of ``bench/loop_kv.py`` wants that."""
        if grammar and not backend.supports_grammar:
            raise ConfigError(
                f"loop.grammar is on but the {backend.name} backend cannot constrain its "
                "output; set loop.grammar to auto or off."
            )
        self.backend = backend
        self.retriever = retriever
        self.config = config
        self.grammar = grammar
        self.reuse_cache = reuse_cache
        gen = config.generation
        self._sampling = Sampling(
            temperature=gen.temperature,
            top_p=gen.top_p,
            repeat_penalty=gen.repeat_penalty,
            seed=gen.seed,
        )

    def run(
        self,
        question: str,
        *,
        mode: Mode = "loop",
        retriever_only: bool = False,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Events of one run; :class:`Finished` is always the last one.

        When something fails (a search, the backend), ``Finished(reason="error")`` is
        yielded with the sentence to show, and then the exception is raised.

        Arguments are checked here, before the first event, so a caller learns
        of a misuse at once rather than from an iterator that fails later.
        """
        if mode not in ("loop", "rag", "closed"):
            raise ValueError(f"mode must be loop, rag or closed, not {mode!r}")
        if mode != "closed" and self.retriever is None:
            raise NoKnowledgeBase(
                f"Mode {mode!r} searches a knowledge base but none is open; open or create "
                "one, or use the closed mode."
            )
        if mode == "closed" and retriever_only:
            raise ValueError("retriever_only needs a mode that retrieves (loop or rag)")
        if not question.strip():
            raise ValueError("the question is empty; type a question first")
        return self._events(_Run(question.strip(), mode, cancel), retriever_only)

    # -- the run -----------------------------------------------------------------------

    def _events(self, run: _Run, retriever_only: bool) -> Iterator[Event]:
        started = time.perf_counter()
        errors = 0
        reason = "error"
        failure: Exception | None = None
        try:
            for event in self._body(run, retriever_only):
                if isinstance(event, ProtocolError):
                    errors += 1
                yield event
            reason = "retrieved" if retriever_only else "answered"
            if run.cancelled:
                reason = "cancelled"
        except Exception as exc:
            failure = exc
        stats = RunStats(
            rounds=run.rounds,
            prompt_tokens=run.gen.prompt_tokens,
            cached_tokens=run.gen.cached_tokens,
            completion_tokens=run.gen.completion_tokens,
            seconds=time.perf_counter() - started,
            generation_seconds=run.gen.generation_seconds,
            protocol_errors=errors,
        )
        message = ""
        if failure is not None:
            message = (
                str(failure)
                if isinstance(failure, CotragError)
                else f"{type(failure).__name__}: {failure}"
            )
        yield Finished(reason, stats, trace=run.trace, error=message)
        if failure is not None:
            # Finished came first so a viewer can close the run; the caller still learns
            # of the failure the usual way (and logs the traceback).
            raise failure

    def _body(self, run: _Run, retriever_only: bool) -> Iterator[Event]:
        if run.mode == "loop":
            yield from self._search_turn(run)
        elif run.mode == "rag":
            yield from self._single_retrieval(run)
        if run.cancelled or retriever_only:
            return
        yield from self._answer(run)

    def _single_retrieval(self, run: _Run) -> Iterator[Event]:
        assert self.retriever is not None
        hits = self.retriever.search(run.question, self.config.retrieval.k)
        hits = list({hit.id: hit for hit in hits}.values())
        numbers = list(range(1, len(hits) + 1))
        run.rounds = 1
        run.passages = dict(zip(numbers, hits, strict=True))
        run.vetted = numbers
        yield Retrieval(run.question, hits, numbers)

    # -- the search turn ---------------------------------------------------------------

    def _search_turn(self, run: _Run) -> Iterator[Event]:
        messages = prompts.loop_messages(run.question, max_rounds=self.config.loop.max_rounds)
        session = self.backend.session(
            self.backend.chat_prompt(messages), reuse_cache=self.reuse_cache
        )
        mark = len(session.text)
        turn = _Turn(session, TagParser())
        try:
            yield from self._search_steps(run, turn)
        finally:
            run.trace = session.text[mark:]

    def _search_steps(self, run: _Run, turn: _Turn) -> Iterator[Event]:
        loop = self.config.loop
        while True:
            if run.cancelled:
                yield from turn.parser.abort()
                return
            if turn.wasted >= MAX_WASTED_MOVES:
                yield from self._conclude(run, turn)
                return
            remaining = loop.max_total_tokens - turn.generated
            if remaining <= 0:
                yield ProtocolError(
                    "max_total_tokens", f"the model wrote {turn.generated} tokens in its turn"
                )
                yield from self._conclude(run, turn)
                return
            room = self._context_room(turn.session)
            if room < 2 * loop.max_block_tokens:
                yield ProtocolError(
                    "max_total_tokens", f"the context window is nearly full ({room} tokens left)"
                )
                yield from self._conclude(run, turn)
                return
            must_conclude = run.rounds >= loop.max_rounds
            grammar = None
            # Resuming inside a block happens only without a grammar (which forbids it).
            if self.grammar and turn.parser.in_block is None:
                blocks = turn.parser.blocks
                grammar = segment_grammar(
                    allow_query=not must_conclude,
                    allow_results=run.rounds >= max(1, loop.min_rounds) or must_conclude,
                    think=not blocks or blocks[-1].tag != "think",
                    max_think_tokens=loop.max_block_tokens,
                    numbers=sorted(turn.shown),
                )
            outcome = yield from self._stream(
                run, turn, SEARCH_STOPS, min(remaining, room), grammar
            )
            if outcome.cancelled:
                yield from turn.parser.abort()
                return
            if outcome.too_long is not None:
                yield from self._cut_block(turn, outcome)
            if outcome.forged:
                yield from turn.parser.close()
                turn.wasted += 1
                yield from self._inject(turn, prompts.note("forged_block"), lead="\n")
                continue
            move = outcome.closed[-1] if outcome.closed else None
            if move == "results":
                yield from self._vet(run, turn)
                return
            if move == "query":
                if must_conclude:
                    yield ProtocolError(
                        "max_rounds", f"the model searched again after {loop.max_rounds} rounds"
                    )
                    yield from self._conclude(run, turn)
                    return
                yield from self._query(run, turn)
                continue
            if outcome.too_long is not None:
                continue  # a think block was cut; the model goes on from the closing tag
            if outcome.finish == "stop" and turn.parser.in_block in ("query", "results"):
                continue  # another block's stop sequence inside this block is just its text
            if outcome.finish == "stop" and outcome.stop == "</query>":
                # The model closed a query it never opened: no search ran, say so.
                yield from self._end_model_text(turn)
                yield ProtocolError("empty_query", "</query> without <query>")
                turn.wasted += 1
                yield from self._inject(turn, prompts.note("empty_query"))
                continue
            if outcome.finish == "length":
                yield from self._close_open_block(turn)
                yield ProtocolError(
                    "max_total_tokens", f"the model wrote {turn.generated} tokens in its turn"
                )
            else:
                yield from self._end_model_text(turn)
            yield from self._conclude(run, turn)
            return

    def _stream(
        self,
        run: _Run,
        turn: _Turn,
        stop: Sequence[str],
        max_tokens: int,
        grammar: str | None,
    ) -> Generator[ParseItem, None, _Outcome]:
        """One stream call: feed the parser as text arrives, and cut the call short when a
        block runs too long, a move is complete, a block is forged or the user cancels."""
        limit = self.config.loop.max_block_tokens
        halt = threading.Event()
        request = StreamRequest(
            stop=stop,
            max_tokens=max_tokens,
            grammar=grammar,
            sampling=self._sampling,
            cancel=halt,
        )
        session, parser = turn.session, turn.parser
        before = len(session.text)
        streamed: list[str] = []
        outcome = _Outcome()
        completion: int | None = None
        for chunk in session.stream(request):
            if chunk.text:
                streamed.append(chunk.text)
                for item in parser.feed(chunk.text):
                    self._note_item(item, outcome, halt)
                    yield item
            if chunk.stats is not None:
                run.gen.add(chunk.stats)
                completion = (completion or 0) + chunk.stats.completion_tokens
            if chunk.finish_reason is not None:
                outcome.finish = chunk.finish_reason
                outcome.stop = chunk.stop
            if halt.is_set():
                continue
            if run.cancelled:
                outcome.cancelled = True
                halt.set()
            elif parser.in_block is not None and _over(self.backend, parser.block_text, limit):
                outcome.too_long = parser.in_block
                halt.set()
        if run.cancelled:
            outcome.cancelled = True
        # What the session holds beyond what was streamed: the stop sequence, or text a
        # backend still held back when it was cut short. The parser must see it all.
        written = session.text[before:]
        rest = written[len("".join(streamed)) :]
        for item in parser.feed(rest):
            self._note_item(item, outcome, halt)
            yield item
        turn.generated += (
            completion if completion is not None else self.backend.count_tokens(written)
        )
        return outcome

    @staticmethod
    def _note_item(item: ParseItem, outcome: _Outcome, halt: threading.Event) -> None:
        if isinstance(item, BlockEnd):
            outcome.closed.append(item.tag)
            # A variant closing tag (</Query >) is no stop sequence: end the call here.
            if item.tag in ("query", "results"):
                halt.set()
        elif isinstance(item, ProtocolError) and item.kind == "forged_block":
            outcome.forged = True
            halt.set()

    def _cut_block(self, turn: _Turn, outcome: _Outcome) -> Iterator[ParseItem]:
        tag = outcome.too_long
        if tag is None or turn.parser.in_block != tag:
            return  # closed by the model after all, in the same breath
        closing = f"</{tag}>"
        turn.session.append(closing)
        items = turn.parser.feed(closing)
        for item in items:
            if isinstance(item, BlockEnd):
                outcome.closed.append(item.tag)
        yield ProtocolError(
            "block_too_long",
            f"<{tag}> passed {self.config.loop.max_block_tokens} tokens; the app closed it",
        )
        yield from items

    @staticmethod
    def _end_model_text(turn: _Turn) -> Iterator[ParseItem]:
        """The model stopped mid-block: judge it (unclosed tag) and close the block for it."""
        open_tag = turn.parser.open_tag
        yield from turn.parser.close()
        if open_tag is not None:
            turn.session.append(f"</{open_tag}>")

    def _close_open_block(self, turn: _Turn) -> Iterator[ParseItem]:
        """Close the block the token budget interrupted, as the model would have."""
        tag = turn.parser.open_tag
        if tag is None:
            yield from turn.parser.close()
            return
        closing = f"</{tag}>"
        turn.session.append(closing)
        yield from turn.parser.feed(closing)

    def _context_room(self, session: Session) -> int:
        used = self.backend.count_tokens(session.text)
        return self.config.generation.n_ctx - used - _CONTEXT_MARGIN

    # -- moves -------------------------------------------------------------------------

    def _query(self, run: _Run, turn: _Turn) -> Iterator[Event]:
        assert self.retriever is not None
        block = turn.parser.blocks[-1]
        query = " ".join(block.text.split())
        if not query:
            yield ProtocolError("empty_query", "the query block was empty")
            turn.wasted += 1
            yield from self._inject(turn, prompts.note("empty_query"))
            return
        key = query.casefold()
        if key in turn.queries:
            yield ProtocolError("repeated_query", query)
            turn.wasted += 1
            yield from self._inject(turn, prompts.note("repeated_query"))
            return
        turn.queries.add(key)
        hits = self.retriever.search(query, self.config.retrieval.k)
        hits = list({hit.id: hit for hit in hits}.values())
        numbers = [self._number(run, turn, hit) for hit in hits]
        run.rounds += 1
        yield Retrieval(query, hits, numbers)
        numbered = list(zip(numbers, hits, strict=True))
        body = prompts.passages_block(numbered, frozenset(turn.shown))
        turn.shown.update(numbers)
        yield from self._inject(turn, body or prompts.note("no_passages"))

    @staticmethod
    def _number(run: _Run, turn: _Turn, hit: Hit) -> int:
        """Passage numbers are global across rounds: a chunk already shown keeps its number."""
        number = turn.numbers.get(hit.id)
        if number is None:
            number = len(turn.numbers) + 1
            turn.numbers[hit.id] = number
            run.passages[number] = hit
        return number

    def _inject(self, turn: _Turn, body: str, *, lead: str = "\n<query_res>\n") -> Iterator[Event]:
        """Write a ``<query_res>`` block: only the loop ever does."""
        turn.session.append(f"{lead}{body}\n</query_res>\n")
        yield BlockStart("query_res")
        yield Token("query_res", body)
        yield BlockEnd("query_res", body)

    def _conclude(self, run: _Run, turn: _Turn) -> Iterator[Event]:
        """Make the model list its vetted passages: the loop opens ``<results>`` for it."""
        loop = self.config.loop
        opening = "\n<results>"
        turn.session.append(opening)
        yield from turn.parser.feed(opening)
        grammar = results_body_grammar(sorted(turn.shown)) if self.grammar else None
        max_tokens = max(1, min(loop.max_block_tokens, self._context_room(turn.session)))
        outcome = yield from self._stream(run, turn, ("</results>",), max_tokens, grammar)
        if outcome.cancelled:
            yield from turn.parser.abort()
            return
        if "results" not in outcome.closed:
            if outcome.finish == "eos" and outcome.too_long is None:
                yield from self._end_model_text(turn)
            else:
                outcome.too_long = "results"
                yield from self._cut_block(turn, outcome)
        yield from self._vet(run, turn)

    def _vet(self, run: _Run, turn: _Turn) -> Iterator[Event]:
        results = next((b for b in reversed(turn.parser.blocks) if b.tag == "results"), None)
        cited = results_numbers(results.text) if results is not None else []
        vetted = [n for n in cited if n in run.passages]
        if not vetted and run.passages:
            yield ProtocolError(
                "results_cite_nothing",
                "the results cite no shown passage; all retrieved passages go to the answer",
            )
            vetted = sorted(run.passages)
        run.vetted = vetted

    # -- the answer stage --------------------------------------------------------------

    def _answer(self, run: _Run) -> Iterator[Event]:
        numbered = [(n, run.passages[n]) for n in run.vetted]
        prompt = self._answer_prompt(run, numbered)
        # Passages that do not fit the context window are dropped from the end: the
        # model listed the most useful ones first.
        budget = self.config.generation.n_ctx - self.config.generation.answer_max_tokens
        while numbered and self.backend.count_tokens(prompt) > budget - _CONTEXT_MARGIN:
            numbered.pop()
            prompt = self._answer_prompt(run, numbered)
        session = self.backend.session(prompt, reuse_cache=self.reuse_cache)
        halt = threading.Event()
        # With the grammar on, every sentence must end citing a passage it was given.
        grammar = answer_grammar([n for n, _ in numbered]) if self.grammar and numbered else None
        request = StreamRequest(
            max_tokens=self.config.generation.answer_max_tokens,
            grammar=grammar,
            sampling=self._sampling,
            cancel=halt,
        )
        yield BlockStart("answer")
        parts: list[str] = []
        for chunk in session.stream(request):
            if chunk.text:
                parts.append(chunk.text)
                yield Token("answer", chunk.text)
            if chunk.stats is not None:
                run.gen.add(chunk.stats)
            if run.cancelled:
                halt.set()
        text = "".join(parts)
        yield BlockEnd("answer", text)
        if run.cancelled:
            return
        given = {n for n, _ in numbered}
        yield Answer(text.strip(), [n for n in bracket_citations(text) if n in given])

    def _answer_prompt(self, run: _Run, numbered: list[tuple[int, Hit]]) -> str:
        if run.mode == "closed":
            return self.backend.chat_prompt(prompts.closed_messages(run.question))
        return self.backend.chat_prompt(prompts.answer_messages(run.question, numbered))


def _over(backend: Backend, text: str, limit: int) -> bool:
    # A token is at least one byte, so short text needs no tokenizer call.
    if len(text.encode("utf-8")) <= limit:
        return False
    return backend.count_tokens(text) > limit
