"""Markup noise out of passage text, with a map back to the original offsets.

Markdown documents carry text a reader never sees: HTML comments (API docs put
metadata such as ``<!-- YAML added: v0.0.1 -->`` in every section), link
targets (``[text](url)``, ``[`setTimeout()`][]``) and link definitions
(``[id]: https://…``). A model pays for every such token in every prompt and the
embedder sees noise, so chunks are cut from the *clean* text, while each chunk's
``start``/``end`` still point into the original, so a click opens the right place.
Code (fenced blocks and inline spans) is kept verbatim.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from dataclasses import dataclass

_MARKDOWN_NOISE = re.compile(
    # A fenced code block, up to its closing fence or the end of the text.
    r"(?P<fence>^[ ]{0,3}(?P<mark>`{3,}|~{3,})[^\n]*\n(?:[^\n]*\n)*?"
    r"(?:[ ]{0,3}(?P=mark)[`~]*[ \t]*(?:\n|\Z)|[^\n]*\Z))"
    r"|(?P<comment><!--[\s\S]*?(?:-->|\Z))"
    r"|(?P<definition>^[ ]{0,3}\[[^\]\n]+\]:[ \t]*\S+[^\n]*(?:\n|\Z))"
    r"|(?P<link>!?\[(?P<label>[^\[\]\n]*)\](?:\[[^\[\]\n]*\]|\((?:[^()\n]|\([^()\n]*\))*\)))"
    r"|(?P<code>(?P<ticks>`+)[^\n]*?(?P=ticks))",
    re.MULTILINE,
)


@dataclass(frozen=True)
class CleanText:
    """``text`` is the clean text; ``origin[i]`` is the original offset of ``text[i]``
    (``origin[len(text)]`` is the original length)."""

    text: str
    origin: array[int]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original offsets covering clean ``text[start:end]`` (end exclusive)."""
        if end <= start:
            return self.origin[start], self.origin[start]
        return self.origin[start], self.origin[end - 1] + 1

    def clean_offset(self, original: int) -> int:
        """The first clean offset at or after an original offset (for section bounds)."""
        return bisect_left(self.origin, original, 0, len(self.text))


def identity(text: str) -> CleanText:
    return CleanText(text, array("q", range(len(text) + 1)))


def clean_markdown(text: str) -> CleanText:
    """Drop comments and link definitions; keep a link's label, not its target."""
    parts: list[str] = []
    origin = array("q")
    cursor = 0

    def keep(start: int, end: int) -> None:
        if end > start:
            parts.append(text[start:end])
            origin.extend(range(start, end))

    for match in _MARKDOWN_NOISE.finditer(text):
        if match.group("fence") is not None or match.group("code") is not None:
            continue  # code is content: left as it is
        keep(cursor, match.start())
        if match.group("link") is not None:
            keep(match.start("label"), match.end("label"))
        cursor = match.end()
    keep(cursor, len(text))
    origin.append(len(text))
    return CleanText("".join(parts), origin)
