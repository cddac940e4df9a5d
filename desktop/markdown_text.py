"""Markdown the model (or a document) wrote, made safe to render, and the app's citation links.

The model's text is never edited inside code: Markdown is rendered first, then ``[n]`` in the
document's plain-text runs (outside code spans and code blocks) becomes a ``cite:n`` link, for
the passages the app itself numbered. Markdown the model left unbalanced (an odd backtick, an
unclosed fence, a lone ``**``) is closed or neutralised before rendering, so one stray mark
cannot turn the rest of an answer monospace or bold.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Mapping

from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor, QTextDocument, QTextFormat

from core.knowledge.types import Hit

LINK_COLOR = "#2563eb"
CITATION_RE = re.compile(r"\[\s*(\d{1,4}(?:\s*[,;]\s*\d{1,4})*)\s*\]")
"""``[n]`` or ``[n, m]`` as the parser reads citations (``core.agent.parser``)."""
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_TICKS_RE = re.compile(r"(?<!\\)`+")
_STRONG_RE = re.compile(r"(?<![\\*])(\*\*|__)(?!\*)")


# -- balancing ------------------------------------------------------------------------


def balance_markdown(text: str) -> str:
    """``text`` with every unclosed fence closed and every unpaired inline code or strong
    marker escaped, so it renders as the writer evidently meant."""
    lines = text.split("\n")
    out: list[str] = []
    fence: str | None = None
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.extend(_balance_inline("\n".join(paragraph)).split("\n"))
            paragraph.clear()

    for line in lines:
        match = _FENCE_RE.match(line)
        if fence is not None:
            out.append(line)
            if match and _closes(match.group(1), fence, line):
                fence = None
            continue
        if match and not (match.group(1)[0] == "`" and "`" in line.strip()[len(match.group(1)) :]):
            flush()
            fence = match.group(1)
            out.append(line)
            continue
        if not line.strip():
            flush()
            out.append(line)
            continue
        paragraph.append(line)
    flush()
    if fence is not None:
        out.append(fence)  # the model stopped inside a code block: close it where it stopped
    return "\n".join(out)


def _closes(run: str, fence: str, line: str) -> bool:
    """A closing fence: the opening's character, at least as long, nothing else on the line."""
    return run[0] == fence[0] and len(run) >= len(fence) and not line.strip().strip(fence[0])


def _balance_inline(paragraph: str) -> str:
    """Escape the backtick runs that close no code span on their own line; then the strong
    markers (outside code spans) left without a partner on their line."""
    _, unpaired = _pair_ticks(paragraph)
    text = _escape(paragraph, unpaired)
    return _balance_strong(text, _pair_ticks(text)[0])


def _pair_ticks(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The code spans and the runs that open none. A span opens at a run that touches the
    word after it and closes at the next run as long, on the same line, that touches the
    word before it; a run with space on both sides (a stray mark) opens nothing."""
    runs = list(_TICKS_RE.finditer(text))
    spans: list[tuple[int, int]] = []
    unpaired: list[tuple[int, int]] = []
    i = 0
    while i < len(runs):
        opener = runs[i]
        after = text[opener.end() : opener.end() + 1]
        same = (j for j in range(i + 1, len(runs)) if runs[j].group() == opener.group())
        closer = next(same, None)
        if (
            not after.strip()
            or closer is None
            or "\n" in text[opener.end() : runs[closer].start()]
            or not text[runs[closer].start() - 1].strip()
        ):
            unpaired.append(opener.span())
            i += 1
        else:
            spans.append((opener.start(), runs[closer].end()))
            i = closer + 1
    return spans, unpaired


def _escape(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + "".join("\\" + c for c in text[start:end]) + text[end:]
    return text


def _balance_strong(text: str, code: list[tuple[int, int]]) -> str:
    lonely: list[tuple[int, int]] = []
    offset = 0
    for line in text.split("\n"):
        marks: dict[str, list[tuple[int, int]]] = {}
        for mark in _STRONG_RE.finditer(line):
            start = offset + mark.start()
            if not any(a <= start < b for a, b in code):
                marks.setdefault(mark.group(), []).append((start, offset + mark.end()))
        lonely += [found[-1] for found in marks.values() if len(found) % 2]
        offset += len(line) + 1
    return _escape(text, lonely)


# -- rendering ------------------------------------------------------------------------


def is_code(cursor_format: QTextCharFormat, block_format: QTextFormat) -> bool:
    families = cursor_format.fontFamilies() or []
    return (
        cursor_format.fontFixedPitch()
        or "monospace" in families
        or block_format.hasProperty(QTextFormat.Property.BlockCodeFence)
        or block_format.toBlockFormat().nonBreakableLines()
    )


def link_citations(doc: QTextDocument, known: Collection[int]) -> list[int]:
    """Make every ``[n]`` outside code a ``cite:n`` link when passage n is in ``known``;
    returns the numbers linked, in order of first appearance."""
    targets: list[tuple[int, int, int]] = []  # (position, length, number)
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.isValid() and not is_code(fragment.charFormat(), block.blockFormat()):
                for match in CITATION_RE.finditer(fragment.text()):
                    targets += _citation_targets(match, fragment.position(), known)
            it += 1
        block = block.next()
    cursor = QTextCursor(doc)
    for position, length, number in reversed(targets):
        cursor.setPosition(position)
        cursor.setPosition(position + length, QTextCursor.MoveMode.KeepAnchor)
        cursor.mergeCharFormat(citation_format(number))
    return list(dict.fromkeys(number for _, _, number in targets))


def _citation_spans(bracket: str) -> list[tuple[int, int, int]]:
    """``(start, end, number)`` of the links in a citation bracket: ``[n]`` whole, in
    ``[n, m]`` each number on its own."""
    numbers = [(m.start(), m.end(), int(m.group())) for m in re.finditer(r"\d+", bracket)]
    if len(numbers) == 1:
        return [(0, len(bracket), numbers[0][2])]
    return numbers


def _citation_targets(
    match: re.Match[str], offset: int, known: Collection[int]
) -> list[tuple[int, int, int]]:
    """(position, length, number) of each known citation link in ``match``."""
    at = offset + match.start()
    return [(at + a, b - a, n) for a, b, n in _citation_spans(match.group()) if n in known]


def citation_format(number: int) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setAnchor(True)
    fmt.setAnchorHref(f"cite:{number}")
    fmt.setForeground(QColor(LINK_COLOR))
    fmt.setFontUnderline(True)
    return fmt


def render_markdown(doc: QTextDocument, text: str, known: Collection[int] = ()) -> None:
    """Render the model's Markdown into ``doc`` (balanced first) and link its citations."""
    doc.setMarkdown(balance_markdown(text))
    if known:
        link_citations(doc, known)


def snippet_of(text: str, limit: int = 180, heading: str = "") -> str:
    """A passage's opening as it reads (Markdown marks gone, lines joined), cut at a word;
    a first line that only repeats the passage's own heading (shown beside it) is left out."""
    lines = markdown_plain(text).strip().splitlines()
    last_heading = heading.rsplit(">", 1)[-1].strip()
    if len(lines) > 1 and last_heading and lines[0].strip() == last_heading:
        lines = lines[1:]
    snippet = " ".join(" ".join(lines).split())
    if len(snippet) > limit:
        snippet = snippet[:limit].rsplit(" ", 1)[0] + " …"
    return snippet


def markdown_plain(text: str) -> str:
    """What Markdown reads as, without its marks (for one-line snippets)."""
    doc = QTextDocument()
    doc.setMarkdown(balance_markdown(text))
    return doc.toPlainText()


# -- the vetted passages ----------------------------------------------------------------

_RESULT_LINE_RE = re.compile(
    r"^\s*(?:[-*•]\s*)?\[\s*(\d{1,4})\s*\]"  # [n]
    r"(?:\s*[^\s:,;—–]+#\d+(?:\s*\([^)]*\))?)?"  # a label the model copied (or made up)
    r"\s*(?:[:—–-]\s*)?"
)


def results_html(text: str, passages: Mapping[int, Hit]) -> str:
    """The ``<results>`` block as HTML: each vetted passage under the app's own label (the
    passage its number stands for in this run), then the model's reason; any other ``[n]``
    links to the passage the app numbered n."""
    lines = []
    for line in text.splitlines():
        match = _RESULT_LINE_RE.match(line)
        number = int(match.group(1)) if match else 0
        if match:
            reason = _linked(line[match.end() :], passages)
            if number in passages:
                hit = passages[number]
                label = f'<a href="cite:{number}">[{number}] {html.escape(hit.label)}</a>'
            else:  # a number the app never gave: say so rather than repeat a made-up label
                label = f"[{number}] <i>(no passage has this number)</i>"
            lines.append(f"{label} — {reason}" if reason.strip() else label)
        else:
            lines.append(_linked(line, passages))
    return "<div>" + "<br>".join(lines) + "</div>"


def _linked(text: str, passages: Mapping[int, Hit]) -> str:
    """Escaped ``text`` with its known citations as links."""
    out, last = [], 0
    for match in CITATION_RE.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        bracket, cursor = match.group(), 0
        for start, end, number in _citation_spans(bracket):
            out.append(html.escape(bracket[cursor:start]))
            piece = html.escape(bracket[start:end])
            known = number in passages
            out.append(f'<a href="cite:{number}">{piece}</a>' if known else piece)
            cursor = end
        out.append(html.escape(bracket[cursor:]))
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)
