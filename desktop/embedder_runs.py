"""How the Training tab words an embedder run: recall lines, log lines, history cells.

An embedder run emits the generator's events plus recall@k on held-out questions
(``eval`` events carry ``recall`` and, when there are enough questions for a batch,
``loss``); these functions turn them into what a person reads.
"""

from __future__ import annotations

from typing import Any

JOB_KINDS = (
    ("generator", "Generator (the model that reasons and searches)"),
    ("embedder", "Embedder (the search's embedder)"),
    ("alternating", "Alternating rounds (embedder, then generator)"),
)


def round_line(event: dict[str, Any]) -> str:
    """A schedule event of ``core.training.rounds`` as a log line ('' for others)."""
    kind = event.get("event")
    if kind == "round_step":
        what = {
            "embedder": "tuning the embedder",
            "reembed": "re-embedding the knowledge base with it",
            "retrace": "tracing the questions again through the tuned search",
            "generator": "tuning the generator on the new traces",
        }.get(str(event.get("step")), str(event.get("step")))
        return f"Round {event.get('round')}: {what}…"
    if kind == "round_done":
        recall = next(
            (
                f"{k[:-7]} {event[k]} → {event.get(k[:-7] + '_after')}"
                for k in event
                if k.endswith("_before") and k.startswith("recall")
            ),
            "",
        )
        loss = event.get("eval_loss")
        return (
            f"Round {event.get('round')} done: embedder {event.get('embedder')} ({recall}), "
            f"{event.get('examples')} re-traced examples, model {event.get('model')}"
            + (f" (validation loss {loss:.3f})" if isinstance(loss, float | int) else "")
        )
    return ""


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


def eval_log_line(event: dict[str, Any]) -> str:
    """The log's line for an embedder ``eval`` event."""
    line = f"step {event.get('step', 0)}: {recall_figures(event.get('recall') or {})}"
    if event.get("passages"):
        line += f" among {event['passages']} passages"
    if isinstance(event.get("loss"), float | int):
        line += f" (validation loss {event['loss']:.3f})"
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


def run_summary(run: Any) -> dict[str, Any]:
    """``Run.summary()`` plus what the history needs for an embedder run: its kind and recall.

    An embedder's eval events may have no loss (too few held-out questions for a batch),
    so the validation column of such a run reads the recall, not a loss.
    """
    events: list[dict[str, Any]] = run.events()
    empty: dict[str, Any] = {}
    try:
        summary: dict[str, Any] = run.summary()
    except (KeyError, TypeError):  # an eval event without a loss: summarise it here
        steps = [e for e in events if e.get("event") == "step"]
        done = next((e for e in reversed(events) if e.get("event") == "done"), empty)
        error = next((e for e in reversed(events) if e.get("event") == "error"), empty)
        last = steps[-1] if steps else {}
        summary = {
            "name": run.name,
            "state": run.state,
            "step": last.get("step", 0),
            "total": last.get("total", 0),
            "loss": last.get("loss"),
            "eval_loss": None,
            "model": done.get("model", ""),
            "error": error.get("message", ""),
            "checkpoint": str(run.latest_checkpoint() or ""),
        }
    started = next((e for e in events if e.get("event") == "started"), empty)
    done = next((e for e in reversed(events) if e.get("event") == "done"), empty)
    kind = str(started.get("kind") or done.get("kind") or "")
    if not kind:
        try:
            kind = run.spec().kind
        except Exception:  # an unreadable spec: the history still lists the run
            kind = "generator"
    summary["kind"] = kind
    if kind == "embedder":
        evals = [e for e in events if e.get("event") == "eval" and e.get("recall")]
        metrics = done.get("metrics") or {}
        summary["recall_before"] = metrics.get("recall_before") or (
            evals[0]["recall"] if evals else {}
        )
        summary["recall_after"] = metrics.get("recall_after") or (
            evals[-1]["recall"] if len(evals) > 1 else {}
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
