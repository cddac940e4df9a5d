"""What an embedder learns from: (question, the chunk that answers it, chunks that do not).

Every answerable example of a dataset names its gold chunk (``chunk_id``; the cited
passages of its trace are gold too) and its trace holds what the search really
returned for it. Those returned passages that are not gold, and whose text is not a
gold text (documentation repeats itself: a twin of the answer is no negative), are
the hard negatives. Texts are what the index embeds: heading, blank line, text.

Validation is the dataset's own validation split, which is by document: the
recall reported during a run is on questions about documents the embedder never
trained on, searched among the held-out documents' chunks, the distractors, and a
sample of the rest of the knowledge base.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.dataset.storage import Dataset, DatasetNotFound, DatasetStore
from core.errors import CotragError
from core.knowledge import embedder_catalog
from core.knowledge.knowledge_base import ChunkNotFound, KnowledgeBase
from core.knowledge.records import chunk_metadata_text
from core.knowledge.store import KnowledgeStore
from core.paths import DataLayout
from core.training.spec import SpecError, TrainSpec

if TYPE_CHECKING:
    from pathlib import Path


@dataclass
class Pair:
    question: str
    positive: str
    negatives: list[str]
    gold_ids: set[str]
    gold_texts: set[str]
    """Normalised raw texts of the gold chunks (a twin of one counts as found)."""
    source: str
    negative_texts: list[str] = field(default_factory=list)
    """Normalised raw texts of ``negatives``."""
    positive_text: str = ""
    """Normalised raw text of ``positive``."""


@dataclass
class Corpus:
    ids: list[str]
    texts: list[str]
    """What is embedded (heading and text)."""
    raw: list[str]
    """Normalised chunk texts, to recognise a gold chunk's twin."""


@dataclass
class EmbedderChecked:
    spec: TrainSpec
    dataset: Dataset
    base_path: Path
    base_name: str
    train: list[Pair]
    validation: list[Pair]
    corpus: Corpus
    skipped: dict[str, int] = field(default_factory=dict)
    kb_name: str = ""


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _indexed_text(text: str, heading: str) -> str:
    return f"{heading}\n\n{text}" if heading else text


def pair_of(example: dict[str, Any], kb: KnowledgeBase | None) -> Pair | str:
    """The example's training pair, or why it has none (a short reason)."""
    if example.get("unanswerable"):
        return "unanswerable"
    question = str(example.get("question", "")).strip()
    if not question:
        return "no question"
    record = example.get("record") or {}
    gold_ids = {str(example.get("chunk_id", ""))} | {str(c) for c in example.get("chunk_ids", [])}
    gold_ids.discard("")
    gold_numbers = set(example.get("gold_numbers") or record.get("results") or [])
    hits = [h for r in record.get("retrievals", []) for h in r.get("hits", [])]
    # The cited passages of the last retrieval that showed them are gold too.
    for h in hits:
        if h.get("number") in gold_numbers and h.get("id"):
            gold_ids.add(str(h["id"]))
    positive = positive_text = ""
    gold_texts: set[str] = set()
    for h in hits:
        if h.get("id") in gold_ids:
            text = _indexed_text(str(h.get("text", "")), str(h.get("heading", "")))
            gold_texts.add(_norm(str(h.get("text", ""))))
            if not positive and str(example.get("chunk_id", "")) in ("", h.get("id")):
                positive, positive_text = text, _norm(str(h.get("text", "")))
    if not positive and kb is not None and example.get("chunk_id"):
        try:
            hit = kb.get_chunk(str(example["chunk_id"]))
        except ChunkNotFound:
            return "gold chunk no longer indexed"
        positive, positive_text = _indexed_text(hit.text, hit.heading), _norm(hit.text)
        gold_texts.add(positive_text)
    if not positive:
        return "gold chunk not found"
    negatives: list[str] = []
    negative_texts: list[str] = []
    seen = set(gold_texts)
    for h in hits:
        text = str(h.get("text", ""))
        if h.get("id") in gold_ids or _norm(text) in seen:
            continue
        seen.add(_norm(text))
        negatives.append(_indexed_text(text, str(h.get("heading", ""))))
        negative_texts.append(_norm(text))
    return Pair(
        question,
        positive,
        negatives,
        gold_ids,
        gold_texts,
        str(example.get("source", "")),
        negative_texts,
        positive_text,
    )


def _held_out(source: str, seed: int, share: float) -> bool:
    digest = hashlib.sha256(f"{seed}:{source}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def split_pairs(
    examples: list[dict[str, Any]], kb: KnowledgeBase | None, spec: TrainSpec
) -> tuple[list[Pair], list[Pair], dict[str, int]]:
    train: list[Pair] = []
    validation: list[Pair] = []
    skipped: dict[str, int] = {}
    has_validation = any(e.get("split") == "validation" for e in examples)
    for example in examples:
        got = pair_of(example, kb)
        if isinstance(got, str):
            skipped[got] = skipped.get(got, 0) + 1
            continue
        if has_validation:
            held = example.get("split") == "validation"
        else:
            held = _held_out(got.source, spec.seed, spec.validation_share)
        (validation if held else train).append(got)
    return train, validation, skipped


def build_corpus(
    kb: KnowledgeBase | None, pairs: list[Pair], validation: list[Pair], size: int, seed: int
) -> Corpus:
    """The passages validation questions are searched among (see the module doc)."""
    ids: list[str] = []
    texts: list[str] = []
    raw: list[str] = []
    have: set[str] = set()

    def add(cid: str, text: str, plain: str) -> None:
        if cid not in have:
            have.add(cid)
            ids.append(cid)
            texts.append(text)
            raw.append(plain)

    held_sources = {p.source for p in validation}
    rest: list[tuple[str, str, str]] = []
    if kb is not None:
        for cid, text, meta in kb.iter_chunks():
            entry = (cid, chunk_metadata_text(text, meta), _norm(text))
            if meta.get("source") in held_sources:
                add(*entry)
            else:
                rest.append(entry)
    for n, pair in enumerate(validation):
        gold_id = min(pair.gold_ids) if pair.gold_ids else f"gold-{n}"
        add(gold_id, pair.positive, pair.positive_text)
        for m, (neg, plain) in enumerate(zip(pair.negatives, pair.negative_texts, strict=True)):
            add(f"neg-{n}-{m}", neg, plain)
    random.Random(seed).shuffle(rest)
    for entry in rest:
        if len(ids) >= size:
            break
        add(*entry)
    if kb is None:
        for n, pair in enumerate(pairs):
            if len(ids) >= size:
                break
            add(f"train-{n}", pair.positive, pair.positive_text)
    return Corpus(ids, texts, raw)


def check_embedder_job(
    layout: DataLayout, spec: TrainSpec, store: KnowledgeStore | None = None
) -> EmbedderChecked:
    """Raise SpecError with every problem, or return the pairs and the validation corpus.

    ``store``: the caller's open store (the app's), so no second Chroma client is opened in
    the same process; the worker, a process of its own, opens one."""
    problems = spec.problems()
    dataset: Dataset | None = None
    base_path: Path | None = None
    if spec.dataset.strip():
        try:
            dataset = DatasetStore(layout.datasets).open(spec.dataset)
        except (DatasetNotFound, CotragError) as exc:
            problems.append(f"dataset: {exc}")
    base_name = "" if spec.base in ("", "default") else spec.base
    try:
        base_path = embedder_catalog.resolve(layout, base_name)
    except CotragError as exc:
        problems.append(f"base: {exc}")
    if problems or dataset is None or base_path is None:
        raise SpecError(problems or ["The job cannot start."])
    kb_name = spec.kb or str(dataset.meta.get("kb", ""))
    kb: KnowledgeBase | None = None
    if kb_name:
        try:
            kb = (store or KnowledgeStore(layout)).get(kb_name)
        except CotragError as exc:
            if spec.kb:  # named on purpose: say so; the dataset's own may have been deleted
                raise SpecError([f"kb: {exc}"]) from exc
            kb = None
    train, validation, skipped = split_pairs(dataset.examples(), kb, spec)
    if len(train) < 2:
        raise SpecError(
            [
                f"dataset: {spec.dataset!r} has {len(train)} answerable training questions with "
                "a gold chunk; an embedder needs at least 2 (generate more examples first)."
            ]
        )
    corpus = build_corpus(kb, train, validation, spec.eval_passages, spec.seed)
    return EmbedderChecked(
        spec,
        dataset,
        base_path,
        base_name or embedder_catalog.bundled_name(),
        train,
        validation,
        corpus,
        skipped,
        kb.name if kb is not None else "",
    )
