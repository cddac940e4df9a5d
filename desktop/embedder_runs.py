"""How the Training tab words a run: an embedder run's recall lines, log lines and history
cells, what a prepared run trains on, an alternating schedule's rounds.

An embedder run emits the generator's events plus recall@k on held-out questions
(``eval`` events carry ``recall`` and, when there are enough questions for a batch,
``loss``); these functions turn them into what a person reads.
"""

from __future__ import annotations

from typing import Any

from core.training.events import Done, Eval, Started
from core.training.rounds import RoundDone, RoundStep
from core.training.runs import Run
from core.training.service import PreparedRun

JOB_KINDS = (
    ("generator", "Generator (the model that reasons and searches)"),
    ("embedder", "Embedder (the search's embedder)"),
    ("alternating", "Alternating rounds (embedder, then generator)"),
)


def round_line(event: RoundStep | RoundDone) -> str:
    """A schedule's step or finished round (``core.training.rounds``) as a log line."""
    if isinstance(event, RoundStep):
        what = {
            "embedder": "tuning the embedder",
            "reembed": "re-embedding the knowledge base with it",
            "retrace": "tracing the questions again through the tuned search",
            "generator": "tuning the generator on the new traces",
        }.get(event.step, event.step)
        return f"Round {event.round}: {what}…"
    figures = event.figures
    recall = next(
        (
            f"{k[:-7]} {figures[k]} → {figures.get(k[:-7] + '_after')}"
            for k in figures
            if k.endswith("_before") and k.startswith("recall")
        ),
        "",
    )
    loss = figures.get("eval_loss")
    return (
        f"Round {figures.get('round')} done: embedder {figures.get('embedder')} ({recall}), "
        f"{figures.get('examples')} re-traced examples, model {figures.get('model')}"
        + (f" (validation loss {loss:.3f})" if isinstance(loss, float | int) else "")
    )


def prepared_note(prepared: PreparedRun) -> str:
    """What a prepared run trains on, for the log's first line."""
    checked = prepared.embedder
    if checked is None:
        return prepared.note
    skipped = sum(checked.skipped.values())
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(checked.skipped.items()))
    held = len(checked.validation)
    return (
        f"{len(checked.train)} training questions, {held} held-out "
        f"question{'s' if held != 1 else ''} among {len(checked.corpus.ids)} passages"
        + (f" ({skipped} left out: {why})" if skipped else "")
    )


def main_k(recall: dict[str, Any], wanted: int = 5) -> str:
    """The recall key a line leads with: ``recall@<wanted>`` when present, else the middle one."""
    key = f"recall@{wanted}"
    if key in recall:
        return key
    keys = sorted(recall, key=lambda k: int(k.rsplit("@", 1)[-1]) if k[-1].isdigit() else 0)
    return keys[len(keys) // 2] if keys else key


def recall_figures(recall: dict[str, Any]) -> str:
    """``recall@1 0.55, recall@5 0.83, recall@10 0.95``, in k order."""
    keys = sorted(recall, key=lambda k: int(k.rsplit("@", 1)[-1]) if k[-1].isdigit() else 0)
    return ", ".join(f"{k} {float(recall[k]):.2f}" for k in keys)


def eval_log_line(event: Eval) -> str:
    """The log's line for an embedder ``eval`` event."""
    line = f"step {event.step}: {recall_figures(event.recall or {})}"
    if event.passages:
        line += f" among {event.passages} passages"
    if event.loss is not None:
        line += f" (validation loss {event.loss:.3f})"
    return line


def recall_line(
    before: dict[str, Any], now: dict[str, Any], questions: int, *, finished: bool, k: int = 5
) -> str:
    """``Recall@5 on 42 held-out questions: 0.786 before → 0.857 after``."""
    key = main_k(before or now, k)
    head = f"{key[0].upper()}{key[1:]}"
    on = f" on {questions} held-out question{'s' if questions != 1 else ''}" if questions else ""
    first = before.get(key)
    if first is None and not questions:
        return "Recall is not measured: the dataset has no held-out questions with a gold chunk."
    if first is None:
        return f"{head}{on}: measuring…"
    text = f"{head}{on}: {float(first):.3f} before"
    last = now.get(key)
    if last is not None:
        text += f" → {float(last):.3f} {'after' if finished else 'now'}"
    return text


def run_summary(run: Run) -> dict[str, Any]:
    """``Run.summary()`` plus what the history needs for an embedder run: its kind and recall.

    An embedder's eval events may have no loss (too few held-out questions for a batch),
    so the validation column of such a run reads the recall, not a loss.
    """
    events = run.worker_events()
    summary = run.summary()
    started = next((e for e in events if isinstance(e, Started)), None)
    done = next((e for e in reversed(events) if isinstance(e, Done)), None)
    kind = (started.kind if started else None) or (done.kind if done else None) or ""
    if not kind:
        try:
            kind = run.spec().kind
        except Exception:  # an unreadable spec: the history still lists the run
            kind = "generator"
    summary["kind"] = kind
    if kind == "embedder":
        evals = [e.recall for e in events if isinstance(e, Eval) and e.recall]
        metrics = done.metrics if done else {}
        summary["recall_before"] = metrics.get("recall_before") or (evals[0] if evals else {})
        summary["recall_after"] = metrics.get("recall_after") or (
            evals[-1] if len(evals) > 1 else {}
        )
    return summary


def validation_cell(summary: dict[str, Any]) -> str:
    """The history's Validation cell: the eval loss, or an embedder's recall before → after."""
    if summary.get("kind") == "embedder":
        before, after = summary.get("recall_before") or {}, summary.get("recall_after") or {}
        key = main_k(before or after)
        if key in before and key in after:
            return f"R@{key.rsplit('@', 1)[-1]} {before[key]:.2f}→{after[key]:.2f}"
        if key in before:
            return f"R@{key.rsplit('@', 1)[-1]} {before[key]:.2f}"
        return ""
    value = summary.get("eval_loss")
    return f"{value:.3f}" if isinstance(value, float | int) else ""


def model_cell(summary: dict[str, Any]) -> str:
    model = str(summary.get("model", ""))
    if model and summary.get("kind") == "embedder":
        return f"{model} (embedder)"
    return model
