"""Prompt templates (plain .txt under resources/prompts) and how passages are shown.

Templates are filled with ``str.format`` fields; the wording lives in the text
files so it can be tuned without touching code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache

from core.agent.escaping import escape_passage
from core.agent.grammar import MAX_QUERY_CHARS
from core.knowledge.types import Hit
from core.resources import read_text, resources_dir


@cache
def template(name: str) -> str:
    return read_text("prompts", f"{name}.txt").strip()


@cache
def template_version() -> str:
    """A short digest of the loop's prompt templates: a run and a training example record it, so
    a model tuned on one wording is known to have seen that wording."""
    digest = hashlib.sha256()
    for path in sorted((resources_dir() / "prompts").glob("*.txt")):
        if path.name.startswith("dataset_"):
            continue  # what the question writer reads is not what a tuned model sees
        digest.update(path.name.encode("utf-8") + b"\0")
        digest.update(path.read_text(encoding="utf-8").strip().encode("utf-8") + b"\0")
    return digest.hexdigest()[:12]


def render(name: str, **fields: object) -> str:
    try:
        return template(name).format(**fields)
    except KeyError as exc:
        raise KeyError(
            f"Prompt template {name}.txt uses the field {exc} that the app does not fill; "
            "fix the template (double literal braces as {{ }})."
        ) from exc


def note(name: str) -> str:
    """A short message the loop writes into a ``<query_res>`` instead of passages."""
    return template(f"note_{name}")


def passage_line(number: int, hit: Hit) -> str:
    """``[3] guide.md#2 (Install > Linux): the passage on one line``, not yet escaped.

    The passage goes on one line so that a document cannot start a line with
    ``[7] …`` and pass as another numbered passage.
    """
    heading = f" ({' '.join(hit.heading.split())})" if hit.heading.strip() else ""
    return f"[{number}] {hit.label}{heading}: {' '.join(hit.text.split())}"


def passages_block(numbered: Sequence[tuple[int, Hit]], shown: frozenset[int] = frozenset()) -> str:
    """Passages as the model reads them, escaped; those in ``shown`` only by reference."""
    lines = []
    for number, hit in numbered:
        if number in shown:
            lines.append(f"[{number}] {hit.label}: (shown above)")
        else:
            lines.append(passage_line(number, hit))
    return escape_passage("\n".join(lines))


def loop_messages(question: str, *, max_rounds: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": render("loop_system", max_rounds=max_rounds)},
        {"role": "user", "content": question},
    ]


def answer_messages(question: str, numbered: Sequence[tuple[int, Hit]]) -> list[dict[str, str]]:
    passages = passages_block(numbered) if numbered else "(no passages were found)"
    return [
        {"role": "system", "content": template("answer_system")},
        {"role": "user", "content": render("answer_user", passages=passages, question=question)},
    ]


def closed_messages(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": template("closed_system")},
        {"role": "user", "content": question},
    ]


def seed_query(question: str) -> str:
    """The question as a search line: one line, no tag characters, at most the query length
    the grammar admits (cut at a word), without the closing question mark."""
    line = " ".join(question.replace("<", " ").replace(">", " ").split()).rstrip("?？ ").strip()
    if len(line) > MAX_QUERY_CHARS:
        cut = line[:MAX_QUERY_CHARS]
        line = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return line or " ".join(question.split())[:MAX_QUERY_CHARS]
