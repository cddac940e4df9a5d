"""HTML: the text a reader sees, block by block, with its h1–h6 headings.

The page is read in one pass over Beautiful Soup's ``html.parser`` events, without
building its tree: the events are nested as Beautiful Soup nests them (an end tag
closes the most recent open element of its name and everything opened inside it; an
end tag with no open element is ignored; void elements close at once), and each
string is merged and typed as it would be, so the text is the one a walk over the
tree gives, at a fraction of the cost (building the tree was most of an HTML page's
indexing time outside the embedder).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from core.knowledge.outline import BlockText
from core.knowledge.text_decoding import decode, one_line
from core.knowledge.types import Document

# Not `head`: html.parser does not close an unclosed <head>, which would swallow the body.
_HTML_DROP = ("script", "style", "nav", "noscript", "template", "svg", "iframe", "title")
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details",
        "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form",
        "header", "hr", "html", "li", "main", "ol", "p", "section", "summary", "table",
        "tbody", "tfoot", "thead", "ul",
    }
)  # fmt: skip
_HTML_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SPACES = re.compile(r"\s+")
_BREAK_SPACES = re.compile(r" *\n *")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.IGNORECASE)


# How a string counts: page text, CDATA (in get_text, not in the walk), text of a special
# container (<rt>, <rp>, <style>, <script>, <template>: in the walk, not in get_text), or
# markup that is not text (comments, doctypes, declarations, processing instructions).
_TEXT, _CDATA, _CONTAINED, _OTHER = range(4)
_ASCII_SPACES = frozenset(" \n\t\x0c\r")


@dataclass(eq=False)
class _Element:
    name: str
    role: str
    """walk: inline | block | drop; inside a capture: inner | drop | cell; capture: heading |
    pre | tr; or void (closed at once)."""
    parts: list[str] = field(default_factory=list)
    cells: list[_Element] = field(default_factory=list)


class _Sink:
    """Stands where ``html.parser``'s Beautiful Soup handler expects its soup."""

    def __init__(
        self, empty: frozenset[str], preserve: frozenset[str], containers: frozenset[str]
    ) -> None:
        self.builder = SimpleNamespace(attribute_dict_class=dict, store_line_numbers=False)
        self.contains_replacement_characters = False
        self.empty, self.preserve, self.containers = empty, preserve, containers
        self.stack: list[_Element] = []
        self.open: Counter[str] = Counter()
        self.data: list[str] = []
        self.preserving = 0
        self.container_stack: list[_Element] = []
        self.drops = 0
        self.capture: _Element | None = None
        self.open_cells: list[_Element] = []
        self.title_element: _Element | None = None
        self.title_parts: list[str] | None = None
        self.out = BlockText()
        self.inline: list[str] = []

    # -- what the walk over the tree did -------------------------------------------------
    def flush(self) -> None:
        if self.inline:
            self.out.block(_BREAK_SPACES.sub("\n", "".join(self.inline)).strip())
            self.inline.clear()

    def _role(self, name: str) -> str:
        if self.capture is not None or self.drops:
            if name in _HTML_DROP:
                return "drop"
            in_row = self.capture is not None and self.capture.role == "tr" and not self.drops
            if in_row and name in ("td", "th"):
                return "cell"
            return "inner"
        if name in _HTML_DROP:
            return "drop"
        if name in _HTML_HEADINGS or name in ("pre", "tr"):
            self.flush()
            return "heading" if name in _HTML_HEADINGS else name
        if name == "br":
            self.inline.append("\n")
            return "void"
        if name == "li":
            self.flush()
            self.inline.append("- ")
            return "block"
        if name in _HTML_BLOCKS:
            self.flush()
            return "block"
        return "inline"

    def _closed(self, element: _Element) -> None:
        if element is self.title_element:
            self.title_element = None
        role = element.role
        if role == "drop":
            self.drops -= 1
        elif role == "cell":
            self.open_cells.remove(element)
        elif role == "block":
            self.flush()
        elif element is self.capture:
            self.capture = None
            if role == "heading":
                self.out.heading(_HTML_HEADINGS[element.name], " ".join(element.parts))
            elif role == "pre":
                self.out.block("".join(element.parts))
            else:
                cells = (one_line(" ".join(cell.parts)) for cell in element.cells)
                self.out.block(" | ".join(c for c in cells if c))

    def _string(self, text: str, kind: int) -> None:
        in_title = self.title_parts is not None and self.title_element is not None
        if in_title and kind in (_TEXT, _CDATA):
            assert self.title_parts is not None
            self.title_parts.append(text)
        if self.drops:
            return
        if self.capture is not None:
            if kind in (_TEXT, _CDATA):
                self.capture.parts.append(text)
                for cell in self.open_cells:
                    cell.parts.append(text)
        elif kind in (_TEXT, _CONTAINED):
            self.inline.append(_SPACES.sub(" ", text))

    # -- Beautiful Soup's tree building, without the tree ----------------------------------
    def handle_starttag(self, name: str, *_args: Any, **_kwargs: Any) -> Any:
        self.endData()
        element = _Element(name, self._role(name))
        if name == "title" and self.title_parts is None:
            self.title_element, self.title_parts = element, []
        if element.role == "drop":
            self.drops += 1
        elif element.role == "cell":
            assert self.capture is not None
            self.capture.cells.append(element)
            self.open_cells.append(element)
        elif element.role in ("heading", "pre", "tr"):
            self.capture = element
        self.stack.append(element)
        self.open[name] += 1
        if name in self.preserve:
            self.preserving += 1
        if name in self.containers:
            self.container_stack.append(element)
        return SimpleNamespace(is_empty_element=name in self.empty)

    def handle_endtag(self, name: str, _nsprefix: str | None = None) -> None:
        self.endData()
        while self.open[name] > 0:
            if self._pop().name == name:
                break

    def _pop(self) -> _Element:
        element = self.stack.pop()
        self.open[element.name] -= 1
        if element.name in self.preserve:
            self.preserving -= 1
        if self.container_stack and self.container_stack[-1] is element:
            self.container_stack.pop()
        self._closed(element)
        return element

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    def endData(self, container: Any = None) -> None:
        if not self.data:
            return
        text = "".join(self.data)
        self.data = []
        if not self.preserving and all(c in _ASCII_SPACES for c in text):
            text = "\n" if "\n" in text else " "
        if container is None:
            kind = _CONTAINED if self.container_stack else _TEXT
        else:
            kind = _CDATA if container.__name__ == "CData" else _OTHER
        self._string(text, kind)

    def finish(self) -> None:
        self.endData()
        while self.stack:
            self._pop()
        self.flush()


def load_html(name: str, data: bytes) -> Document:
    from bs4.builder import HTMLTreeBuilder
    from bs4.builder._htmlparser import BeautifulSoupHTMLParser
    from bs4.exceptions import ParserRejectedMarkup

    warnings: list[str] = []
    declared = _META_CHARSET.search(data[:4096])
    html = decode(name, data, warnings, declared.group(1).decode("ascii") if declared else None)
    sink = _Sink(
        frozenset(HTMLTreeBuilder.DEFAULT_EMPTY_ELEMENT_TAGS or ()),
        frozenset(HTMLTreeBuilder.DEFAULT_PRESERVE_WHITESPACE_TAGS),
        frozenset(HTMLTreeBuilder.DEFAULT_STRING_CONTAINERS),
    )
    soup: Any = sink  # what the parser calls on a soup, the sink answers
    parser = BeautifulSoupHTMLParser(soup, convert_charrefs=False)
    try:
        parser.feed(html)
        parser.close()
    except AssertionError as exc:  # html.parser's way of giving up on a page
        raise ParserRejectedMarkup(exc) from exc
    sink.finish()
    title = one_line("".join(sink.title_parts or []))
    return sink.out.document(name, title, warnings)
