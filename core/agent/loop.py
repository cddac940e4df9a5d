"""The tag loop: the model thinks and searches; the app runs each query and shows the passages.

One search turn is a single growing session. Generation stops at ``</query>``;
the loop runs the search, appends an escaped ``<query_res>`` block and resumes,
so the engine evaluates only the appended tokens. At ``</results>`` the vetted
passages go to a separate answer stage. The loop enforces the bounds and the
protocol whatever the model writes: it never hangs and never loops.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from typing import Any, Literal

from core.agent import answering, prompts
from core.agent.answering import CONTEXT_MARGIN
from core.agent.events import (
    BlockEnd,
    BlockStart,
    Event,
    Finished,
    Prompt,
    ProtocolError,
    Retrieval,
    RunStats,
    Started,
    Token,
    Vetted,
)
from core.agent.grammar import results_body_grammar, segment_grammar
from core.agent.parser import ParseItem, TagParser, results_numbers
from core.agent.prompts import seed_query
from core.agent.state import (
    Mode,
    NoKnowledgeBase,
    Retriever,
    RunState,
    SpanLog,
    StreamOutcome,
    TurnState,
)
from core.config import AppConfig
from core.errors import ConfigError, CotragError
from core.knowledge.types import Hit
from core.llm.base import Backend, Sampling, Session, StreamRequest

__all__ = ["Agent", "Mode", "NoKnowledgeBase", "Retriever", "seed_query"]

SEARCH_STOPS = ("</query>", "</results>", "<query_res>")
NOTHING_VETTED = re.compile(r"^\s*(?:none|nothing)\s*\.?\s*$", re.IGNORECASE)
"""A results block that vets no passage on purpose: ``<results> none </results>``."""
MAX_WASTED_MOVES = 2
"""Queries that ran no search (repeated, empty) or forged blocks before the loop concludes."""


class Agent:
    """Runs questions through a backend and a retriever; ``run`` yields typed events."""

    def __init__(
        self,
        backend: Backend,
        retriever: Retriever | None,
        config: AppConfig,
        *,
        grammar: bool = False,
        first_query: Literal["question", "model"] = "model",
        reuse_cache: bool = True,
        model_id: str = "",
        answer_backend: Backend | None = None,
        answer_grammar: bool | None = None,
        answer_model_id: str = "",
    ) -> None:
        """``first_query="question"`` makes the loop search with the question before the
        model writes anything (a seeded first round, as in IRCoT); ``"model"`` leaves the
        first query to the model. ``reuse_cache=False`` evaluates the whole text again at
        every round: only the baseline of ``bench/loop_kv.py`` wants that.

        ``answer_backend`` runs the answer stage (another model: a tuned model searches,
        its base reads, say), with ``answer_grammar`` (default: ``grammar``); the run's
        events still come as one stream and say which model answered."""
        answer_grammar = grammar if answer_grammar is None else answer_grammar
        for wanted, engine in ((grammar, backend), (answer_grammar, answer_backend or backend)):
            if wanted and engine.capabilities.constrained != "gbnf":
                raise ConfigError(
                    f"loop.grammar is on but the {engine.name} backend cannot constrain its "
                    "output; set loop.grammar to auto or off."
                )
        self.backend = backend
        self.answer_backend = answer_backend
        self.retriever = retriever
        self.config = config
        self.grammar = grammar
        self.answer_grammar = answer_grammar
        if first_query not in ("question", "model"):
            raise ValueError(f"first_query must be question or model, not {first_query!r}")
        self.first_query = first_query
        self.reuse_cache = reuse_cache
        self.model_id = model_id or backend.name
        self.answer_model_id = (
            answer_model_id or (answer_backend.name if answer_backend else "") or self.model_id
        )
        gen = config.generation
        self._sampling = Sampling(
            temperature=gen.temperature,
            top_p=gen.top_p,
            repeat_penalty=gen.repeat_penalty,
            seed=gen.seed,
            presence_penalty=gen.presence_penalty,
            frequency_penalty=gen.frequency_penalty,
            no_repeat_ngram=gen.no_repeat_ngram,
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
        return self._events(RunState(question.strip(), mode, cancel), retriever_only)

    # -- the run -----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What a run is made of, as :class:`Started` reports it."""
        loop, retrieval = self.config.loop, self.config.retrieval
        describe = getattr(self.retriever, "describe", None)
        knowledge: dict[str, Any] = describe() if callable(describe) else {}
        return {
            "model": self.model_id,
            "engine": self.backend.name,
            "answer_model": self.answer_model_id,
            "answer_engine": (self.answer_backend or self.backend).name,
            "template_version": prompts.template_version(),
            "settings": {
                "grammar": self.grammar,
                "answer_grammar": self.answer_grammar,
                "first_query": self.first_query,
                "max_rounds": loop.max_rounds,
                "min_rounds": loop.min_rounds,
                "max_block_tokens": loop.max_block_tokens,
                "max_total_tokens": loop.max_total_tokens,
                "retrieval_method": knowledge.get("method", retrieval.method),
                "k": retrieval.k,
                "n_ctx": self.config.generation.n_ctx,
                "answer_max_tokens": self.config.generation.answer_max_tokens,
                "sampling": {
                    "temperature": self._sampling.temperature,
                    "top_p": self._sampling.top_p,
                    "repeat_penalty": self._sampling.repeat_penalty,
                    "seed": self._sampling.seed,
                },
            },
            "knowledge_base": {k: v for k, v in knowledge.items() if k != "method"},
        }

    def _events(self, run: RunState, retriever_only: bool) -> Iterator[Event]:
        started = time.perf_counter()
        yield Started(run.question, run.mode, self.info())
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
            answer_model=run.answered_by,
            answer_tokens=run.answer_tokens,
        )
        message = ""
        if failure is not None:
            message = (
                str(failure)
                if isinstance(failure, CotragError)
                else f"{type(failure).__name__}: {failure}"
            )
        yield Finished(reason, stats, trace=run.trace, spans=run.spans, error=message)
        if failure is not None:
            # Finished came first so a viewer can close the run; the caller still learns
            # of the failure the usual way (and logs the traceback).
            raise failure

    def _body(self, run: RunState, retriever_only: bool) -> Iterator[Event]:
        if run.mode == "loop":
            yield from self._search_turn(run)
        elif run.mode == "rag":
            yield from self._single_retrieval(run)
        if run.cancelled or retriever_only:
            return
        yield from self._answer(run)

    def _single_retrieval(self, run: RunState) -> Iterator[Event]:
        assert self.retriever is not None
        hits = self.retriever.search(run.question, self.config.retrieval.k)
        hits = list({hit.id: hit for hit in hits}.values())
        numbers = list(range(1, len(hits) + 1))
        run.rounds = 1
        run.passages = dict(zip(numbers, hits, strict=True))
        run.vetted = numbers
        yield Retrieval(run.question, hits, numbers)
        yield Vetted(numbers, "all")

    # -- the search turn ---------------------------------------------------------------

    def _search_turn(self, run: RunState) -> Iterator[Event]:
        messages = prompts.loop_messages(run.question, max_rounds=self.config.loop.max_rounds)
        prompt = self.backend.chat_prompt(messages)
        yield Prompt("search", messages, prompt)
        session = self.backend.session(prompt, reuse_cache=self.reuse_cache)
        turn = TurnState(session, TagParser(), SpanLog(session))
        try:
            if self.first_query == "question":
                yield from self._seed(run, turn)
            yield from self._search_steps(run, turn)
        finally:
            run.trace, run.spans = turn.log.finish()

    def _seed(self, run: RunState, turn: TurnState) -> Iterator[Event]:
        """The loop's own first round: search with the question, as the model would have."""
        text = f"<query>{seed_query(run.question)}</query>"
        turn.log.write(text, "seed")
        for item in turn.parser.feed(text):
            if isinstance(item, BlockStart):
                yield BlockStart(item.tag, "loop", "seed")
            elif isinstance(item, BlockEnd):
                yield BlockEnd(item.tag, item.text, "loop", "seed")
            else:
                yield item
        before = set(run.passages)
        yield from self._query(run, turn)
        run.seeded = [n for n in sorted(run.passages) if n not in before]

    def _search_steps(self, run: RunState, turn: TurnState) -> Iterator[Event]:
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
        run: RunState,
        turn: TurnState,
        stop: Sequence[str],
        max_tokens: int,
        grammar: str | None,
    ) -> Generator[ParseItem, None, StreamOutcome]:
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
        outcome = StreamOutcome()
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
    def _note_item(item: ParseItem, outcome: StreamOutcome, halt: threading.Event) -> None:
        if isinstance(item, BlockEnd):
            outcome.closed.append(item.tag)
            # A variant closing tag (</Query >) is no stop sequence: end the call here.
            if item.tag in ("query", "results"):
                halt.set()
        elif isinstance(item, ProtocolError) and item.kind == "forged_block":
            outcome.forged = True
            halt.set()

    def _cut_block(self, turn: TurnState, outcome: StreamOutcome) -> Iterator[ParseItem]:
        tag = outcome.too_long
        if tag is None or turn.parser.in_block != tag:
            return  # closed by the model after all, in the same breath
        closing = f"</{tag}>"
        turn.log.write(closing, "tag")
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
    def _end_model_text(turn: TurnState) -> Iterator[ParseItem]:
        """The model stopped mid-block: judge it (unclosed tag) and close the block for it."""
        open_tag = turn.parser.open_tag
        yield from turn.parser.close()
        if open_tag is not None:
            turn.log.write(f"</{open_tag}>", "tag")

    def _close_open_block(self, turn: TurnState) -> Iterator[ParseItem]:
        """Close the block the token budget interrupted, as the model would have."""
        tag = turn.parser.open_tag
        if tag is None:
            yield from turn.parser.close()
            return
        closing = f"</{tag}>"
        turn.log.write(closing, "tag")
        yield from turn.parser.feed(closing)

    def _context_room(self, session: Session) -> int:
        used = self.backend.count_tokens(session.text)
        return self.config.generation.n_ctx - used - CONTEXT_MARGIN

    # -- moves -------------------------------------------------------------------------

    def _query(self, run: RunState, turn: TurnState) -> Iterator[Event]:
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
        if body:
            yield from self._inject(turn, body, kind="passages")
        else:
            yield from self._inject(turn, prompts.note("no_passages"))

    @staticmethod
    def _number(run: RunState, turn: TurnState, hit: Hit) -> int:
        """Passage numbers are global across rounds: a chunk already shown keeps its number."""
        number = turn.numbers.get(hit.id)
        if number is None:
            number = len(turn.numbers) + 1
            turn.numbers[hit.id] = number
            run.passages[number] = hit
        return number

    def _inject(
        self, turn: TurnState, body: str, *, kind: str = "note", lead: str = "\n<query_res>\n"
    ) -> Iterator[Event]:
        """Write a ``<query_res>`` block (``passages`` or a loop ``note``): only the loop
        ever does."""
        turn.log.write(f"{lead}{body}\n</query_res>\n", kind)
        yield BlockStart("query_res", "loop", kind)
        yield Token("query_res", body)
        yield BlockEnd("query_res", body, "loop", kind)

    def _conclude(self, run: RunState, turn: TurnState) -> Iterator[Event]:
        """Make the model list its vetted passages: the loop opens ``<results>`` for it."""
        loop = self.config.loop
        opening = "\n<results>"
        turn.log.write(opening, "tag")
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

    def _vet(self, run: RunState, turn: TurnState) -> Iterator[Event]:
        results = next((b for b in reversed(turn.parser.blocks) if b.tag == "results"), None)
        if results is not None and NOTHING_VETTED.match(results.text):
            # The model found nothing that answers: the answer stage gets no passage and
            # says the documents do not say (what the unanswerable examples teach).
            run.vetted = []
            yield Vetted([], "none")
            return
        cited = results_numbers(results.text) if results is not None else []
        vetted = [n for n in cited if n in run.passages]
        source = "results"
        if not vetted and run.passages:
            yield ProtocolError(
                "results_cite_nothing",
                "the results cite no shown passage; all retrieved passages go to the answer",
            )
            vetted = sorted(run.passages)
            source = "fallback"
        elif run.seeded:
            # The loop's own search with the question is kept for the answer, after what
            # the model vetted (as IRCoT's reader sees every paragraph retrieved): an
            # untuned model's vetting must not lose what one plain retrieval found.
            extra = [n for n in run.seeded if n not in vetted]
            if extra:
                vetted = vetted + extra
                source = "results+seed"
        run.vetted = vetted
        yield Vetted(list(vetted), source)

    # -- the answer stage --------------------------------------------------------------

    def answer_stage(
        self,
        question: str,
        passages: dict[int, Hit],
        vetted: list[int],
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """The answer stage alone, on what a search turn (``run(..., retriever_only=True)``)
        showed and vetted: its prompt, answer blocks and :class:`Answer`, then
        :class:`Finished` with this stage's own stats (no trace). Several runs of one
        question can so search first and answer after, and their search turns share the
        cached prompt."""
        run = RunState(question.strip(), "loop", cancel, passages=dict(passages))
        run.vetted = [n for n in vetted if n in run.passages]
        started = time.perf_counter()
        yield from self._answer(run)
        stats = RunStats(
            prompt_tokens=run.gen.prompt_tokens,
            cached_tokens=run.gen.cached_tokens,
            completion_tokens=run.gen.completion_tokens,
            seconds=time.perf_counter() - started,
            generation_seconds=run.gen.generation_seconds,
        )
        yield Finished("cancelled" if run.cancelled else "answered", stats)

    def _answer(self, run: RunState) -> Iterator[Event]:
        run.answered_by = self.answer_model_id
        yield from answering.answer(
            run,
            self.answer_backend or self.backend,
            self.config.generation,
            self._sampling,
            grammar=self.answer_grammar,
            reuse_cache=self.reuse_cache,
        )


def _over(backend: Backend, text: str, limit: int) -> bool:
    # A token is at least one byte, so short text needs no tokenizer call.
    if len(text.encode("utf-8")) <= limit:
        return False
    return backend.count_tokens(text) > limit
