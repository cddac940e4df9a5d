"""An example from a checked question: the question checked (the answer is in the source
chunk, searching with the question finds it), a trace through the real retriever (a
teacher's own run of the loop when it is right, else one constructed), the example built
around the trace. Single-chunk and two-hop questions alike."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from core.agent import prompts
from core.agent.loop import Agent, seed_query
from core.agent.record import RunRecord
from core.config import AppConfig
from core.dataset import twohop
from core.dataset.candidates import TWOHOP
from core.dataset.construct import (
    UNANSWERED,
    TracePlan,
    TwoHopPlan,
    construct_trace,
    construct_twohop_trace,
    keywords,
)
from core.dataset.draws import Splits, keyed_share
from core.dataset.questions import search_text
from core.dataset.rewrite import Rewrite, Rewriter
from core.dataset.seeds import Seed
from core.dataset.spec import GenerateSpec
from core.dataset.teacher import Teacher, TeacherError
from core.dataset.verify import Rejection, Verifier, contains

EXAMPLE_VERSION = 1


class Tracer:
    """What tracing needs: the run's spec, the verifier, the retriever, the teacher."""

    def __init__(
        self,
        spec: GenerateSpec,
        verifier: Verifier,
        *,
        retriever: Any,
        teacher: Teacher | None,
        config: AppConfig,
        count_tokens: Callable[[str], int],
        cancel: threading.Event | None = None,
        rewriter: Rewriter | None = None,
    ) -> None:
        self.spec = spec
        self.rewriter = rewriter
        """Restates each new question in the writer's words (None: the step is off)."""
        self.verifier = verifier
        self.retriever = retriever
        self.teacher = teacher
        self.config = config
        self.count_tokens = count_tokens
        self.cancel = cancel
        self.teacher_errors: Counter[str] = Counter()
        """Why a teacher gave nothing usable (a template or a constructed trace ran)."""
        self.splits = Splits(spec.seed, spec.validation_share)
        """Each document's split (the generator plans them for its run)."""

    def bridge_question(self, bridge: twohop.Bridge) -> tuple[str, str, str]:
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

    def twohop(
        self, bridge: twohop.Bridge, asked: tuple[str, str, str] | None = None
    ) -> dict[str, Any] | Rejection:
        """Check a bridge question, trace both hops through the real retrieval, and build
        the example (``chunk_id``: the answer's chunk; ``chunk_ids``: both). ``asked``: the
        question already written (question, origin, teacher failure), for a re-trace."""
        question, question_origin, failure = asked or self.bridge_question(bridge)
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
        example = self.example(
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

    def verified(
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
        rewrite: bool = False,
    ) -> dict[str, Any] | Rejection:
        """Check a question, trace it through the real retrieval, and build the example.
        With ``rewrite`` (and a rewriter), the checked question is first restated in the
        writer's words; the example is traced with whichever question the step keeps."""
        rejection, rank = self.verifier.check(question, answer, seed.text, seed.chunk_id)
        if rejection is not None:
            return rejection
        restated: Rewrite | None = None
        if rewrite and self.rewriter is not None:
            restated = self.rewriter.restate(
                question, answer, sentence, seed.text, seed.chunk_id, rank
            )
            question, rank = restated.question, restated.rank
        traced = self._traced(seed, question, answer, sentence, kind, key)
        if isinstance(traced, Rejection) and restated is not None and restated.rewritten:
            # The rewrite finds its chunk, but no trace of it does: the question as it was.
            restated = restated.not_kept("trace_failed")
            question, rank = restated.question, restated.rank
            traced = self._traced(seed, question, answer, sentence, kind, key)
        if isinstance(traced, Rejection):
            return traced
        record, gold, unanswerable, origin = traced
        self.verifier.keep(question)
        example = self.example(
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
        if restated is not None:
            example.update(restated.fields())
        return example

    def _traced(
        self, seed: Seed, question: str, answer: str, sentence: str, kind: str, key: str
    ) -> tuple[RunRecord, int | None, bool, str] | Rejection:
        """The question's trace: ``(record, gold passage number, unanswerable, origin)``, or
        why none could be made."""
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
        written = None if unanswerable else self.teacher_trace(question, answer, seed.chunk_id)
        if written is not None:
            return written[0], written[1], False, "teacher"
        record, gold = construct_trace(
            plan,
            self.retriever,
            self.config,
            self.count_tokens,
            leave_out=seed.source if unanswerable else "",
        )
        if record.protocol_errors:
            return Rejection("trace_protocol_error", record.protocol_errors[0].kind)
        if unanswerable:
            if record.results or record.answer != UNANSWERED:
                return Rejection("trace_answer", "the unanswerable trace vetted a passage")
        elif gold is None:
            return Rejection("trace_missed_gold", "no search of the trace found the source chunk")
        elif not contains(record.answer, answer):
            return Rejection("trace_answer", "the answer lost the gold answer")
        return record, gold, unanswerable, "constructed"

    def teacher_trace(
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

    def example(
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
            "split": self.splits.of(seed.source),
            "template_version": prompts.template_version(),
            "record": record.to_dict(),
        }
