"""Examples out, in the formats trainers read, plus a dataset card.

Every example gives two training rows: the search turn (system + question →
the trace) and the answer stage (passages + question → the cited answer).

- ``chat`` (default): ``{"messages": [...], "train_spans": [[start, end], ...]}``; the
  spans are character offsets into the last (assistant) message that the loss is on:
  the model's own text. What the loop wrote (``<query_res>`` blocks, notes, tags it
  closed) is left out, so the model learns to search and vet, not to recite passages.
- ``chatml``: ``{"text": ..., "train_spans": ...}`` with offsets into the whole ChatML text.
- ``instruction``: ``{"instruction", "input", "output"}`` (no mask: for tools that want it).
- ``qa``: ``{"question", "context", "answer"}``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.agent.events import Span
from core.agent.record import RunRecord
from core.dataset import rewrite
from core.dataset.storage import Dataset
from core.fileio import write_atomic

FORMATS = ("chat", "chatml", "instruction", "qa")


def train_spans(spans: list[Span]) -> list[list[int]]:
    """``[start, end]`` of each model-written span in the joined trace."""
    out: list[list[int]] = []
    at = 0
    for span in spans:
        end = at + len(span.text)
        if span.author == "model" and span.text:
            if out and out[-1][1] == at:
                out[-1][1] = end
            else:
                out.append([at, end])
        at = end
    return out


def rows(example: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The two chat rows of one example: search turn, then answer stage."""
    record = RunRecord.from_dict(example["record"])
    meta = {"id": example.get("id", ""), "split": example.get("split", "train")}
    search = record.messages.get("search", [])
    if search and record.trace:
        yield {
            **meta,
            "stage": "search",
            "messages": [*search, {"role": "assistant", "content": record.trace}],
            "train_spans": train_spans(record.spans),
        }
    answer = record.messages.get("answer", [])
    if answer and record.answer:
        yield {
            **meta,
            "stage": "answer",
            "messages": [*answer, {"role": "assistant", "content": record.answer}],
            "train_spans": [[0, len(record.answer)]],
        }


def chatml(messages: list[dict[str, str]]) -> tuple[str, int]:
    """ChatML text, and the offset where the last message's content starts."""
    text, start = "", 0
    for message in messages:
        head = f"<|im_start|>{message['role']}\n"
        start = len(text) + len(head)
        text += head + message["content"] + "<|im_end|>\n"
    return text, start


def convert(example: dict[str, Any], fmt: str) -> Iterator[dict[str, Any]]:
    if fmt == "qa":
        record = RunRecord.from_dict(example["record"])
        passages = record.passages
        gold = [passages[n].text for n in example.get("gold_numbers", []) if n in passages]
        yield {
            "id": example.get("id", ""),
            "question": example["question"],
            "context": "\n\n".join(gold),
            "answer": example["answer"],
        }
        return
    for row in rows(example):
        messages = row["messages"]
        if fmt == "chat":
            yield row
        elif fmt == "chatml":
            text, start = chatml(messages)
            yield {
                "id": row["id"],
                "stage": row["stage"],
                "split": row["split"],
                "text": text,
                "train_spans": [[start + a, start + b] for a, b in row["train_spans"]],
            }
        elif fmt == "instruction":
            system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
            user = "\n\n".join(m["content"] for m in messages if m["role"] == "user")
            yield {
                "id": row["id"],
                "stage": row["stage"],
                "instruction": system,
                "input": user,
                "output": messages[-1]["content"],
            }
        else:
            raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def export(dataset: Dataset, fmt: str, out: Path, split: str = "") -> int:
    """Write the examples (one split, or all) in ``fmt``; returns the rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    lines = []
    for example in dataset.examples():
        if split and example.get("split") != split:
            continue
        for row in convert(example, fmt):
            lines.append(json.dumps(row, ensure_ascii=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, "".join(line + "\n" for line in lines))
    return len(lines)


def card(dataset: Dataset, report: dict[str, Any]) -> str:
    """A dataset card in Markdown: what it holds, where it came from, what was rejected."""
    meta = dataset.meta
    lines = [
        f"# Dataset {dataset.name}",
        "",
        f"- Knowledge base: {meta.get('kb', '?')} (embedder {meta.get('embedder', '?')})",
        f"- Question writer (teacher): {meta.get('teacher', 'none')}",
        f"- Seed: {meta.get('seed', 0)}; validation share {meta.get('validation_share', 0)}",
        f"- Prompt template version: {meta.get('template_version', '?')}",
        f"- Examples: {report['examples']} ({report['splits'].get('train', 0)} train, "
        f"{report['splits'].get('validation', 0)} validation), from {report['documents']} "
        "documents",
        "",
        "## Kinds",
        *(f"- {k}: {v}" for k, v in sorted(report["kinds"].items())),
        "",
        "## Origins",
        *(f"- questions by {k}: {v}" for k, v in sorted(report["question_origins"].items())),
        *(f"- traces {k}: {v}" for k, v in sorted(report["trace_origins"].items())),
        *_sampling_lines(report.get("sampling") or {}),
        "",
        "## Rejections",
        *(f"- {k}: {v}" for k, v in sorted(report["rejections"].items())),
        "",
        *_rewrite_lines(report.get("rewrite")),
        "## Licence",
        "The examples quote the knowledge base's documents: their licence applies to this "
        "dataset. Questions written by a teacher model are subject to that model's terms; "
        "check them before training on its output.",
        "",
    ]
    return "\n".join(lines)


def _sampling_lines(sampling: dict[str, Any]) -> list[str]:
    """The card's lines on the model's own runs (rejection sampling), when there were any."""
    if not sampling.get("questions"):
        return []
    return [
        "",
        "## The model's own runs (rejection sampling)",
        f"- Model: {sampling.get('model') or 'the configured model'}; "
        f"{sampling.get('samples', 0)} runs per question at temperature "
        f"{sampling.get('temperature', 0)}",
        f"- Questions sampled: {sampling['questions']}: {sampling.get('kept', 0)} with a kept "
        f"run (keep rate {sampling.get('keep_rate', 0):.0%}), {sampling.get('fallback', 0)} "
        f"kept their constructed trace, {sampling.get('dropped', 0)} dropped",
        f"- Runs kept: {sampling.get('runs_kept', 0)} of {sampling.get('runs', 0)} (clean, "
        "vetting the gold passage, answering with the gold answer)",
    ]


def _rewrite_lines(figures: dict[str, Any] | None) -> list[str]:
    """The card's section on the rewrite step (none when it did not run)."""
    if not figures:
        return []
    return [
        "## Questions in the writer's own words",
        f"- Rewritten: {figures['rewritten']} of {figures['tried']} "
        f"({figures['kept_rate']:.0%}); the others keep the verified question",
        *(
            f"- not kept, {rewrite.REASON_LABELS.get(k, k)}: {v}"
            for k, v in figures["reasons"].items()
        ),
        f"- Word overlap with the source sentence (share of the question's content words): "
        f"median {figures['overlap_median_before']:.2f} before, "
        f"{figures['overlap_median_after']:.2f} after",
        "",
    ]


def report(dataset: Dataset, count_tokens: Any = None) -> dict[str, Any]:
    """Counts, rejections by reason, kinds, rounds, lengths, origins; the rewrite step's
    figures (``rewrite``) when it ran."""
    examples = dataset.examples()
    rejections = dataset.rejections()
    lengths: list[int] = []
    for example in examples:
        trace = example.get("record", {}).get("trace", "")
        lengths.append(count_tokens(trace) if count_tokens else len(trace) // 4)
    buckets: Counter[str] = Counter()
    for n in lengths:
        low = (n // 100) * 100
        buckets[f"{low}-{low + 99}"] += 1
    out: dict[str, Any] = {
        "examples": len(examples),
        "rejected": len(rejections),
        "acceptance_rate": round(len(examples) / max(1, len(examples) + len(rejections)), 3),
        "splits": dict(Counter(str(e.get("split", "")) for e in examples)),
        "documents": len({e.get("source") for e in examples}),
        "kinds": dict(Counter(str(e.get("kind", "")) for e in examples)),
        "unanswerable": sum(bool(e.get("unanswerable")) for e in examples),
        "question_origins": dict(Counter(str(e.get("question_origin", "")) for e in examples)),
        "trace_origins": dict(Counter(str(e.get("trace_origin", "")) for e in examples)),
        "teacher_failures": dict(
            Counter(str(e["teacher_failure"]) for e in examples if e.get("teacher_failure"))
        ),
        "rejections": dict(Counter(str(r.get("reason", "")) for r in rejections)),
        "rounds": dict(sorted(Counter(int(e.get("rounds", 0)) for e in examples).items())),
        "round_trip_rank": dict(
            sorted(Counter(int(e.get("round_trip_rank") or 0) for e in examples).items())
        ),
        "trace_tokens": dict(sorted(buckets.items(), key=lambda kv: int(kv[0].split("-")[0]))),
        "trace_tokens_unit": "tokens" if count_tokens else "≈tokens (characters / 4)",
        "sampling": dict(dataset.meta.get("sampling") or {}),
    }
    figures = rewrite.summary(examples)
    if figures is not None:
        out["rewrite"] = figures
    return out
