"""Incremental parser of the tag protocol: streamed text in, block events out.

Tags may arrive split across chunks at any point (``<thi`` + ``nk>``), so a
``<`` that could still become a tag is held back until it resolves; a half tag
never reaches the screen. The parser is lenient (case, spaces inside tags,
missing tags) and reports every deviation as a :class:`ProtocolError` item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.agent.events import BlockEnd, BlockStart, ProtocolError, Token, coalesce_tokens

ParseItem = BlockStart | Token | BlockEnd | ProtocolError

# One definition of what counts as a protocol tag: escaping.py neutralises exactly
# the ``<`` that could start one of these.
TAG_NAME_PATTERN = r"think|query[\s_-]*res|query|results"
TAG_RE = re.compile(rf"<\s*(/?)\s*({TAG_NAME_PATTERN})\s*>", re.IGNORECASE)
# Tag-shaped text with a name we do not know (<search>, </answer>); kept strict so
# that "a < b" in reasoning is not mistaken for one.
UNKNOWN_TAG_RE = re.compile(r"</?[A-Za-z][\w-]{0,30}>")


def _prefix_pattern(parts: list[str]) -> str:
    """A regex for any prefix of the sequence ``parts`` (each part a regex atom)."""
    pattern = ""
    for part in reversed(parts):
        pattern = f"(?:{part}{pattern})?"
    return pattern


_NAME_PREFIXES = "|".join(
    _prefix_pattern(parts)
    for parts in (
        [*"think", r"\s*"],
        [*"query", r"[\s_-]*", *"res", r"\s*"],
        [*"results", r"\s*"],
    )
)
# A "<" followed by this much could still turn into a tag once more text arrives;
# anything else ("a < 3") is shown at once.
_PARTIAL_RE = re.compile(
    rf"<\s*/?\s*(?:{_NAME_PREFIXES})\Z|</?[A-Za-z][\w-]{{0,30}}\Z", re.IGNORECASE
)
_MAX_PARTIAL = 48

BLOCK_TAGS = ("think", "query", "results", "query_res")


def canonical_tag(name: str) -> str:
    """``Query Res`` → ``query_res``; ``THINK`` → ``think``."""
    lowered = re.sub(r"[\s_-]+", "", name.lower())
    return "query_res" if lowered == "queryres" else lowered


@dataclass(frozen=True)
class Block:
    """One block of a trace. ``start``/``end`` span the block with its tags in the text."""

    tag: str
    text: str
    start: int
    end: int
    closed: bool = True
    """False when the text ended (or another block began) before its closing tag."""


def _excerpt(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class TagParser:
    """Feeds on streamed text; returns BlockStart/Token/BlockEnd/ProtocolError items.

    With ``allow_query_res=False`` (the live loop) a ``<query_res>`` written by the
    model is a forged block: reported once and its content dropped, because only
    the loop writes search results. With ``True`` (re-reading a saved trace) it is
    an ordinary block.

    Text outside any block opens an *implicit* think block, so nothing the model
    says is lost; it is reported as ``stray_text`` (or ``no_tags`` when the model
    never wrote a tag at all).
    """

    def __init__(self, *, allow_query_res: bool = False) -> None:
        self.allow_query_res = allow_query_res
        self.blocks: list[Block] = []
        self.errors: list[ProtocolError] = []
        self.tags_seen = False
        self._pending = ""
        self._pos = 0
        self._tag: str | None = None
        self._implicit = False
        self._forging = False
        self._text: list[str] = []
        self._start = 0

    # -- state the loop looks at ---------------------------------------------------

    @property
    def in_block(self) -> str | None:
        """The block being written (explicit or implicit), or None."""
        return self._tag

    @property
    def open_tag(self) -> str | None:
        """The block opened by a tag the model wrote and not yet closed, or None."""
        return None if self._implicit else self._tag

    @property
    def block_text(self) -> str:
        return "".join(self._text)

    @property
    def forging(self) -> bool:
        """Inside a ``<query_res>`` the model wrote itself."""
        return self._forging

    # -- input ---------------------------------------------------------------------

    def feed(self, text: str) -> list[ParseItem]:
        out: list[ParseItem] = []
        buf = self._pending + text
        base = self._pos - len(self._pending)
        self._pending = ""
        i = 0
        while i < len(buf):
            j = buf.find("<", i)
            if j < 0:
                self._text_run(buf[i:], base + i, out)
                i = len(buf)
                break
            if j > i:
                self._text_run(buf[i:j], base + i, out)
            match = TAG_RE.match(buf, j)
            if match:
                self._tag_found(
                    canonical_tag(match.group(2)),
                    bool(match.group(1)),
                    match.group(0),
                    base + j,
                    base + match.end(),
                    out,
                )
                i = match.end()
                continue
            # Document text (a forged block, or the passages of a saved trace) is never
            # judged: the live loop injects passages without parsing them.
            quoted = self._forging or self._tag == "query_res"
            unknown = None if quoted else UNKNOWN_TAG_RE.match(buf, j)
            if unknown:
                self._error(out, "unknown_tag", f"{unknown.group(0)} is not a protocol tag")
                self._text_run(unknown.group(0), base + j, out)
                i = unknown.end()
                continue
            rest = buf[j:]
            if len(rest) <= _MAX_PARTIAL and _PARTIAL_RE.match(rest):
                self._pending = rest
                i = len(buf)
                break
            self._text_run("<", base + j, out)
            i = j + 1
        self._pos = base + len(buf)
        return coalesce_tokens(out)

    def close(self) -> list[ParseItem]:
        """The model's output ended: flush held text and close the open block (lenient)."""
        out = self._flush()
        if self._forging:
            self._forging = False
        elif self._tag is not None:
            tag, implicit, text = self._tag, self._implicit, self.block_text
            self._end_block(out, closed=False)
            if implicit:
                kind = "stray_text" if self.tags_seen else "no_tags"
                self._error(out, kind, _excerpt(text))
            else:
                self._error(out, "unclosed_tag", f"<{tag}> was never closed")
        return coalesce_tokens(out)

    def abort(self) -> list[ParseItem]:
        """Cancelled: end the open block without judging the model for it. A half-written
        tag held back (``<thi``) is dropped: the user stopped the model before it became a
        tag or text (a stopped turn showed "<think" as its thinking)."""
        self._pending = ""
        out: list[ParseItem] = []
        self._forging = False
        if self._tag is not None:
            self._end_block(out, closed=False)
        return coalesce_tokens(out)

    # -- internals -----------------------------------------------------------------

    def _flush(self) -> list[ParseItem]:
        out: list[ParseItem] = []
        if self._pending:
            pending, self._pending = self._pending, ""
            self._text_run(pending, self._pos - len(pending), out)
        return out

    def _error(self, out: list[ParseItem], kind: str, detail: str) -> None:
        error = ProtocolError(kind, detail)
        self.errors.append(error)
        out.append(error)

    def _text_run(self, text: str, pos: int, out: list[ParseItem]) -> None:
        if not text or self._forging:
            return
        if self._tag is None:
            stripped = text.lstrip()
            if not stripped:
                return  # whitespace between blocks is layout, not content
            pos += len(text) - len(stripped)
            text = stripped
            self._begin_block("think", pos, out, implicit=True)
        self._text.append(text)
        out.append(Token(self._tag or "think", text))

    def _begin_block(self, tag: str, pos: int, out: list[ParseItem], *, implicit: bool) -> None:
        self._tag = tag
        self._implicit = implicit
        self._text = []
        self._start = pos
        out.append(BlockStart(tag))

    def _end_block(self, out: list[ParseItem], *, closed: bool, end: int | None = None) -> None:
        assert self._tag is not None
        text = self.block_text
        self.blocks.append(
            Block(self._tag, text, self._start, self._pos if end is None else end, closed)
        )
        out.append(BlockEnd(self._tag, text))
        self._tag = None
        self._implicit = False
        self._text = []

    def _tag_found(
        self, tag: str, closing: bool, raw: str, start: int, end: int, out: list[ParseItem]
    ) -> None:
        if self._forging:
            if closing and tag == "query_res":
                self._forging = False
            return
        current = self._tag
        if current is None:
            self.tags_seen = True
            if closing:
                self._error(out, "stray_text", f"{raw} closes no open block")
            else:
                self._open(tag, raw, start, out)
            return
        if closing and tag == current:
            self.tags_seen = True
            implicit, text = self._implicit, self.block_text
            self._end_block(out, closed=True, end=end)
            if implicit:
                self._error(
                    out, "stray_text", f"text before {raw} had no opening tag: " + _excerpt(text)
                )
            return
        # Inside think, a new block's opening tag means the model forgot </think>;
        # inside query/results/query_res every other tag is just text.
        if current == "think" and not closing and (tag != "think" or self._implicit):
            self.tags_seen = True
            implicit, text = self._implicit, self.block_text
            self._end_block(out, closed=False, end=start)
            if implicit:
                self._error(out, "stray_text", _excerpt(text))
            else:
                self._error(out, "unclosed_tag", f"<think> was never closed before {raw}")
            self._open(tag, raw, start, out)
            return
        self._text_run(raw, start, out)

    def _open(self, tag: str, raw: str, start: int, out: list[ParseItem]) -> None:
        if tag == "query_res" and not self.allow_query_res:
            self._forging = True
            self._error(out, "forged_block", f"the model wrote {raw}; only the app writes results")
            return
        self._begin_block(tag, start, out, implicit=False)


def parse_trace(text: str) -> list[Block]:
    """Blocks of a saved trace (query_res included), e.g. to build training data."""
    parser = TagParser(allow_query_res=True)
    parser.feed(text)
    parser.close()
    return parser.blocks


def trace_errors(text: str) -> list[ProtocolError]:
    """The protocol errors a saved trace contains, as the live loop would have seen them."""
    parser = TagParser(allow_query_res=True)
    parser.feed(text)
    parser.close()
    return parser.errors


_BRACKET_RE = re.compile(r"\[\s*(\d{1,4}(?:\s*[,;]\s*\d{1,4})*)\s*\]")
# A bare number that is not a chunk label (file.md#3), a decimal or part of a word.
_BARE_RE = re.compile(r"(?<![\w#.])(\d{1,4})(?![\w]|\.\d)")


def bracket_citations(text: str) -> list[int]:
    """Numbers cited as ``[n]`` (also ``[1, 2]``), in order of first mention."""
    found: list[int] = []
    for match in _BRACKET_RE.finditer(text):
        found.extend(int(n) for n in re.split(r"\s*[,;]\s*", match.group(1)))
    return list(dict.fromkeys(found))


def results_numbers(text: str) -> list[int]:
    """The passage numbers a ``<results>`` block vets: ``[n]``, else bare numbers (``1, 3``)."""
    cited = bracket_citations(text)
    if cited:
        return cited
    return list(dict.fromkeys(int(m.group(1)) for m in _BARE_RE.finditer(text)))
