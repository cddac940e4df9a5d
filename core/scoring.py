"""An answer scored on what it says first, so that length cannot buy a point.

``short_answer`` is the text of an ``Answer:`` line when the answer has one, else its first
sentence, with ``[n]`` citations and Markdown taken out. ``score_answer`` says whether that
short answer contains an expected string, and (the old, length-flattered score, kept so old
figures stay comparable) whether the whole answer does. ``answer_words`` is the length
reported beside the scores.

Sentences are cut at ``.``, ``!`` or ``?`` followed by a space, never inside a code span or
block, after an abbreviation ("e.g.", "i.e.", "vs.", "No. 5"), inside a number ("1.5") or a
name with dots ("package.json", "`a.b`"). Markdown's own structure cuts too: a blank line,
a heading, a list item, a code block. Headings are skipped (an answer that opens with
"## Ferry times" answers in the line after), and a first sentence that ends in a colon
("Run this:") takes the next one with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["answer_words", "contains_any", "score_answer", "short_answer"]

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n(.*?)(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_MARK = "\x00"
_PLACEHOLDER = re.compile(_MARK + r"(\d+)" + _MARK)
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_CITATION = re.compile(r"\s*\[\^?\d+(?:\s*[,;–-]\s*\^?\d+)*\]")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(
    r"(?<![\w*])\*(?=[\w`\x00])(.+?)(?<=\S)\*(?![\w*])|(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"
)
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")

_ANSWER_LINE = re.compile(
    r"^[ \t]*(?:[-*+>][ \t]+)?(?:\*\*|__)?[ \t]*(?:short[ \t]+|final[ \t]+)?answer[ \t]*"
    r"(?:\*\*|__)?[ \t]*:[ \t]*(?:\*\*|__)?(.*)$",
    re.I | re.M,
)
_HEADING = re.compile(r"^#{1,6}(?:[ \t]+|$)")
_SETEXT_RULE = re.compile(r"^(?:=+|-+)[ \t]*$")
_RULE = re.compile(r"^(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_BOLD_LINE = re.compile(r"^(\*\*|__)[^*_\n]+\1:?$")
_BULLET = re.compile(r"^(?:[-*+•]|\d{1,3}[.)])[ \t]+")
_QUOTE = re.compile(r"^(?:>[ \t]?)+")
_TABLE_RULE = re.compile(r"^\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?$")

# A full stop after one of these never ends a sentence ("e.g. the", "vs. npm").
_ABBREVIATIONS = frozenset(
    {
        "e.g",
        "eg",
        "i.e",
        "ie",
        "cf",
        "vs",
        "approx",
        "incl",
        "excl",
        "esp",
        "resp",
        "viz",
        "ca",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "jr",
        "sr",
        "al",
        "min",
        "max",
        "avg",
        "dept",
        "est",
    }
)
# ... nor after one of these when a number follows ("No. 5", "Fig. 3", "v. 2").
_BEFORE_NUMBER = frozenset(
    {
        "no",
        "nos",
        "fig",
        "figs",
        "vol",
        "vols",
        "p",
        "pp",
        "sec",
        "ch",
        "art",
        "eq",
        "ver",
        "v",
        "op",
    }
)
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")
_DOTTED = re.compile(r"^(?:[A-Za-z]\.){1,}[A-Za-z]?$")
_WORD = re.compile(r"\w")


def contains_any(text: str, expected: Iterable[str]) -> bool:
    """Any expected string in ``text``, case-insensitive."""
    folded = text.casefold()
    return any(e.casefold() in folded for e in expected)


def score_answer(answer: str, expected: Iterable[str]) -> tuple[bool, bool]:
    """(the short answer contains an expected string, the whole answer contains one)."""
    if not answer.strip():
        return False, False
    wanted = [e for e in expected if e.strip()]
    return contains_any(short_answer(answer), wanted), contains_any(answer, wanted)


def answer_words(text: str) -> int:
    """Words in the answer: whitespace-separated tokens with a letter or digit, ``[n]``
    citations not counted."""
    return sum(bool(_WORD.search(t)) for t in _CITATION.sub(" ", text).split())


def short_answer(text: str) -> str:
    """The text of the answer's ``Answer:`` line if it has one, else its first sentence;
    citations and Markdown taken out, spaces collapsed ('' for an empty answer)."""
    codes: list[str] = []

    def keep(code: str) -> str:
        codes.append(code)
        return f"{_MARK}{len(codes) - 1}{_MARK}"

    text = text.replace("\r\n", "\n").replace(_MARK, "")
    text = _FENCE.sub(lambda m: f"\n\n{keep(m.group(2))}\n\n", text)
    text = _CODE_SPAN.sub(lambda m: keep(m.group(2).strip()), text)
    line = _ANSWER_LINE.search(text)
    if line is not None:
        rest = text[line.end() :]
        text = line.group(1) if line.group(1).strip() else rest
    units = _units(text)
    chosen = ""
    for index, (unit, heading) in enumerate(units):
        if heading:
            continue
        chosen = _first_sentence(unit)
        if chosen.endswith(":"):
            following = next((u for u, h in units[index + 1 :] if not h), "")
            if following:
                chosen = f"{chosen} {_first_sentence(following)}"
        break
    else:
        if units:
            chosen = _first_sentence(units[0][0])
    chosen = _PLACEHOLDER.sub(lambda m: codes[int(m.group(1))], chosen)
    return " ".join(chosen.split())


def _units(text: str) -> list[tuple[str, bool]]:
    """The answer cut into paragraphs, list items, code blocks and headings (True), each
    with its inline Markdown and citations taken out; empty ones dropped."""
    units: list[tuple[str, bool]] = []
    paragraph: list[str] = []

    def close(heading: bool = False) -> None:
        unit = _clean(" ".join(paragraph))
        paragraph.clear()
        if unit:
            units.append((unit, heading))

    for raw in text.split("\n"):
        line = _QUOTE.sub("", raw.strip()).strip()
        if not line or _RULE.match(line) or _TABLE_RULE.match(line):
            if _SETEXT_RULE.match(line) and len(paragraph) == 1:
                close(heading=True)  # "Title\n=====" is a heading
            close()
            continue
        if _HEADING.match(line) or _BOLD_LINE.match(line):
            close()
            paragraph.append(_HEADING.sub("", line).rstrip("#").strip())
            close(heading=True)
            continue
        if _SETEXT_RULE.match(line) and len(paragraph) == 1:
            close(heading=True)
            continue
        if _BULLET.match(line) or _PLACEHOLDER.fullmatch(line):
            close()
            line = _BULLET.sub("", line)
        if line.startswith("|"):
            line = " ".join(cell.strip() for cell in line.strip("|").split("|"))
        paragraph.append(line)
        if _PLACEHOLDER.fullmatch(line):
            close()
    close()
    return units


def _clean(text: str) -> str:
    """Inline Markdown (links, emphasis) and citations out, spaces collapsed."""
    text = _IMAGE_OR_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _CITATION.sub("", text)
    for _ in range(2):  # **_nested_**
        text = _STRONG.sub(r"\2", text)
        text = _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), text)
        text = _STRIKE.sub(r"\1", text)
    return " ".join(text.split()).strip()


def _first_sentence(text: str) -> str:
    for match in _END.finditer(text):
        if _ends_sentence(text, match):
            return text[: match.end()].strip()
    return text.strip()


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    mark = match.group().rstrip("\"'”’)]")
    after = text[match.end() :].lstrip()
    if not after or "?" in mark or "!" in mark:
        return True
    if mark.startswith(("..", "…")):  # an ellipsis, unless the sentence goes on in lower case
        return not after[0].islower()
    before = text[: match.start()].split()
    word = before[-1].lstrip("([\"'“‘").casefold() if before else ""
    if not word or _PLACEHOLDER.fullmatch(word):
        return True
    if word in _ABBREVIATIONS or (_DOTTED.match(word) and "." in word):
        return False
    if word == "etc":
        return not after[0].islower()
    return not (word in _BEFORE_NUMBER and after[0].isdigit())
