"""Hand edits of a dataset: a question, an answer, the cited answer or the ``<results>``
changed, an example deleted. The record stays consistent (the messages the model would see
are rendered again from the same templates; the trace, its spans and its blocks change
together) and every change can be undone once.

What must hold after an edit, so that export and validation still take the example:

- ``"".join(span.text for span in record.spans) == record.trace``, and the trace parses
  without protocol errors;
- ``record.results`` are the numbers the ``<results>`` block vets, every one a passage the
  trace showed, and the answer stage's messages show exactly those passages;
- ``gold_numbers`` (the passage of the source chunk) is among the results, and that
  passage holds the short answer; the cited answer holds the short answer and cites only
  passages of the results.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, replace
from typing import Any

from core.agent import prompts
from core.agent.grammar import MAX_REASON_CHARS
from core.agent.parser import bracket_citations, results_numbers, trace_errors
from core.agent.record import RunRecord
from core.dataset.candidates import sentences
from core.dataset.draws import Splits
from core.dataset.storage import Dataset
from core.dataset.verify import contains
from core.knowledge.types import Hit

MAX_RESULTS = 8
"""The most passages the grammar lets a ``<results>`` block vet."""

_ENTRY_RE = re.compile(r"^\s*\[\s*(\d{1,4})\s*\]\s?(.*)$")
_CITATION_RE = re.compile(r"\[\s*(\d{1,4}(?:\s*[,;]\s*\d{1,4})*)\s*\]")
_RESULTS_RE = re.compile(r"<results>(.*?)</results>", re.DOTALL)


class EditRejected(ValueError):
    pass


@dataclass(frozen=True)
class ResultEntry:
    """One line of a ``<results>`` block: a passage number and why it is relevant."""

    number: int
    reason: str = ""


def results_entries(record: RunRecord) -> list[ResultEntry]:
    """The vetted passages of a record with the reason its ``<results>`` block gives each
    (an empty reason where the block is free text, as an untuned model may write it)."""
    block = next((b for b in reversed(record.blocks) if b["tag"] == "results"), None)
    reasons: dict[int, str] = {}
    if block is not None:
        for line in str(block["text"]).splitlines():
            found = _ENTRY_RE.match(line)
            if found:
                reasons.setdefault(int(found.group(1)), found.group(2).strip())
    return [ResultEntry(n, reasons.get(n, "")) for n in record.results]


def results_text(entries: list[ResultEntry]) -> str:
    """The ``<results>`` block's content in the form the loop's grammar makes a model
    write: one ``[n] why`` line per passage."""
    lines = "".join(f"[{e.number}] {e.reason}".rstrip() + "\n" for e in entries)
    return "\n" + lines


def renumber_citations(text: str, mapping: dict[int, int]) -> str | None:
    """``text`` with every ``[n]`` (also ``[1, 2]``) replaced through ``mapping``; None when
    it cites a number the mapping lacks or cites nothing."""
    if not bracket_citations(text) or any(n not in mapping for n in bracket_citations(text)):
        return None

    def swap(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*[,;]\s*", match.group(1))]
        return "[" + ", ".join(str(mapping[n]) for n in numbers) + "]"

    return _CITATION_RE.sub(swap, text)


def _checked_entries(entries: list[ResultEntry], passages: dict[int, Hit]) -> list[ResultEntry]:
    shown = ", ".join(str(n) for n in sorted(passages)) or "none"
    seen: set[int] = set()
    out: list[ResultEntry] = []
    for entry in entries:
        if entry.number not in passages:
            raise EditRejected(
                f"Passage {entry.number} was not shown in this trace (the passages shown: {shown})."
            )
        if entry.number in seen:
            raise EditRejected(f"Passage {entry.number} is in the results twice.")
        seen.add(entry.number)
        reason = " ".join(entry.reason.split())
        if re.search(r"[<\[\]]", reason):
            raise EditRejected(
                f"The reason for passage {entry.number} must not contain '<', '[' or ']' "
                "(the protocol reserves them)."
            )
        if len(reason) > MAX_REASON_CHARS:
            raise EditRejected(
                f"The reason for passage {entry.number} is {len(reason)} characters; keep it "
                f"within {MAX_REASON_CHARS}."
            )
        out.append(ResultEntry(entry.number, reason))
    if not out:
        raise EditRejected(
            "Choose at least one passage for the results (an example the documents do not "
            "answer is made by generating with unanswerable questions)."
        )
    if len(out) > MAX_RESULTS:
        raise EditRejected(f"The results may cite at most {MAX_RESULTS} passages.")
    return out


def _rewrite_results_block(record: RunRecord, body: str) -> None:
    """Replace the content of the trace's ``<results>`` block in the trace, in the span
    that holds it and in the block list, keeping them joined exactly."""
    matches = list(_RESULTS_RE.finditer(record.trace))
    if not matches:
        raise EditRejected("This trace has no closed <results> block to edit.")
    start, end = matches[-1].span(1)
    at = 0
    for index, span in enumerate(record.spans):
        span_end = at + len(span.text)
        if at <= start and end <= span_end:
            if span.author != "model":
                raise EditRejected("This trace's <results> were written by the app, not edited.")
            text = span.text[: start - at] + body + span.text[end - at :]
            record.spans[index] = replace(span, text=text)
            break
        at = span_end
    else:
        raise EditRejected(
            "This trace's <results> block is split between the model's and the app's text; "
            "it cannot be edited by hand."
        )
    record.trace = record.trace[:start] + body + record.trace[end:]
    block = next((b for b in reversed(record.blocks) if b["tag"] == "results"), None)
    if block is not None:
        block["text"] = body


def _moved_source(
    out: dict[str, Any], hit: Hit, number: int, answer: str, meta: dict[str, Any]
) -> None:
    """The source chunk is now the passage ``number``: the example's source fields and its
    split follow it (a document's examples all stay in one split)."""
    if hit.source != out.get("source"):
        splits = Splits(
            int(meta.get("seed", 0)),
            float(meta.get("validation_share", 0.0)),
            frozenset(meta.get("held_out", [])),
        )
        out["split"] = splits.of(hit.source)
    out["source"] = hit.source
    out["chunk_id"] = hit.id
    out["doc_hash"] = str(hit.extra.get("doc_hash", ""))
    out["sentence"] = next(
        (s for s in sentences(hit.text) if contains(s, answer)), " ".join(hit.text.split())
    )
    out["gold_numbers"] = [number]
    out["round_trip_rank"] = None  # the round trip was measured for the old source chunk


def edited(
    example: dict[str, Any],
    *,
    question: str,
    answer: str,
    cited: str,
    results: list[ResultEntry] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of ``example`` with its question, short answer and cited answer replaced,
    and, with ``results``, the passages its ``<results>`` vet (in order, each with its
    reason). ``meta`` (the dataset's) gives the split of a new source document."""
    question, answer, cited = question.strip(), answer.strip(), cited.strip()
    if not question or not answer or not cited:
        raise EditRejected("The question, the answer and the cited answer must not be empty.")
    if not contains(cited, answer):
        raise EditRejected("The cited answer must contain the short answer.")
    if contains(question, answer) and len(answer) >= 3:
        raise EditRejected("The question must not contain its answer.")
    out = copy.deepcopy(example)
    record = RunRecord.from_dict(out["record"])
    passages = record.passages
    if results is not None and [(e.number, e.reason) for e in results] != [
        (e.number, e.reason) for e in results_entries(record)
    ]:
        if out.get("unanswerable"):
            raise EditRejected(
                "This example teaches that the documents do not say: it vets no passage, "
                "so its results cannot be edited."
            )
        entries = _checked_entries(results, passages)
        _rewrite_results_block(record, results_text(entries))
        record.results = [e.number for e in entries]
        record.results_source = "results"
        if [e.kind for e in trace_errors(record.trace)] or results_numbers(
            _RESULTS_RE.findall(record.trace)[-1]
        ) != record.results:
            raise EditRejected("The edited results do not parse as the protocol's results.")
    if not out.get("unanswerable"):
        gold = [int(n) for n in out.get("gold_numbers", [])]
        kept = [n for n in gold if n in record.results and contains(passages[n].text, answer)]
        if not kept:
            holding = [n for n in record.results if contains(passages[n].text, answer)]
            if not holding:
                raise EditRejected(
                    f"None of the passages in the results ({_numbers(record.results)}) "
                    f"contains the answer “{answer}”."
                )
            _moved_source(out, passages[holding[0]], holding[0], answer, meta or {})
    stray = [n for n in bracket_citations(cited) if n not in record.results]
    if stray:
        raise EditRejected(
            f"The cited answer cites {_numbers(stray)}, not among the results "
            f"({_numbers(record.results) or 'none'}); cite a passage of the results."
        )
    numbered = [(n, passages[n]) for n in record.results if n in passages]
    if "search" in record.messages:
        record.messages["search"] = prompts.loop_messages(
            question, max_rounds=int(record.info.get("settings", {}).get("max_rounds", 3))
        )
    record.messages["answer"] = prompts.answer_messages(question, numbered)
    record.question = question
    record.answer = cited
    record.citations = [n for n in bracket_citations(cited) if n in record.results]
    answer_block = next((b for b in reversed(record.blocks) if b["tag"] == "answer"), None)
    if answer_block is not None:
        answer_block["text"] = cited
    out.update(question=question, answer=answer, status="edited", record=record.to_dict())
    return out


def _numbers(numbers: list[int]) -> str:
    return ", ".join(f"[{n}]" for n in numbers)


def replace_example(dataset: Dataset, example: dict[str, Any]) -> None:
    examples = [example if e.get("id") == example.get("id") else e for e in dataset.examples()]
    dataset.rewrite_examples(examples)


def delete_examples(dataset: Dataset, ids: set[str]) -> int:
    examples = dataset.examples()
    kept = [e for e in examples if e.get("id") not in ids]
    dataset.rewrite_examples(kept)
    return len(examples) - len(kept)
