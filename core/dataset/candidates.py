"""Answer-first: short answers a chunk states, each with the sentence that states it.

A small model cannot be trusted to copy an answer from a passage (measured: 0 of 30
with the bundled 135M model), but it can phrase a question for a given sentence and
answer. So the answers are picked here, from the text itself: code literals and
option names, default values and numbers, defined terms, and commands in how-to
sentences. Each candidate says what kind of question it makes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

SINGLE_KINDS = ("lookup", "definition", "default", "behaviour", "howto")
"""Question kinds about one chunk, which the answer-first candidates below make."""
TWOHOP = "twohop"
KINDS = (*SINGLE_KINDS, TWOHOP)
"""Every question kind a dataset run can ask for: the single-chunk kinds, and bridge
questions over two related chunks (:mod:`core.dataset.twohop`)."""

MIN_SENTENCE_WORDS = 6
MAX_SENTENCE_CHARS = 320
MAX_ANSWER_CHARS = 60

_FENCE_RE = re.compile(
    r"^[ ]{0,3}(`{3,}|~{3,})[^\n]*\n(?:[^\n]*\n)*?(?:[ ]{0,3}\1[`~]*[ \t]*(?:\n|\Z)|[^\n]*\Z)", re.M
)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(*])|\n\s*\n|\n(?=\s*[*+-] |\s*\d+[.)] |#)")
_LIST_MARK_RE = re.compile(r"^\s*(?:[*+-]|\d+[.)])\s+")
_HEADING_RE = re.compile(r"^#{1,6}\s")
_CODE_RE = re.compile(r"`([^`\n]{2,60})`")
_OPTION_RE = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]{1,40}(?:=[\w.-]+)?)")
_DEFAULT_RE = re.compile(
    r"\b[Dd]efaults?(?:\s+(?!is\b|to\b)[\w-]+){0,3}?(?:\s+is|\s+to|:)\s+"
    r"(`[^`\n]{1,60}`|\"[^\"\n]{1,60}\"|'[^'\n]{1,60}'|[\w./@:-]{1,60})"
)
_NUMBER_RE = re.compile(
    r"(?<![\w.#:-])(\d{1,2}:\d{2}|\d+(?:\.\d+)?(?:\s?(?:ms|milliseconds?|seconds?|minutes?|"
    r"hours?|days?|KB|MB|GB|%|percent|times|bytes|characters|years?))?)(?![\w.:])"
)
_DEFINITION_RE = re.compile(
    r"^(?:An?\s+|The\s+)?(`[^`\n]{2,40}`|[A-Z][\w.-]*(?:\s+[\w.-]+){0,3})\s+"
    r"(?:(?:is|are)\s+(?:an?|the|one)\s+|means\s+|refers to\s+)\w"
)
_HOWTO_RE = re.compile(r"\b(?:[Rr]un|[Uu]se|[Tt]ype|[Ee]xecute|[Cc]all)\s+(`[^`\n]{2,60}`)")


_NOT_TERMS = frozenset(
    [
        "this",
        "that",
        "these",
        "those",
        "it",
        "there",
        "here",
        "which",
        "what",
        "who",
        "one",
        "each",
        "all",
        "both",
        "either",
        "neither",
        "some",
        "any",
        "none",
    ]
)


_CLAUSE_OPENERS = frozenset(
    [
        "if",
        "when",
        "while",
        "because",
        "although",
        "unless",
        "once",
        "after",
        "before",
        "since",
        "as",
        "for",
        "in",
        "on",
        "at",
        "by",
        "with",
        "to",
        "from",
        "so",
        "but",
        "and",
        "or",
    ]
)
"""A sentence that starts with one of these opens a clause, not a term being defined."""


@dataclass(frozen=True)
class Candidate:
    sentence: str
    """The sentence of the chunk that states the answer (one line)."""
    answer: str
    """Copied from the sentence, without enclosing backticks or quotes."""
    kind: str
    question: str = ""
    """Set when a teacher wrote question and answer together from the passage."""


def sentences(text: str) -> list[str]:
    """Prose sentences of a chunk (code blocks, headings and very short lines left out)."""
    prose = _FENCE_RE.sub("\n\n", text)
    out = []
    for piece in _SENTENCE_END_RE.split(prose):
        line = " ".join(_LIST_MARK_RE.sub("", piece).split())
        if not line or _HEADING_RE.match(piece.strip()):
            continue
        if len(line.split()) < MIN_SENTENCE_WORDS or len(line) > MAX_SENTENCE_CHARS:
            continue
        out.append(line)
    return out


def _bare(answer: str) -> str:
    answer = answer.strip()
    if len(answer) >= 2 and answer[0] == answer[-1] and answer[0] in "`\"'":
        answer = answer[1:-1]
    return answer.strip().rstrip(".,;:")


def candidates(text: str) -> Iterator[Candidate]:
    """Candidates of a chunk, the most specific kind first within each sentence."""
    for sentence in sentences(text):
        seen: set[str] = set()

        def make(
            answer: str, kind: str, sentence: str = sentence, seen: set[str] = seen
        ) -> Candidate | None:
            bare = _bare(answer)
            if not bare or len(bare) > MAX_ANSWER_CHARS or bare.casefold() in seen:
                return None
            # The answer stage's grammar reserves these: an answer holding them cannot
            # be written back verbatim.
            if re.search(r"[<>\[\]]", bare):
                return None
            # A sentence that is mostly its answer asks nothing.
            if len(bare) * 2 > len(sentence):
                return None
            seen.add(bare.casefold())
            return Candidate(sentence, bare, kind)

        found: list[Candidate | None] = []
        for match in _DEFAULT_RE.finditer(sentence):
            found.append(make(match.group(1), "default"))
        definition = _DEFINITION_RE.match(sentence)
        if definition:
            term = re.sub(r"^(?:An?|The)\s+", "", definition.group(1))
            first = term.split()[0].casefold().strip("`")
            if term.casefold() not in _NOT_TERMS and first not in _CLAUSE_OPENERS:
                found.append(make(term, "definition"))
        for match in _HOWTO_RE.finditer(sentence):
            found.append(make(match.group(1), "howto"))
        for match in _OPTION_RE.finditer(sentence):
            found.append(make(match.group(1), "behaviour"))
        for match in _CODE_RE.finditer(sentence):
            found.append(make(match.group(1), "lookup"))
        for match in _NUMBER_RE.finditer(sentence):
            if not re.fullmatch(r"[01]", match.group(1)):
                found.append(make(match.group(1), "lookup"))
        yield from (c for c in found if c is not None)
