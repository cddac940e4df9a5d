"""Constructed traces: the real loop runs, and a writer plays the model's part from a plan.

Train/infer parity by construction: the loop itself renders the prompt, numbers
and escapes the passages, injects the ``<query_res>`` blocks and builds the answer
stage, exactly as it does for a real model; the writer only supplies what a good
model would write (think, query, results, answer), knowing which chunk holds the
answer. The retrieval is the knowledge base's own, so the gold chunk sits among
real distractors (RAFT-style); when the first query misses it, the think says so and
the next query refines it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from core.agent.events import Retrieval
from core.agent.grammar import MAX_QUERY_CHARS, MAX_REASON_CHARS, MAX_SENTENCE_CHARS
from core.agent.loop import Agent, Retriever, seed_query
from core.agent.record import RunRecord
from core.config import AppConfig
from core.knowledge.types import Hit
from core.llm.base import Capabilities, Chunk, GenStats, StreamRequest

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "by",
        "at",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "do",
        "does",
        "did",
        "how",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "their",
        "they",
        "them",
        "he",
        "she",
        "his",
        "her",
        "if",
        "then",
        "than",
        "so",
        "as",
        "into",
        "about",
        "after",
        "before",
        "over",
        "under",
        "again",
        "any",
        "some",
        "all",
        "each",
        "other",
        "such",
        "only",
        "own",
        "same",
        "too",
        "very",
        "just",
        "also",
        "not",
        "no",
        "nor",
        "there's",
        "i'm",
        "i've",
        "what's",
        "it's",
        "don't",
        "doesn't",
    ]
)

FOCUS = {
    "lookup": "the exact name or value the question asks for",
    "definition": "what the term stands for",
    "default": "the default value",
    "behaviour": "the option or setting that does this",
    "howto": "the command or step to use",
    "twohop": "the two facts the question combines",
    "imported": "the fact the question asks for",
}


def keywords(question: str, limit: int = 10) -> str:
    """The question's content words, in order: the first query a good searcher writes."""
    words = re.findall(r"[\w.@/-]+", question)
    kept = [w for w in words if w.casefold().strip(".") not in STOPWORDS and len(w) > 1]
    return " ".join(kept[:limit])[:MAX_QUERY_CHARS].strip()


def _plain(text: str, limit: int) -> str:
    """One line without the characters the grammar reserves (``<``, brackets)."""
    line = " ".join(re.sub(r"[<>\[\]]", " ", text).split())
    if len(line) <= limit:
        return line
    cut = line[:limit]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(",;:") + "…"


def snippet(sentence: str, answer: str, limit: int = 100) -> str:
    """A stretch of the sentence around the answer, short enough for a reason line."""
    flat = " ".join(sentence.split())
    at = flat.casefold().find(answer.casefold())
    if at < 0 or len(flat) <= limit:
        return _plain(flat, limit)
    start = max(0, at - limit // 3)
    if start:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < at else start
    piece = flat[start:]
    return ("…" if start else "") + _plain(piece, limit)


LEAD_MAX_CHARS = 120
LEAD_MAX_WORDS = 8
"""Longest gold span an answer states in its first sentence; a longer one (an imported
answer that is a sentence of its own, a whole clause) is answered with the passage's own
sentence, which holds it."""


def stated(answer: str, kind: str, subject: str = "") -> str:
    """The first sentence of a constructed answer, before its citation: the gold span said
    outright (``The answer is npm ci``), so the answer rests on the span and not on a copy
    of the sentence around it, whose first words may be another option's. Empty when the
    span cannot stand in a sentence the answer grammar admits (reserved characters, too
    long)."""
    span = " ".join(answer.split()).rstrip(".")
    if not span or len(span) > LEAD_MAX_CHARS or len(span.split()) > LEAD_MAX_WORDS:
        return ""
    if re.search(r"[<>\[\]]", span):
        return ""
    if kind == "default":
        return f"The default value of {subject} is {span}" if subject else f"The default is {span}"
    return f"The answer is {span}"


@dataclass
class TracePlan:
    question: str
    answer: str
    sentence: str
    """The source sentence that holds the answer."""
    gold_id: str
    kind: str = "lookup"
    heading: str = ""
    queries: list[str] = field(default_factory=list)
    query_source: str = ""
    """The text the queries are drawn from (default: the question)."""

    def __post_init__(self) -> None:
        if not self.queries:
            source = self.query_source or self.question
            first = keywords(source) or seed_query(source)
            second = seed_query(source)
            if second.casefold() == first.casefold():
                second = f"{first} {keywords(self.heading, 6)}".strip()
            # Last, the question itself: verification found the chunk with it.
            third = seed_query(self.question)
            unique = {q.casefold(): q for q in (third, second, first) if q}
            self.queries = list(reversed(unique.values()))


class _WriterSession:
    def __init__(self, writer: TraceWriter, prompt: str) -> None:
        self.writer = writer
        self._text = prompt
        self.answer_stage = writer.sessions_made > 0
        self.calls = 0

    @property
    def text(self) -> str:
        return self._text

    def append(self, text: str) -> None:
        self._text += text

    def stream(self, request: StreamRequest) -> Iterator[Chunk]:
        output = self.writer.answer() if self.answer_stage else self.writer.next_move(self.calls)
        self.calls += 1
        cut, stop = len(output), None
        for candidate in request.stop:
            at = output.find(candidate)
            if 0 <= at < cut:
                cut, stop = at, candidate
        shown = output[:cut]
        self._text += shown + (stop or "")
        stats = GenStats(completion_tokens=self.writer.count_tokens(shown + (stop or "")))
        if shown:
            yield Chunk(shown)
        yield Chunk("", finish_reason="stop" if stop else "eos", stop=stop, stats=stats)


class TraceWriter:
    """A Backend that writes what a good searcher would, from a :class:`TracePlan`."""

    name = "constructed"
    capabilities = Capabilities(constrained=None, kv_reuse=False, token_ids=False, streaming=False)

    def __init__(self, plan: TracePlan, count_tokens: Callable[[str], int]) -> None:
        self.plan = plan
        self._count = count_tokens
        self.sessions_made = 0
        self.shown: dict[int, Hit] = {}
        self.vetted: list[int] = []
        self.concluded_empty = False

    # -- what the loop tells the writer --

    def saw(self, retrieval: Retrieval) -> None:
        for number, hit in zip(retrieval.numbers, retrieval.hits, strict=False):
            self.shown.setdefault(number, hit)

    @property
    def gold_number(self) -> int | None:
        return next((n for n, h in self.shown.items() if h.id == self.plan.gold_id), None)

    # -- the model's part --

    def next_move(self, call: int) -> str:
        plan = self.plan
        focus = FOCUS.get(plan.kind, FOCUS["lookup"])
        gold = self.gold_number
        if call == 0:
            think = f"I need to find {focus} in the documents."
            return f"<think>{think}</think>\n<query>{plan.queries[0]}</query>"
        if gold is not None:
            hit = self.shown[gold]
            quote = snippet(plan.sentence, plan.answer)
            think = f"Passage {gold} ({hit.label}) answers the question: {quote}"
            reason = _plain(f"it says {quote}", MAX_REASON_CHARS)
            self.vetted = [gold]
            return f"<think>{think}</think>\n<results>\n[{gold}] {reason}\n</results>"
        if call < len(plan.queries):
            think = (
                f"None of the passages so far give {focus}. I will search again with other words."
            )
            return f"<think>{think}</think>\n<query>{plan.queries[call]}</query>"
        self.concluded_empty = True
        think = f"None of the passages give {focus}; the documents do not seem to say."
        return f"<think>{think}</think>\n<results>\nnone\n</results>"

    def answer(self) -> str:
        gold = self.vetted[0] if self.vetted else None
        if gold is None:
            return UNANSWERED
        quote = snippet(self.plan.sentence, self.plan.answer, MAX_SENTENCE_CHARS - 8)
        lead = stated(self.plan.answer, self.plan.kind)
        if not lead:
            return f"{quote.rstrip('.')} [{gold}]."
        return f"{lead} [{gold}]. {quote.rstrip('.')} [{gold}]."

    # -- the Backend protocol --

    def load(self) -> None:
        pass

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return turns + "<|im_start|>assistant\n"

    def session(self, prompt: str, *, reuse_cache: bool = True) -> _WriterSession:
        session = _WriterSession(self, prompt)
        self.sessions_made += 1
        return session

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def close(self) -> None:
        pass


UNANSWERED = "The documents do not say."


@dataclass
class WithoutDocument:
    """A retriever that never returns one document's chunks (for unanswerable examples)."""

    retriever: Retriever
    source: str

    def search(self, query: str, k: int) -> list[Hit]:
        hits = self.retriever.search(query, k * 3)
        return [h for h in hits if h.source != self.source][:k]


def construct_trace(
    plan: TracePlan,
    retriever: Retriever,
    config: AppConfig,
    count_tokens: Callable[[str], int],
    *,
    leave_out: str = "",
) -> tuple[RunRecord, int | None]:
    """Run the real loop with the writer; the record and the gold passage's number (None
    when no search found the gold chunk). With ``leave_out`` (a document's source), the
    search never shows that document: the trace ends with ``none`` and an answer that says
    the documents do not say."""
    if leave_out:
        retriever = WithoutDocument(retriever, leave_out)
    writer = TraceWriter(plan, count_tokens)
    record = _run_writer(writer, retriever, config, plan.question)
    return record, writer.gold_number if writer.vetted else None


def _run_writer(
    writer: TraceWriter, retriever: Retriever, config: AppConfig, question: str
) -> RunRecord:
    """The real loop with the writer as its model; the writer sees every retrieval."""
    agent = Agent(
        writer, retriever, config, grammar=False, first_query="model", model_id="constructed"
    )
    record = RunRecord(question=question, mode="loop")
    for event in agent.run(question):
        record.add(event)
        if isinstance(event, Retrieval):
            writer.saw(event)
    return record


# -- two hops ----------------------------------------------------------------------------


@dataclass
class TwoHopPlan:
    """A bridge question: the first hop finds the chunk that names the term, the second
    the chunk that states the answer about it."""

    question: str
    answer: str
    term: str
    """The bridge term as a search word (``save-exact``)."""
    first_sentence: str
    second_sentence: str
    first_ids: frozenset[str]
    """The first chunk and its verbatim copies: any of them is the first hop's find."""
    second_ids: frozenset[str]
    first_queries: list[str]
    second_queries: list[str]
    kind: str = "default"
    """The kind of the fact asked for about the term (what the second hop looks for)."""


class TwoHopWriter(TraceWriter):
    """Plays a searcher that finds the term first, says what is still missing, and
    searches again for the term's fact; ``<results>`` vets both passages."""

    def __init__(self, plan: TwoHopPlan, count_tokens: Callable[[str], int], max_rounds: int):
        single = TracePlan(
            question=plan.question,
            answer=plan.answer,
            sentence=plan.second_sentence,
            gold_id="",
            kind=plan.kind,
            queries=[*plan.first_queries, *plan.second_queries],
        )
        super().__init__(single, count_tokens)
        self.hops = plan
        self.max_rounds = max_rounds
        self.queries_made = 0
        self.second_queries_made = 0

    def _shown_of(self, ids: frozenset[str]) -> int | None:
        return next((n for n, h in sorted(self.shown.items()) if h.id in ids), None)

    @property
    def gold_numbers(self) -> list[int]:
        first, second = self._shown_of(self.hops.first_ids), self._shown_of(self.hops.second_ids)
        return [n for n in (first, second) if n is not None]

    def _query(self, think: str, query: str) -> str:
        self.queries_made += 1
        return f"<think>{think}</think>\n<query>{query}</query>"

    def next_move(self, call: int) -> str:
        plan = self.hops
        want = FOCUS.get(plan.kind, FOCUS["lookup"])
        first, second = self._shown_of(plan.first_ids), self._shown_of(plan.second_ids)
        can_search = self.queries_made < self.max_rounds
        if call == 0:
            think = (
                "The question describes something without naming it. I first need the "
                f"passage that names it, then {want} for it."
            )
            return self._query(think, plan.first_queries[0])
        if first is None:
            if can_search and self.queries_made < len(plan.first_queries):
                think = (
                    "None of the passages so far say what the question describes. I will "
                    "search again with other words."
                )
                return self._query(think, plan.first_queries[self.queries_made])
            return self._give_up("what the question describes")
        hit = self.shown[first]
        if self.second_queries_made == 0 and can_search:
            quote = snippet(plan.first_sentence, plan.term, 90)
            think = (
                f"Passage {first} ({hit.label}) names it: {quote} So it is {plan.term}. "
                f"Still missing: {want} for {plan.term}. I will search for {plan.term}."
            )
            self.second_queries_made += 1
            return self._query(_plain(think, 3 * MAX_REASON_CHARS), plan.second_queries[0])
        if second is None:
            if can_search and self.second_queries_made < len(plan.second_queries):
                think = (
                    f"None of the passages give {want} for {plan.term} yet. I will search again."
                )
                query = plan.second_queries[self.second_queries_made]
                self.second_queries_made += 1
                return self._query(think, query)
            return self._give_up(f"{want} for {plan.term}")
        quote_first = snippet(plan.first_sentence, plan.term)
        quote_second = snippet(plan.second_sentence, plan.answer)
        think = (
            f"Passage {second} ({self.shown[second].label}) gives {want} for {plan.term}: "
            f"{quote_second} With passage {first}, that answers the question."
        )
        self.vetted = [first, second]
        lines = [
            f"[{first}] " + _plain(f"names {plan.term}: {quote_first}", MAX_REASON_CHARS),
            f"[{second}] "
            + _plain(f"gives {want} for {plan.term}: {quote_second}", MAX_REASON_CHARS),
        ]
        body = "\n".join(lines)
        return (
            f"<think>{_plain(think, 3 * MAX_REASON_CHARS)}</think>\n<results>\n{body}\n</results>"
        )

    def _give_up(self, missing: str) -> str:
        self.concluded_empty = True
        think = f"None of the passages give {missing}; the documents do not seem to say."
        return f"<think>{think}</think>\n<results>\nnone\n</results>"

    def answer(self) -> str:
        if len(self.vetted) < 2:
            return UNANSWERED
        first, second = self.vetted
        plan = self.hops
        limit = MAX_SENTENCE_CHARS - 8
        named = snippet(plan.first_sentence, plan.term, limit).rstrip(".")
        fact = snippet(plan.second_sentence, plan.answer, limit).rstrip(".")
        # The answer first (what a reader is scored on), then the two passages it rests on.
        lead = stated(plan.answer, plan.kind, _plain(plan.term, LEAD_MAX_CHARS))
        if not lead:
            return f"{fact} [{second}]. {named} [{first}]."
        return f"{lead} [{second}]. {named} [{first}]. {fact} [{second}]."


def construct_twohop_trace(
    plan: TwoHopPlan,
    retriever: Retriever,
    config: AppConfig,
    count_tokens: Callable[[str], int],
) -> tuple[RunRecord, list[int]]:
    """Run the real loop with the two-hop writer; the record and the numbers of the two gold
    passages (first hop, second hop), empty when a hop's chunk was never found."""
    writer = TwoHopWriter(plan, count_tokens, config.loop.max_rounds)
    record = _run_writer(writer, retriever, config, plan.question)
    return record, writer.gold_numbers if len(writer.vetted) == 2 else []
