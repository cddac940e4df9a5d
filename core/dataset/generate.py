"""From a knowledge base to verified examples: seeds → question → checks → trace → folder.

``generate`` is an iterator of progress events (the CLI prints them, the Dataset tab
draws them); every accepted example is on disk before its event is yielded, so a
Cancel, a crash or a kill loses nothing already accepted, and a re-run with the same
name continues where it stopped (decided seeds are skipped).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from core.agent import prompts
from core.agent.loop import Agent, seed_query
from core.agent.prompts import render
from core.agent.record import RunRecord
from core.config import AppConfig
from core.dataset import twohop
from core.dataset.candidates import KINDS, SINGLE_KINDS, TWOHOP, Candidate, candidates, sentences
from core.dataset.construct import (
    STOPWORDS,
    UNANSWERED,
    TracePlan,
    TwoHopPlan,
    construct_trace,
    construct_twohop_trace,
    keywords,
)
from core.dataset.draws import keyed_share, split_of
from core.dataset.editing import EditRejected, edited, renumber_citations
from core.dataset.spread import spread_over_documents
from core.dataset.storage import Dataset
from core.dataset.teacher import Teacher, TeacherError
from core.dataset.verify import Rejection, Verifier, contains, normalise, words
from core.errors import CotragError
from core.knowledge.types import Hit

MIN_SEED_CHARS = 200
"""Chunks shorter than this rarely hold a fact worth a question."""
MAX_TRIES_PER_CHUNK = 3
TOO_COMMON_SHARE = 0.03
"""An answer found in more than this share of chunks (``package.json``) asks nothing specific."""

EXAMPLE_VERSION = 1


class EmptyKnowledgeBase(CotragError, ValueError):
    pass


@dataclass
class GenerateSpec:
    kb: str
    count: int = 200
    seed: int = 0
    validation_share: float = 0.1
    """Share of documents whose examples go to the validation split."""
    kinds: dict[str, float] = field(default_factory=lambda: {k: 1.0 for k in KINDS})
    """Relative weight of each kind of question."""
    documents: list[str] = field(default_factory=list)
    """Only these documents (sources); empty: all."""
    exclude: list[str] = field(default_factory=list)
    """Leave these documents out."""
    teacher_traces: bool = False
    """Let a loaded-model teacher run the loop itself first; its trace is kept when it is
    clean, vets the source chunk and answers right (else the trace is constructed)."""
    unanswerable_share: float = 0.1
    """Share of examples traced with the source document left out of the search: they
    teach the model to say that the documents do not say."""
    k: int = 0
    """Round trip: the source chunk must be among the top k for the question (0: the
    loop's retrieval.k, so the question as a query shows the gold chunk in the trace)."""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise CotragError("The number of examples must be 1 or more.")
        if not 0.0 <= self.unanswerable_share < 1.0:
            raise CotragError("The unanswerable share must be within 0 and 1 (e.g. 0.1).")
        if not 0.0 <= self.validation_share < 1.0:
            raise CotragError("The validation share must be within 0 and 1 (e.g. 0.1).")
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise CotragError(f"Unknown question kind(s) {sorted(unknown)}; use {list(KINDS)}.")
        if not any(w > 0 for w in self.kinds.values()):
            raise CotragError("Give at least one kind of question a weight above 0.")


@dataclass(frozen=True)
class Seed:
    chunk_id: str
    text: str
    source: str
    doc_hash: str
    heading: str


@dataclass(frozen=True)
class Progress:
    accepted: int
    rejected: int
    target: int
    seeds_done: int
    seeds_total: int
    per_minute: float
    eta_s: float | None


@dataclass(frozen=True)
class Accepted:
    example: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str


GenEvent = Progress | Accepted | Rejected


def seeds_from(chunks: list[tuple[str, str, dict[str, Any]]], spec: GenerateSpec) -> list[Seed]:
    """Chunks long enough to ask about, spread over the documents: round robin over the
    documents in a seeded order, each document's chunks shuffled with the same seed."""
    by_doc: dict[str, list[Seed]] = {}
    for chunk_id, text, meta in chunks:
        source = str(meta.get("source", ""))
        if spec.documents and not any(_same_doc(source, d) for d in spec.documents):
            continue
        if any(_same_doc(source, d) for d in spec.exclude):
            continue
        if len(text) < MIN_SEED_CHARS:
            continue
        by_doc.setdefault(source, []).append(
            Seed(
                chunk_id, text, source, str(meta.get("doc_hash", "")), str(meta.get("heading", ""))
            )
        )
    return spread_over_documents(by_doc, spec.seed, lambda s: s.chunk_id)


def _same_doc(source: str, wanted: str) -> bool:
    return source == wanted or source.endswith("/" + wanted.lstrip("/"))


_DEFAULT_SUBJECT_RE = re.compile(
    r"\b[Dd]efaults?\s+((?:(?!is\b|to\b)[\w`.-]+\s+){0,3}?)(?:is|to)\s"
)
_DEFINITION_SHAPE_RE = re.compile(
    r"^(?:An?\s+|The\s+)?(?P<term>.+?)\s+(?:is|are)\s+(?P<article>an?|the|one)\s+(?P<rest>.+)$"
)
_WHICH_DEFAULTS_RE = re.compile(r"(`[^`]{1,40}`|[\w.-]+),?\s+which\s+defaults?\s+to\s")
_DANGLING = frozenset(
    [
        "and",
        "or",
        "the",
        "their",
        "its",
        "to",
        "of",
        "a",
        "an",
        "with",
        "for",
        "in",
        "on",
        "by",
        "from",
        "that",
        "which",
    ]
)
_HOWTO_SHAPE_RE = re.compile(r"^To\s+(?P<goal>[^,]{5,90}),\s+(?:run|use|type|call)\s")


def _words(text: str, limit: int) -> str:
    """The first clause, at most ``limit`` words, not ending on a function word."""
    clause = re.split(r"[,;:(]", text, maxsplit=1)[0]
    words = clause.rstrip(" .").split()[:limit]
    while words and words[-1].casefold() in _DANGLING:
        words.pop()
    return " ".join(words)


def template_question(candidate: Candidate, heading: str) -> str:
    """The fallback question, built from the sentence alone: a plain question where the
    sentence has a shape that gives one (a default, a definition, "To X, run Y"), else the
    sentence with its answer blanked, as a fill-in."""
    sentence, answer = candidate.sentence, candidate.answer
    topic = heading.split(" > ")[-1].strip() if heading else ""
    if candidate.kind == "default":
        found = _DEFAULT_SUBJECT_RE.search(sentence)
        subject = found.group(1).strip() if found else ""
        if subject and not contains(subject, answer):
            return f"What is the default {subject}?"
        which = _WHICH_DEFAULTS_RE.search(sentence)
        if which and not contains(which.group(1), answer):
            return f"What does {which.group(1)} default to?"
        # Reference pages often title each setting with its name in backticks.
        if topic.startswith("`") and not contains(topic, answer):
            return f"What is the default value of {topic}?"
    if candidate.kind == "definition":
        found = _DEFINITION_SHAPE_RE.match(sentence)
        if found and contains(found.group("term"), answer):
            rest = _words(found.group("rest"), 18)
            if not contains(rest, answer):
                return f"What is the name for {found.group('article').lower()} {rest}?"
    if candidate.kind == "howto":
        found = _HOWTO_SHAPE_RE.match(sentence)
        if found and not contains(found.group("goal"), answer):
            return f"How do I {_words(found.group('goal'), 14)}?"
    masked = re.sub(re.escape(answer), "___", sentence, flags=re.IGNORECASE)
    masked = re.sub(r"`+___`+", "___", masked)
    words = masked.split()
    if len(words) > 30:
        blank = next((i for i, w in enumerate(words) if "___" in w), 0)
        start = max(0, min(blank - 12, len(words) - 30))
        words = words[start : start + 30]
    where = f" about {topic}" if topic else ""
    return f'In the documentation{where}, {FILL_IN_ASK}: "{" ".join(words)}"?'


FILL_IN_ASK = "what fills the blank"
_FILL_IN_RE = re.compile(
    rf'^In the documentation(?: about (?P<topic>.*?))?, {FILL_IN_ASK}: "(?P<text>.*)"\?$'
)


def search_text(question: str) -> str:
    """What a searcher would take from the question: for a fill-in, its topic and sentence
    without the frame and the blank (the frame's words are no search words)."""
    found = _FILL_IN_RE.match(question)
    if found is None:
        return question
    return f"{found.group('topic') or ''} {found.group('text').replace('___', ' ')}".strip()


_QUIZ_RE = re.compile(
    r"\b(?:of the following|correct answer|true or false|grammatically|this sentence)\b", re.I
)


def implausible(question: str, candidate: Candidate) -> str:
    """Why a teacher's question cannot be for this sentence and answer ('' when it can)."""
    if not question.endswith("?"):
        return "not_a_question"
    if contains(question, candidate.answer):
        return "answer_in_question"
    if _QUIZ_RE.search(question):
        return "quiz_phrasing"
    mine = words(question) - STOPWORDS
    example = words(render("dataset_question_example_answer")) - STOPWORDS
    if mine and len(mine & example) / len(mine) >= 0.5:
        return "copied_example"
    topic = words(candidate.sentence) - words(candidate.answer) - STOPWORDS
    if len(mine & topic) < min(2, len(topic)):
        return "off_topic"
    return ""


class Generator:
    """Holds what one generation run needs; ``run`` yields its events."""

    def __init__(
        self,
        spec: GenerateSpec,
        dataset: Dataset,
        *,
        chunks: list[tuple[str, str, dict[str, Any]]],
        search: Callable[[str, int], list[Hit]],
        retriever: Any,
        teacher: Teacher | None,
        config: AppConfig,
        count_tokens: Callable[[str], int],
        cancel: threading.Event | None = None,
    ) -> None:
        self.spec = spec
        self.dataset = dataset
        self.chunks = chunks
        self.retriever = retriever
        self.teacher = teacher
        self.config = config
        self.count_tokens = count_tokens
        self.cancel = cancel
        self.verifier = Verifier(search, k=spec.k or config.retrieval.k)
        self._df_cache: dict[str, int] = {}
        self._normalised = [normalise(text) for _, text, _ in chunks]
        self.kinds: Counter[str] = Counter()
        self.teacher_errors: Counter[str] = Counter()
        """Why a pair-writing teacher gave nothing for a chunk (the answer-first path ran)."""
        self.used_seconds: set[str] = set()
        """Answer chunks (and their copies) a kept two-hop question already asks about."""

    # -- helpers --

    def _document_frequency(self, answer: str) -> int:
        key = normalise(answer)
        if key not in self._df_cache:
            self._df_cache[key] = sum(1 for text in self._normalised if key in text)
        return self._df_cache[key]

    def _surplus(self, kind: str) -> float:
        """How far a kind is ahead of its share of the mix (negative: it lags behind)."""
        weights = self.spec.kinds
        share = weights.get(kind, 0.0) / sum(weights.values())
        return self.kinds[kind] / (sum(self.kinds.values()) + 1) - share

    def _ordered(self, found: list[Candidate]) -> list[Candidate]:
        """Rarest answers first, kinds the mix still lacks before the others."""
        weights = self.spec.kinds
        limit = max(3, int(TOO_COMMON_SHARE * len(self.chunks)))
        usable = [
            c
            for c in found
            if weights.get(c.kind, 0.0) > 0 and self._document_frequency(c.answer) <= limit
        ]
        return sorted(
            usable, key=lambda c: (self._surplus(c.kind), self._document_frequency(c.answer))
        )

    def _teacher_question(self, candidate: Candidate) -> tuple[str, str]:
        """The teacher's question, or ``("", reason)`` when it wrote nothing usable."""
        if self.teacher is None:
            return "", ""
        if candidate.question:
            return candidate.question, implausible(candidate.question, candidate)
        try:
            question = self.teacher.question(candidate)
        except TeacherError as exc:
            return "", exc.reason
        return question, implausible(question, candidate)

    def _teacher_pair(self, seed: Seed) -> Candidate | None:
        """A stronger teacher's own question and answer for the chunk, as a candidate (the
        answer must still be found in the chunk: verification checks it)."""
        if self.teacher is None or not self.teacher.writes_pairs:
            return None
        single = [k for k, w in self.spec.kinds.items() if w > 0 and k in SINGLE_KINDS]
        if not single:
            return None
        kind = min(single, key=self._surplus)
        try:
            question, answer = self.teacher.pair(seed.text, seed.heading, kind)
        except TeacherError as exc:
            self.teacher_errors[exc.reason] += 1
            return None
        sentence = next(
            (s for s in sentences(seed.text) if contains(s, answer)), " ".join(seed.text.split())
        )
        return Candidate(sentence, answer, kind, question=question)

    # -- the run --

    def _resume(self) -> tuple[set[str], list[dict[str, Any]]]:
        """What earlier runs of this dataset decided (seed keys) and kept (examples), with
        the kept questions and kinds taken into account; the knowledge base must hold text."""
        if not self.chunks:
            raise EmptyKnowledgeBase(
                f"Knowledge base {self.spec.kb!r} has no documents; index some first."
            )
        kept = self.dataset.examples()
        for example in kept:
            self.verifier.keep(str(example.get("question", "")))
            self.kinds[str(example.get("kind", ""))] += 1
            if example.get("kind") == TWOHOP:
                self.used_seconds.add(str(example.get("chunk_id", "")))
        return self.dataset.decided_seeds(), kept

    def run(self) -> Iterator[GenEvent]:
        decided, kept = self._resume()
        seeds = seeds_from(self.chunks, self.spec)
        if not seeds:
            raise EmptyKnowledgeBase(
                f"Knowledge base {self.spec.kb!r} has no chunk long enough to ask about "
                f"(at least {MIN_SEED_CHARS} characters) among the chosen documents."
            )
        done_chunks = {key.split("|", 1)[0] for key in decided}
        pending = self._bridges(decided) if self.spec.kinds.get(TWOHOP, 0.0) > 0 else []
        single = any(self.spec.kinds.get(k, 0.0) > 0 for k in SINGLE_KINDS)
        self._count = [len(kept), len(self.dataset.rejections()), 0]
        total = (len(seeds) if single else 0) + len(pending)
        self._started = time.monotonic()
        done = 0
        for seed in seeds if single else [None]:
            if self._stopped():
                break
            # Two-hop questions take their turn whenever they lag behind their share.
            while pending and not self._stopped() and (not single or self._twohop_lags()):
                bridge = pending.pop(0)
                done += 1
                if bridge.second_ids & self.used_seconds:
                    continue  # one question per answer chunk: spread over the documents
                yield from self._decide(
                    self._twohop(bridge), bridge.key, TWOHOP, self._twohop_row(bridge)
                )
                yield self._progress(done, total)
            if seed is None or self._stopped():
                continue
            tries = 0
            found = self._ordered(list(candidates(seed.text)))
            # A chunk an earlier run decided costs the (maybe remote) teacher nothing again.
            pair = None if seed.chunk_id in done_chunks else self._teacher_pair(seed)
            for candidate in [*([pair] if pair is not None else []), *found]:
                if tries >= MAX_TRIES_PER_CHUNK or (
                    self.cancel is not None and self.cancel.is_set()
                ):
                    break
                key = f"{seed.chunk_id}|{candidate.kind}|{candidate.answer}"
                if key in decided:
                    continue
                tries += 1
                row = {"chunk_id": seed.chunk_id, "source": seed.source}
                outcome = self._one(seed, candidate, key)
                yield from self._decide(outcome, key, candidate.kind, row)
                if not isinstance(outcome, Rejection):
                    break  # one example per chunk: spread over the knowledge base
            done += 1
            yield self._progress(done, total)

    def _stopped(self) -> bool:
        return self._count[0] >= self.spec.count or (
            self.cancel is not None and self.cancel.is_set()
        )

    def _decide(
        self, outcome: dict[str, Any] | Rejection, key: str, kind: str, row: dict[str, Any]
    ) -> Iterator[GenEvent]:
        """Store an example or a rejection (before its event is yielded)."""
        if isinstance(outcome, Rejection):
            self._count[1] += 1
            self.dataset.append_rejection(
                {
                    "seed_key": key,
                    "reason": outcome.reason,
                    "detail": outcome.detail,
                    **row,
                    "kind": kind,
                }
            )
            yield Rejected(outcome.reason, outcome.detail)
            return
        self.dataset.append_example(outcome)
        self._count[0] += 1
        self._count[2] += 1
        self.kinds[kind] += 1
        if kind == TWOHOP:
            self.used_seconds.add(str(outcome["chunk_id"]))
        yield Accepted(outcome)

    def _progress(self, done: int, total: int) -> Progress:
        accepted, rejected, new = self._count
        elapsed = time.monotonic() - self._started
        rate = new / elapsed * 60 if elapsed > 0 else 0.0
        left = self.spec.count - accepted
        return Progress(
            accepted,
            rejected,
            self.spec.count,
            done,
            total,
            rate,
            left / rate * 60 if rate > 0 and left > 0 else (0.0 if left <= 0 else None),
        )

    # -- two hops --

    def _twohop_lags(self) -> bool:
        """True when two-hop questions lag furthest behind their share of the mix."""
        others = [self._surplus(k) for k in SINGLE_KINDS if self.spec.kinds.get(k, 0.0) > 0]
        return self._surplus(TWOHOP) < 0 and self._surplus(TWOHOP) <= min(others, default=0.0)

    def _bridges(self, decided: set[str]) -> list[twohop.Bridge]:
        parts = [
            twohop.Part(
                chunk_id,
                text,
                str(meta.get("source", "")),
                str(meta.get("doc_hash", "")),
                str(meta.get("heading", "")),
            )
            for chunk_id, text, meta in self.chunks
            if self._chosen(str(meta.get("source", "")))
        ]
        limit = max(3, int(TOO_COMMON_SHARE * len(self.chunks)))
        found = twohop.bridges(
            parts,
            seed=self.spec.seed,
            split=lambda source: split_of(source, self.spec.seed, self.spec.validation_share),
            common=lambda answer: self._document_frequency(answer) > limit,
        )
        return [b for b in found if b.key not in decided]

    def _chosen(self, source: str) -> bool:
        if self.spec.documents and not any(_same_doc(source, d) for d in self.spec.documents):
            return False
        return not any(_same_doc(source, d) for d in self.spec.exclude)

    @staticmethod
    def _twohop_row(bridge: twohop.Bridge) -> dict[str, Any]:
        return {
            "chunk_id": bridge.second.chunk_id,
            "chunk_ids": [bridge.first.chunk_id, bridge.second.chunk_id],
            "source": bridge.second.source,
        }

    def _bridge_question(self, bridge: twohop.Bridge) -> tuple[str, str, str]:
        """A pair-writing teacher's bridge question when it passes the plausibility checks,
        else the template's: ``(question, origin, why the teacher's was not used)``."""
        write = getattr(self.teacher, "bridge_question", None)
        failure = ""
        if self.teacher is not None and self.teacher.writes_pairs and write is not None:
            try:
                question = write(
                    twohop.first_quote(bridge), bridge.answer.sentence, bridge.answer.answer
                )
            except TeacherError as exc:
                failure = exc.reason
            else:
                if not question.endswith("?"):
                    failure = "not_a_question"
                elif contains(question, bridge.answer.answer):
                    failure = "answer_in_question"
                elif contains(question, bridge.bare_term):
                    failure = "bridge_in_question"
                else:
                    return question, "teacher", ""
        return twohop.template_question(bridge), "template", failure

    def _twohop(
        self, bridge: twohop.Bridge, asked: tuple[str, str, str] | None = None
    ) -> dict[str, Any] | Rejection:
        """Check a bridge question, trace both hops through the real retrieval, and build
        the example (``chunk_id``: the answer's chunk; ``chunk_ids``: both). ``asked``: the
        question already written (question, origin, teacher failure), for a re-trace."""
        question, question_origin, failure = asked or self._bridge_question(bridge)
        fact = bridge.answer
        second_query = twohop.second_query(bridge)
        rejection, rank = self.verifier.check_twohop(
            question,
            fact.answer,
            term=bridge.bare_term,
            first_text=bridge.first.text,
            second_text=bridge.second.text,
            first_ids=bridge.first_ids,
            second_ids=bridge.second_ids,
            second_query=second_query,
        )
        if rejection is not None:
            return rejection
        first_search = twohop.search_text(question)
        first_queries = list(
            {q.casefold(): q for q in (keywords(first_search), seed_query(question)) if q}.values()
        )
        plan = TwoHopPlan(
            question=question,
            answer=fact.answer,
            term=bridge.term.strip("`"),
            first_sentence=bridge.first_sentence,
            second_sentence=fact.sentence,
            first_ids=bridge.first_ids,
            second_ids=bridge.second_ids,
            first_queries=first_queries,
            second_queries=list(
                {q.casefold(): q for q in (second_query, bridge.bare_term)}.values()
            ),
            kind=fact.kind,
        )
        record, gold = construct_twohop_trace(plan, self.retriever, self.config, self.count_tokens)
        if record.protocol_errors:
            return Rejection("trace_protocol_error", record.protocol_errors[0].kind)
        if len(gold) < 2:
            return Rejection("trace_missed_gold", "no search of the trace found both chunks")
        if not contains(record.answer, fact.answer):
            return Rejection("trace_answer", "the answer lost the gold answer")
        self.verifier.keep(question)
        first_id, second_id = (record.passages[n].id for n in gold)
        second = twohop.Part(
            second_id,
            bridge.second.text,
            record.passages[gold[1]].source,
            str(record.passages[gold[1]].extra.get("doc_hash", bridge.second.doc_hash)),
            bridge.second.heading,
        )
        seed = Seed(second.chunk_id, second.text, second.source, second.doc_hash, second.heading)
        example = self._example(
            bridge.key,
            seed,
            question,
            fact.answer,
            fact.sentence,
            TWOHOP,
            question_origin,
            failure,
            rank,
            record,
            None,
            unanswerable=False,
            origin="constructed",
        )
        example["chunk_ids"] = [first_id, second_id]
        example["gold_numbers"] = list(gold)
        example["bridge"] = {
            "term": bridge.term.strip("`"),
            # As the first chunk writes it: a re-trace rebuilds the same question from it.
            "written": bridge.term,
            "chunk_id": first_id,
            "source": record.passages[gold[0]].source,
            "sentence": bridge.first_sentence,
            "fact_kind": fact.kind,
        }
        return example

    def _one(self, seed: Seed, candidate: Candidate, key: str) -> dict[str, Any] | Rejection:
        """The teacher's question first; when it fails a check, the one built from the
        sentence (the rejection counted is the fallback's)."""
        question, failure = self._teacher_question(candidate)
        if question and not failure:
            outcome = self._verified(
                seed,
                question,
                candidate.answer,
                candidate.sentence,
                candidate.kind,
                key,
                question_origin="teacher",
            )
            if not isinstance(outcome, Rejection):
                return outcome
            failure = outcome.reason
        return self._verified(
            seed,
            template_question(candidate, seed.heading),
            candidate.answer,
            candidate.sentence,
            candidate.kind,
            key,
            question_origin="template",
            teacher_failure=failure,
        )

    def _verified(
        self,
        seed: Seed,
        question: str,
        answer: str,
        sentence: str,
        kind: str,
        key: str,
        *,
        question_origin: str,
        teacher_failure: str = "",
    ) -> dict[str, Any] | Rejection:
        """Check a question, trace it through the real retrieval, and build the example."""
        rejection, rank = self.verifier.check(question, answer, seed.text, seed.chunk_id)
        if rejection is not None:
            return rejection
        plan = TracePlan(
            question=question,
            answer=answer,
            sentence=sentence,
            gold_id=seed.chunk_id,
            kind=kind,
            heading=seed.heading,
            query_source=search_text(question),
        )
        # Drawn from the chunk's content and position, not its id (which hashes the file's
        # path): the same documents and seed make the same dataset wherever they are.
        index = seed.chunk_id.rsplit("-", 1)[-1]
        where = f"{seed.doc_hash}:{index}"
        unanswerable = (
            keyed_share(key.replace(seed.chunk_id, where, 1), self.spec.seed)
            < self.spec.unanswerable_share
        )
        written = None if unanswerable else self._teacher_trace(question, answer, seed.chunk_id)
        gold: int | None
        if written is not None:
            (record, gold), origin = written, "teacher"
        else:
            record, found = construct_trace(
                plan,
                self.retriever,
                self.config,
                self.count_tokens,
                leave_out=seed.source if unanswerable else "",
            )
            gold, origin = found, "constructed"
            if record.protocol_errors:
                return Rejection("trace_protocol_error", record.protocol_errors[0].kind)
            if unanswerable:
                if record.results or record.answer != UNANSWERED:
                    return Rejection("trace_answer", "the unanswerable trace vetted a passage")
            elif gold is None:
                return Rejection(
                    "trace_missed_gold", "no search of the trace found the source chunk"
                )
            elif not contains(record.answer, answer):
                return Rejection("trace_answer", "the answer lost the gold answer")
        self.verifier.keep(question)
        return self._example(
            key,
            seed,
            question,
            answer,
            sentence,
            kind,
            question_origin,
            teacher_failure,
            rank,
            record,
            gold,
            unanswerable=unanswerable,
            origin=origin,
        )

    def _teacher_trace(
        self, question: str, answer: str, chunk_id: str
    ) -> tuple[RunRecord, int] | None:
        """The teacher model runs the real loop on the question; its trace is kept when it
        is clean, vets the source chunk and answers with the gold answer."""
        backend = getattr(self.teacher, "backend", None)
        if not self.spec.teacher_traces or backend is None:
            return None
        agent = Agent(
            backend,
            self.retriever,
            self.config,
            grammar=backend.capabilities.constrained == "gbnf",
            first_query="model",
            model_id=getattr(self.teacher, "name", backend.name),
        )
        record = RunRecord(question=question, mode="loop")
        try:
            for event in agent.run(question, cancel=self.cancel):
                record.add(event)
        except Exception as exc:  # a teacher that fails is a fallback, never a stop
            self.teacher_errors[f"trace:{type(exc).__name__}"] += 1
            return None
        passages = record.passages
        gold = next((n for n in record.results if passages[n].id == chunk_id), None)
        if record.protocol_errors:
            self.teacher_errors["trace:protocol_error"] += 1
        elif gold is None:
            self.teacher_errors["trace:missed_gold"] += 1
        elif not contains(record.answer, answer):
            self.teacher_errors["trace:wrong_answer"] += 1
        else:
            return record, gold
        return None

    def _example(
        self,
        key: str,
        seed: Seed,
        question: str,
        answer: str,
        sentence: str,
        kind: str,
        question_origin: str,
        teacher_failure: str,
        rank: int | None,
        record: RunRecord,
        gold: int | None,
        *,
        unanswerable: bool,
        origin: str,
    ) -> dict[str, Any]:
        return {
            "version": EXAMPLE_VERSION,
            "id": hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:12],
            "seed_key": key,
            "kind": kind,
            "question": question,
            "answer": UNANSWERED if unanswerable else answer,
            "gold_answer": answer,
            "unanswerable": unanswerable,
            "sentence": sentence,
            "question_origin": question_origin,
            "teacher_failure": teacher_failure,
            "trace_origin": origin,
            "status": "verified",
            "source": seed.source,
            "doc_hash": seed.doc_hash,
            "chunk_id": seed.chunk_id,
            "gold_numbers": [] if gold is None else [gold],
            "round_trip_rank": rank,
            "rounds": record.stats.rounds,
            "split": split_of(seed.source, self.spec.seed, self.spec.validation_share),
            "template_version": prompts.template_version(),
            "record": record.to_dict(),
        }

    # -- imported pairs --

    def run_pairs(self, pairs: list[ImportedPair]) -> Iterator[GenEvent]:
        """Imported question/answer pairs through the same checks and real retrieval: the
        source chunk is the best-ranked passage that contains the answer."""
        decided, _ = self._resume()
        accepted = rejected = new = 0
        started = time.monotonic()
        k = self.spec.k or self.config.retrieval.k
        for index, pair in enumerate(pairs, 1):
            if self.cancel is not None and self.cancel.is_set():
                break
            key = pair_key(pair)
            if key in decided:
                continue
            outcome = self._imported(pair, key, k)
            if isinstance(outcome, Rejection):
                rejected += 1
                self.dataset.append_rejection(
                    {
                        "seed_key": key,
                        "reason": outcome.reason,
                        "detail": outcome.detail,
                        "question": pair.question,
                        "answer": pair.answer,
                        "kind": "imported",
                        "question_origin": pair.origin,
                        **({"import_ref": pair.ref} if pair.ref else {}),
                    }
                )
                yield Rejected(outcome.reason, outcome.detail)
            else:
                self.dataset.append_example(outcome)
                accepted += 1
                new += 1
                yield Accepted(outcome)
            elapsed = time.monotonic() - started
            rate = new / elapsed * 60 if elapsed > 0 else 0.0
            left = len(pairs) - index
            yield Progress(
                accepted,
                rejected,
                len(pairs),
                index,
                len(pairs),
                rate,
                left / (index / elapsed) if elapsed > 0 and left else 0.0,
            )

    def retrace(self, examples: list[dict[str, Any]]) -> Iterator[GenEvent]:
        """Another dataset's examples made again through today's retrieval: the same verified
        question, answer, gold chunk and seed key (so the same unanswerable draw), a new trace
        whose passages are what the search returns now (after a re-embed, say). An example
        whose gold chunk is gone or whose checks now fail is rejected with its reason."""
        decided, _ = self._resume()
        by_id = {cid: (text, meta) for cid, text, meta in self.chunks}
        by_text = {
            (str(meta.get("source", "")), normalise(text)): cid for cid, text, meta in self.chunks
        }
        accepted = rejected = 0
        started = time.monotonic()
        for index, example in enumerate(examples, 1):
            if self.cancel is not None and self.cancel.is_set():
                break
            key = str(example.get("seed_key", ""))
            if not key or key in decided:
                continue
            outcome = self._retraced(_relinked(example, by_id, by_text), key, by_id)
            if isinstance(outcome, Rejection):
                rejected += 1
                self.dataset.append_rejection(
                    {
                        "seed_key": key,
                        "reason": outcome.reason,
                        "detail": outcome.detail,
                        "question": example.get("question", ""),
                        "answer": example.get("answer", ""),
                        "kind": example.get("kind", ""),
                    }
                )
                yield Rejected(outcome.reason, outcome.detail)
            else:
                self.dataset.append_example(outcome)
                accepted += 1
                yield Accepted(outcome)
            elapsed = time.monotonic() - started
            left = len(examples) - index
            yield Progress(
                accepted,
                rejected,
                len(examples),
                index,
                len(examples),
                (accepted + rejected) / elapsed * 60 if elapsed > 0 else 0.0,
                left / (index / elapsed) if elapsed > 0 and left else 0.0,
            )

    def _retraced(
        self,
        example: dict[str, Any],
        key: str,
        by_id: dict[str, tuple[str, dict[str, Any]]],
    ) -> dict[str, Any] | Rejection:
        cid = str(example.get("chunk_id", ""))
        try:
            if example.get("kind") == TWOHOP:
                asked = (
                    str(example["question"]),
                    str(example.get("question_origin", "template")),
                    str(example.get("teacher_failure", "")),
                )
                found = self._twohop(_bridge_of(example, by_id), asked)
                if not isinstance(found, Rejection):
                    found["seed_key"] = key  # the source example's, so a re-run skips it
                return found
            text, meta = by_id[cid]
        except KeyError as exc:
            return Rejection(
                "gold_chunk_gone", f"chunk {exc.args[0]} is no longer in the knowledge base"
            )
        seed = Seed(
            cid,
            text,
            str(meta.get("source", "")),
            str(meta.get("doc_hash", "")),
            str(meta.get("heading", "")),
        )
        return self._verified(
            seed,
            str(example["question"]),
            str(example["answer"]),
            str(example.get("sentence", "")),
            str(example.get("kind", "lookup")),
            key,
            question_origin=str(example.get("question_origin", "template")),
            teacher_failure=str(example.get("teacher_failure", "")),
        )

    def _imported(self, pair: ImportedPair, key: str, k: int) -> dict[str, Any] | Rejection:
        hits = self.verifier.search(pair.question, k)
        gold = next((h for h in hits if contains(h.text, pair.answer)), None)
        if gold is None:
            return Rejection(
                "answer_not_found",
                f"no passage in the top {k} for the question contains the answer",
            )
        sentence = next(
            (s for s in sentences(gold.text) if contains(s, pair.answer)),
            " ".join(gold.text.split()),
        )
        seed = Seed(
            gold.id, gold.text, gold.source, str(gold.extra.get("doc_hash", "")), gold.heading
        )
        outcome = self._verified(
            seed,
            pair.question,
            pair.answer,
            sentence,
            "imported",
            key,
            question_origin=pair.origin,
        )
        if isinstance(outcome, Rejection):
            return outcome
        if pair.ref:
            outcome["import_ref"] = pair.ref
        if pair.cited:
            outcome = _with_cited(outcome, pair)
        return outcome


def _relinked(
    example: dict[str, Any],
    by_id: dict[str, tuple[str, dict[str, Any]]],
    by_text: dict[tuple[str, str], str],
) -> dict[str, Any]:
    """The example with gold chunk ids that no longer exist (the document was re-chunked
    since, under new ids) replaced by today's chunk with the same source and text."""
    shown = {
        str(h.get("id", "")): h
        for r in (example.get("record") or {}).get("retrievals", [])
        for h in r.get("hits", [])
    }

    def now(cid: str) -> str:
        if cid in by_id or cid not in shown:
            return cid
        hit = shown[cid]
        return by_text.get((str(hit.get("source", "")), normalise(str(hit.get("text", "")))), cid)

    out = dict(example)
    out["chunk_id"] = now(str(example.get("chunk_id", "")))
    if example.get("chunk_ids"):
        out["chunk_ids"] = [now(str(c)) for c in example["chunk_ids"]]
    return out


def _bridge_of(
    example: dict[str, Any], by_id: dict[str, tuple[str, dict[str, Any]]]
) -> twohop.Bridge:
    """A two-hop example's bridge, rebuilt from its record and today's chunks (KeyError: a
    chunk it names is gone)."""

    def part(cid: str) -> twohop.Part:
        text, meta = by_id[cid]
        return twohop.Part(
            cid,
            text,
            str(meta.get("source", "")),
            str(meta.get("doc_hash", "")),
            str(meta.get("heading", "")),
        )

    def copies(text: str) -> frozenset[str]:
        return frozenset(c for c, (t, _) in by_id.items() if t == text)

    info = example.get("bridge") or {}
    first = part(str((example.get("chunk_ids") or [info.get("chunk_id", "")])[0]))
    second = part(str(example.get("chunk_id", "")))
    fact = Candidate(
        str(example.get("sentence", "")),
        str(example["answer"]),
        str(info.get("fact_kind", "lookup")),
    )
    return twohop.Bridge(
        first,
        str(info.get("sentence", "")),
        str(info.get("written", info.get("term", ""))),
        second,
        fact,
        copies(first.text),
        copies(second.text),
    )


def _with_cited(example: dict[str, Any], pair: ImportedPair) -> dict[str, Any]:
    """The example with the user's own cited answer as its answer stage, its ``[n]``
    renumbered onto the new trace's passages; where it does not fit (it cites a passage
    the new trace does not vet), the constructed answer stays and ``cited_note`` says why."""
    cited = pair.cited
    if pair.cited_chunks:
        record = RunRecord.from_dict(example["record"])
        by_chunk = {record.passages[n].id: n for n in record.results if n in record.passages}
        mapping = {old: by_chunk[chunk] for old, chunk in pair.cited_chunks if chunk in by_chunk}
        renumbered = renumber_citations(cited, mapping)
        if renumbered is None:
            example["cited_note"] = (
                "the corrected cited answer cites a passage this trace does not vet"
            )
            return example
        cited = renumbered
    try:
        return edited(example, question=pair.question, answer=pair.answer, cited=cited)
    except EditRejected as exc:
        example["cited_note"] = str(exc)
        return example


@dataclass(frozen=True)
class ImportedPair:
    question: str
    answer: str
    context: str = ""
    source: str = ""
    origin: str = "import"
    """The example's ``question_origin``: ``import`` (a file) or ``conversation``."""
    ref: str = ""
    """Where the pair came from (``conversation ID turn N``), kept on its example or
    rejection so a user can find it again."""
    cited: str = ""
    """The user's own cited answer: the answer stage, when it fits the new trace."""
    cited_chunks: tuple[tuple[int, str], ...] = ()
    """``(number, chunk id)`` of the passages ``cited`` cites, in the run it was written
    for: its ``[n]`` are renumbered onto the new trace (empty: used as written)."""


def pair_key(pair: ImportedPair) -> str:
    """The key an imported pair is decided under (a re-run skips it)."""
    digest = hashlib.sha1(f"{pair.question}\0{pair.answer}".encode(), usedforsecurity=False)
    return "import|" + digest.hexdigest()


def spec_dict(spec: GenerateSpec) -> dict[str, Any]:
    return asdict(spec)
