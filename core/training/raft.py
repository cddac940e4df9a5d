"""Reader rows, RAFT-style: the answer stage again, with the gold passage among distractors.

A dataset example teaches the answer stage once, with the passages its trace vetted.
These extra rows teach reading: the same question and answer, the gold passage at a
random place among other real passages of the knowledge base (first those the trace's
own searches returned, then passages other examples' searches returned), numbered
``[1]``..``[n]`` with the answer's citations moved to the gold passage's new number;
and, for a share of rows, the distractors alone with the answer the app gives when the
passages do not hold it (:data:`UNANSWERED`). The prompt is the one the loop renders at
inference (``prompts.answer_messages``). Every draw is keyed by the spec's seed and the
example's id: the same dataset and seed make the same rows.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from core.agent import prompts
from core.agent.record import RunRecord
from core.dataset.construct import UNANSWERED
from core.dataset.verify import contains
from core.knowledge.types import Hit

MIN_DISTRACTORS = 2
MAX_DISTRACTORS = 5
"""Distractors per row, drawn in this range (the loop's answer stage sees about 3 to 8
passages: k per search, the vetted ones and the seeded search's)."""
CITATION = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class ReaderRow:
    messages: list[dict[str, str]]
    """The answer stage's prompt, then the answer (the whole answer is trained)."""
    absent: bool
    """The gold passage was left out: the answer is :data:`UNANSWERED`."""
    gold: tuple[int, ...]
    """The gold passages' numbers in this row (empty when absent)."""


class Pool:
    """Passages the dataset's searches returned, by chunk id, in a stable order: where
    distractors come from when an example's own searches returned too few. Passages of
    ``held_out`` documents (the validation split's) are left out."""

    def __init__(self, records: Iterable[RunRecord], held_out: Iterable[str] = ()) -> None:
        skip = set(held_out)
        seen: dict[str, Hit] = {}
        for record in records:
            for _, hit in sorted(record.passages.items()):
                if hit.source not in skip:
                    seen.setdefault(hit.id, hit)
        self.hits = [seen[key] for key in sorted(seen)]

    def draw(self, rng: random.Random, n: int, ok: Callable[[Hit], bool]) -> list[Hit]:
        """Up to ``n`` distinct passages that pass ``ok``, drawn at random."""
        picked: dict[str, Hit] = {}
        for _ in range(20 * max(0, n)):
            if len(picked) >= n or not self.hits:
                break
            hit = self.hits[rng.randrange(len(self.hits))]
            if hit.id not in picked and ok(hit):
                picked[hit.id] = hit
        return list(picked.values())


def _rng(seed: int, key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:raft:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _share(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:raft-absent:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def reader_rows(
    example: dict[str, Any],
    record: RunRecord,
    pool: Pool,
    *,
    count: int,
    absent_share: float,
    seed: int,
) -> list[ReaderRow]:
    """Up to ``count`` extra answer-stage rows of one example (none for an unanswerable
    example, one without a gold passage shown or an answer citing a passage never shown)."""
    if count <= 0 or example.get("unanswerable") or not record.answer:
        return []
    passages = record.passages
    gold_numbers = [int(n) for n in example.get("gold_numbers", [])]
    cited = [int(n) for n in CITATION.findall(record.answer)]
    if not gold_numbers or any(n not in passages for n in [*gold_numbers, *cited]):
        return []
    keep = list(dict.fromkeys([*gold_numbers, *cited]))
    gold_hits = [passages[n] for n in keep]
    gold_ids = {h.id for h in gold_hits}
    answer = str(example.get("gold_answer") or example.get("answer") or "")

    def holds_answer(hit: Hit) -> bool:
        # Without the gold passage, no passage may hold the answer (an overlapping chunk
        # of the same section would make the row answerable after all). With it, one that
        # holds the same words (another option's default) is the distractor to learn from.
        return bool(answer) and contains(hit.text, answer)

    own = [h for _, h in sorted(passages.items()) if h.id not in gold_ids]
    key = str(example.get("id", ""))
    rng = _rng(seed, key)
    rows: list[ReaderRow] = []
    for index in range(count):
        absent = _share(seed, f"{key}:{index}") < absent_share
        wanted = rng.randint(MIN_DISTRACTORS, MAX_DISTRACTORS)
        mine = [h for h in own if not (absent and holds_answer(h))]
        chosen = rng.sample(mine, min(wanted, len(mine)))
        taken = gold_ids | {h.id for h in chosen}

        def fits(hit: Hit, taken: set[str] = taken, absent: bool = absent) -> bool:
            return hit.id not in taken and not (absent and holds_answer(hit))

        chosen += pool.draw(rng, wanted - len(chosen), fits)
        rng.shuffle(chosen)
        if absent:
            if not chosen:
                continue
            messages = prompts.answer_messages(example["question"], list(enumerate(chosen, 1)))
            rows.append(ReaderRow([*messages, _assistant(UNANSWERED)], True, ()))
            continue
        shown = list(chosen)
        for hit in gold_hits:  # each gold passage at a random place
            shown.insert(rng.randint(0, len(shown)), hit)
        new = {hit.id: number for number, hit in enumerate(shown, 1)}
        renumber = {old: new[passages[old].id] for old in keep}
        text = _renumbered(record.answer, renumber)
        messages = prompts.answer_messages(example["question"], list(enumerate(shown, 1)))
        gold = tuple(renumber[n] for n in gold_numbers)
        rows.append(ReaderRow([*messages, _assistant(text)], False, gold))
    return rows


def _renumbered(answer: str, numbers: dict[int, int]) -> str:
    """The answer with each ``[n]`` citation moved to its passage's number in the row."""
    return CITATION.sub(lambda m: f"[{numbers[int(m.group(1))]}]", answer)


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}
