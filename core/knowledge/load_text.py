"""Plain text, Markdown and reStructuredText: the text as it is, with the headings found
in it."""

from __future__ import annotations

import re

from core.knowledge.outline import Outline
from core.knowledge.text_decoding import decode, normalise, one_line
from core.knowledge.types import Document, Section


def load_plain(name: str, data: bytes) -> Document:
    warnings: list[str] = []
    text = normalise(decode(name, data, warnings))
    return Document(name, text, [Section((), 0, len(text))], warnings=warnings)


# --------------------------------------------------------------------------- markdown

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_MATTER_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$")
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_BLOCK_START = re.compile(r"^ {0,3}(?:[-+*>|]|\d+[.)]\s|<)")


def _lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    offset = 0
    for line in text.split("\n"):
        out.append((offset, line))
        offset += len(line) + 1
    return out


def load_markdown(name: str, data: bytes) -> Document:
    warnings: list[str] = []
    text = normalise(decode(name, data, warnings))
    outline = Outline()
    lines = _lines(text)
    title = ""
    i = 0
    if lines and lines[0][1].strip() == "---":
        # YAML front matter: its closing `---` would otherwise read as a setext heading.
        for j in range(1, len(lines)):
            if _FRONT_MATTER_END.match(lines[j][1]):
                front = "\n".join(line for _, line in lines[1:j])
                found = _FRONT_MATTER_TITLE.search(front)
                if found:
                    title = found.group(1).strip("'\"")
                i = j + 1
                break
    fence = ""
    paragraph_start: int | None = None  # offset of the first line of the current paragraph
    paragraph: list[str] = []
    for offset, line in lines[i:]:
        if fence:
            if re.match(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}[ \t]*$", line):
                fence = ""
            continue
        opened = _FENCE.match(line)
        if opened:
            fence = opened.group(1)
            paragraph_start, paragraph = None, []
            continue
        atx = _ATX.match(line)
        if atx:
            heading = one_line(atx.group(2) or "")
            if heading:
                outline.heading(offset, len(atx.group(1)), heading)
                title = title or (heading if len(atx.group(1)) == 1 else "")
            paragraph_start, paragraph = None, []
            continue
        setext = _SETEXT.match(line)
        if setext and paragraph_start is not None:
            level = 1 if setext.group(1)[0] == "=" else 2
            heading = one_line(" ".join(paragraph))
            outline.heading(paragraph_start, level, heading)
            title = title or (heading if level == 1 else "")
            paragraph_start, paragraph = None, []
            continue
        if not line.strip():
            paragraph_start, paragraph = None, []
        elif paragraph_start is None:
            # List items, quotes, tables and HTML are not paragraphs: `---` under them is a rule.
            if not _BLOCK_START.match(line) and not line.startswith("    "):
                paragraph_start, paragraph = offset, [line]
        else:
            paragraph.append(line)
    return Document(
        name, text, outline.sections(len(text)), title=title, warnings=warnings, markup="markdown"
    )


# --------------------------------------------------------------------------- reStructuredText

_RST_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#.<>])\1{2,}[ \t]*$")


def load_rst(name: str, data: bytes) -> Document:
    warnings: list[str] = []
    text = normalise(decode(name, data, warnings))
    outline = Outline()
    lines = _lines(text)
    # reST has no fixed heading characters: levels follow the order styles first appear.
    styles: list[tuple[str, bool]] = []
    title = ""
    i = 0
    while i < len(lines) - 1:
        offset, line = lines[i]
        under = _RST_ADORNMENT.match(lines[i + 1][1])
        over = _RST_ADORNMENT.match(line)
        if over and i + 2 < len(lines):
            under2 = _RST_ADORNMENT.match(lines[i + 2][1])
            heading = lines[i + 1][1].strip()
            if under2 and under2.group(1) == over.group(1) and heading:
                level = _rst_level(styles, (over.group(1), True))
                outline.heading(offset, level, heading)
                title = title or heading
                i += 3
                continue
        heading = line.strip()
        if (
            under
            and heading
            and not line[0].isspace()
            and not _RST_ADORNMENT.match(line)
            and len(lines[i + 1][1].rstrip()) >= len(line.rstrip())
        ):
            level = _rst_level(styles, (under.group(1), False))
            outline.heading(offset, level, heading)
            title = title or heading
            i += 2
            continue
        i += 1
    return Document(name, text, outline.sections(len(text)), title=title, warnings=warnings)


def _rst_level(styles: list[tuple[str, bool]], style: tuple[str, bool]) -> int:
    if style not in styles:
        styles.append(style)
    return styles.index(style) + 1
