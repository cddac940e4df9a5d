"""From a knowledge base to verified examples: seeds → question → checks → trace → folder.

``Generator.run`` is an iterator of progress events (the CLI prints them, the Dataset tab
draws them); every accepted example is on disk before its event is yielded, so a Cancel,
a crash or a kill loses nothing already accepted, and a re-run with the same name
continues where it stopped (decided seeds are skipped). The same generator traces
imported pairs (:mod:`core.dataset.pairs`) and retraces another dataset's examples
(:mod:`core.dataset.retrace`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from core.config import AppConfig
from core.dataset import twohop
from core.dataset.candidates import SINGLE_KINDS, TWOHOP, Candidate, candidates, sentences
from core.dataset.decisions import Decisions
from core.dataset.draws import plan_splits
from core.dataset.pairs import ImportedPair, run_pairs
from core.dataset.progress import GenEvent, Progress, Stopwatch
from core.dataset.questions import implausible, template_question
from core.dataset.retrace import retrace
from core.dataset.rewrite import Rewriter, writer_of
from core.dataset.sampling import NONE_KEPT, SAMPLED, Sampler, Tally
from core.dataset.seeds import MIN_SEED_CHARS, Seed, seeds_from
from core.dataset.spec import EmptyKnowledgeBase, GenerateSpec
from core.dataset.storage import Dataset
from core.dataset.teacher import Teacher, TeacherError
from core.dataset.tracing import Tracer
from core.dataset.verify import Rejection, Verifier, contains, normalise
from core.knowledge.types import Hit

MAX_TRIES_PER_CHUNK = 3
TOO_COMMON_SHARE = 0.03
"""An answer found in more than this share of chunks (``package.json``) asks nothing specific."""


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
        sampler: Sampler | None = None,
    ) -> None:
        """``sampler``: the model to be tuned runs each accepted question and its best
        verified run becomes the trace (``spec.samples`` > 0)."""
        self.spec = spec
        self.dataset = dataset
        self.chunks = chunks
        self.teacher = teacher
        self.cancel = cancel
        verifier = Verifier(search, k=spec.k or config.retrieval.k)
        self.tracer = Tracer(
            spec,
            verifier,
            retriever=retriever,
            teacher=teacher,
            config=config,
            count_tokens=count_tokens,
            cancel=cancel,
            rewriter=self._rewriter(verifier),
        )
        self.decisions = Decisions(dataset)
        self.sampler = sampler
        self.tally = Tally(dataset, sampler.settings) if sampler is not None else None
        self._df_cache: dict[str, int] = {}
        self._normalised = [normalise(text) for _, text, _ in chunks]
        self._count = [0, 0, 0]
        self._clock = Stopwatch()

    @property
    def teacher_errors(self) -> Counter[str]:
        """Why a teacher gave nothing for a chunk or a trace (a template or a constructed
        trace was used instead)."""
        return self.tracer.teacher_errors

    # -- helpers --

    def _rewriter(self, verifier: Verifier) -> Rewriter | None:
        """The rewrite step's, when the spec asks for it (the teacher is the writer)."""
        if not self.spec.rewrite:
            return None
        return Rewriter(writer_of(self.teacher), verifier, self.spec.rewrite_max_overlap)

    def _document_frequency(self, answer: str) -> int:
        key = normalise(answer)
        if key not in self._df_cache:
            self._df_cache[key] = sum(1 for text in self._normalised if key in text)
        return self._df_cache[key]

    def _surplus(self, kind: str) -> float:
        """How far a kind is ahead of its share of the mix (negative: it lags behind)."""
        weights = self.spec.kinds
        share = weights.get(kind, 0.0) / sum(weights.values())
        return self.decisions.kinds[kind] / (sum(self.decisions.kinds.values()) + 1) - share

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
            self.tracer.teacher_errors[exc.reason] += 1
            return None
        sentence = next(
            (s for s in sentences(seed.text) if contains(s, answer)), " ".join(seed.text.split())
        )
        return Candidate(sentence, answer, kind, question=question)

    # -- the runs --

    def _resume(self) -> tuple[set[str], list[dict[str, Any]]]:
        """What earlier runs of this dataset decided (seed keys) and kept (examples), with
        the kept questions and kinds taken into account; the knowledge base must hold text."""
        if not self.chunks:
            raise EmptyKnowledgeBase(
                f"Knowledge base {self.spec.kb!r} has no documents; index some first."
            )
        decided, kept = self.decisions.resume(self.tracer.verifier)
        self._plan_splits(kept)
        return decided, kept

    def _plan_splits(self, kept: list[dict[str, Any]]) -> None:
        """The run's splits by document (:mod:`core.dataset.draws`: a small knowledge base
        still holds one document out); the documents it held out are kept in the meta."""
        # Only documents with a chunk long enough to ask about: a held-out document that
        # can never be asked about would leave the dataset without validation examples.
        documents = {
            str(m.get("source", "")) for _, text, m in self.chunks if len(text) >= MIN_SEED_CHARS
        }
        splits = plan_splits(
            (d for d in documents if self.spec.chosen(d)),
            self.spec.seed,
            self.spec.validation_share,
            existing={str(e.get("source", "")): str(e.get("split", "train")) for e in kept},
            held=self.dataset.meta.get("held_out", []),
        )
        self.tracer.splits = splits
        if sorted(splits.held) != sorted(self.dataset.meta.get("held_out", [])):
            self.dataset.meta["held_out"] = sorted(splits.held)
            self.dataset.save_meta()

    def run(self) -> Iterator[GenEvent]:
        decided, kept = self._resume()
        seeds = seeds_from(self.chunks, self.spec, first=self.tracer.splits.lead)
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
        self._clock = Stopwatch()
        done = 0
        with_examples = {str(e.get("source", "")) for e in kept}
        queue: list[Seed | None] = list(seeds) if single else [None]
        while queue:
            seed = queue.pop(0)
            if self._stopped():
                break
            # Two-hop questions take their turn whenever they lag behind their share.
            while pending and not self._stopped() and (not single or self._twohop_lags()):
                bridge = pending.pop(0)
                done += 1
                if bridge.second_ids & self.decisions.used_seconds:
                    continue  # one question per answer chunk: spread over the documents
                yield from self._decide(
                    self.tracer.twohop(bridge), bridge.key, TWOHOP, self._twohop_row(bridge)
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
                    with_examples.add(seed.source)
                    break  # one example per chunk: spread over the knowledge base
            if seed.source not in with_examples:
                queue = self._pass_hold_out(seed.source, queue, with_examples)
            done += 1
            yield self._progress(done, total)

    def _pass_hold_out(
        self, source: str, queue: list[Seed | None], with_examples: set[str]
    ) -> list[Seed | None]:
        """The held-out lead ``source`` has given no example and has no chunk left: the
        hold-out passes to the next free document (rule 5 of :mod:`core.dataset.draws`),
        whose chunks are asked about next. Returns the queue in its new order."""
        splits = self.tracer.splits
        left = [s for s in queue if s is not None]
        if source != splits.lead or any(s.source == source for s in left):
            return queue
        free = {s.source for s in left} - with_examples
        trained = any(splits.of(d) == "train" for d in with_examples)
        moved = splits.moved(source, free, trained=trained)
        if moved is splits:
            return queue
        self.tracer.splits = moved
        self.dataset.meta["held_out"] = sorted(moved.held)
        self.dataset.save_meta()
        first = [s for s in left if s.source == moved.lead]
        return [*first, *(s for s in queue if s is None or s.source != moved.lead)]

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
            yield self.decisions.reject(key, outcome, {**row, "kind": kind})
            return
        if self.sampler is not None and self.tally is not None:
            verdict = self.sampler.decide(outcome)
            self.tally.add(verdict)
            if verdict.outcome == "dropped":
                yield from self._decide(Rejection(NONE_KEPT, verdict.detail), key, kind, row)
                return
            if verdict.outcome in (SAMPLED, "fallback") and verdict.example is not None:
                outcome = verdict.example  # cancelled: the constructed trace, not decided
        event = self.decisions.accept(outcome)
        self._count[0] += 1
        self._count[2] += 1
        self.decisions.count(kind, outcome)
        yield event

    def _progress(self, done: int, total: int) -> Progress:
        accepted, rejected, new = self._count
        return self._clock.toward_count(accepted, rejected, new, self.spec.count, done, total)

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
            if self.spec.chosen(str(meta.get("source", "")))
        ]
        limit = max(3, int(TOO_COMMON_SHARE * len(self.chunks)))
        found = twohop.bridges(
            parts,
            seed=self.spec.seed,
            split=self.tracer.splits.of,
            common=lambda answer: self._document_frequency(answer) > limit,
        )
        return [b for b in found if b.key not in decided]

    @staticmethod
    def _twohop_row(bridge: twohop.Bridge) -> dict[str, Any]:
        return {
            "chunk_id": bridge.second.chunk_id,
            "chunk_ids": [bridge.first.chunk_id, bridge.second.chunk_id],
            "source": bridge.second.source,
        }

    def _one(self, seed: Seed, candidate: Candidate, key: str) -> dict[str, Any] | Rejection:
        """The teacher's question first; when it fails a check, the one built from the
        sentence (the rejection counted is the fallback's)."""
        question, failure = self._teacher_question(candidate)
        if question and not failure:
            outcome = self.tracer.verified(
                seed,
                question,
                candidate.answer,
                candidate.sentence,
                candidate.kind,
                key,
                question_origin="teacher",
                rewrite=True,
            )
            if not isinstance(outcome, Rejection):
                return outcome
            failure = outcome.reason
        return self.tracer.verified(
            seed,
            template_question(candidate, seed.heading),
            candidate.answer,
            candidate.sentence,
            candidate.kind,
            key,
            question_origin="template",
            teacher_failure=failure,
            rewrite=True,
        )

    def run_pairs(self, pairs: list[ImportedPair]) -> Iterator[GenEvent]:
        """Imported question/answer pairs through the same checks and real retrieval: the
        source chunk is the best-ranked passage that contains the answer."""
        decided, _ = self._resume()
        yield from run_pairs(self.tracer, self.decisions, decided, pairs, self.cancel)

    def retrace(self, examples: list[dict[str, Any]]) -> Iterator[GenEvent]:
        """Another dataset's examples made again through today's retrieval: the same verified
        question, answer, gold chunk and seed key (so the same unanswerable draw), a new trace
        whose passages are what the search returns now (after a re-embed, say). An example
        whose gold chunk is gone or whose checks now fail is rejected with its reason."""
        decided, _ = self._resume()
        yield from retrace(self.tracer, self.decisions, decided, self.chunks, examples, self.cancel)
