"""The HTML loader as it was: Beautiful Soup builds the tree, a walk over it gives the text.

``core.knowledge.load_html`` reads the same page in one pass over the parser's events;
the tests hold it to this walk's output (text, sections, title) on sloppy pages, and
``bench/index.py`` times both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.knowledge.load_html import (
    _BREAK_SPACES,
    _HTML_BLOCKS,
    _HTML_DROP,
    _HTML_HEADINGS,
    _META_CHARSET,
    _SPACES,
)
from core.knowledge.outline import BlockText
from core.knowledge.text_decoding import decode, one_line
from core.knowledge.types import Document


def load_html_tree(name: str, data: bytes) -> Document:
    from bs4 import BeautifulSoup
    from bs4.element import (
        CData,
        Comment,
        Declaration,
        Doctype,
        NavigableString,
        ProcessingInstruction,
        Tag,
    )

    warnings: list[str] = []
    declared = _META_CHARSET.search(data[:4096])
    html = decode(name, data, warnings, declared.group(1).decode("ascii") if declared else None)
    soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("title")
    title = one_line(title_tag.get_text()) if title_tag else ""
    for dropped in soup.find_all(_HTML_DROP):
        dropped.decompose()
    skipped = (Comment, Declaration, Doctype, CData, ProcessingInstruction)
    out = BlockText()
    inline: list[str] = []

    def flush() -> None:
        if inline:
            out.block(_BREAK_SPACES.sub("\n", "".join(inline)).strip())
            inline.clear()

    # An explicit stack, not recursion: sloppy pages nest thousands of unclosed tags.
    stack: list[tuple[Iterator[Any], bool]] = [(iter(soup.children), False)]
    while stack:
        children, block_level = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if block_level:
                flush()
            continue
        if isinstance(child, NavigableString):
            if not isinstance(child, skipped):
                inline.append(_SPACES.sub(" ", str(child)))
            continue
        if not isinstance(child, Tag):
            continue
        tag = child.name.lower()
        if tag in _HTML_HEADINGS:
            flush()
            out.heading(_HTML_HEADINGS[tag], child.get_text(" "))
        elif tag == "br":
            inline.append("\n")
        elif tag == "pre":
            flush()
            out.block(child.get_text())
        elif tag == "tr":
            flush()
            cells = [one_line(c.get_text(" ")) for c in child.find_all(["td", "th"])]
            out.block(" | ".join(c for c in cells if c))
        elif tag == "li":
            flush()
            inline.append("- ")
            stack.append((iter(child.children), True))
        elif tag in _HTML_BLOCKS:
            flush()
            stack.append((iter(child.children), True))
        else:
            stack.append((iter(child.children), False))

    flush()
    return out.document(name, title, warnings)
