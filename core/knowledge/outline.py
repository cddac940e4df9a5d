"""Document structure for the loaders: heading marks become contiguous sections, and text
built block by block records where its headings start."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.knowledge.text_decoding import normalise, one_line
from core.knowledge.types import Document, Section


@dataclass
class Outline:
    """Collects heading marks and builds contiguous sections over the final text."""

    marks: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    stack: list[tuple[int, str]] = field(default_factory=list)

    def heading(self, offset: int, level: int, title: str) -> None:
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, title))
        self.marks.append((offset, tuple(t for _, t in self.stack)))

    def sections(self, length: int) -> list[Section]:
        marks = [(0, ()), *self.marks]
        starts: dict[int, tuple[str, ...]] = {}
        # At one offset the last mark wins: a chapter and its first subsection
        # on the same PDF page give the subsection's (longer) path.
        for offset, heading_path in marks:
            starts[min(max(offset, 0), length)] = heading_path
        ordered = sorted(starts.items())
        sections: list[Section] = []
        for i, (start, heading_path) in enumerate(ordered):
            end = ordered[i + 1][0] if i + 1 < len(ordered) else length
            if end > start:
                sections.append(Section(heading_path, start, end))
        return sections or [Section((), 0, length)]


class BlockText:
    """Builds text from blocks separated by blank lines, recording heading offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.outline = Outline()
        self.first_heading = ""

    def block(self, text: str) -> int:
        text = normalise(text).strip()
        if not text:
            return -1
        if self.parts:
            self.parts.append("\n\n")
            self.length += 2
        start = self.length
        self.parts.append(text)
        self.length += len(text)
        return start

    def heading(self, level: int, title: str) -> None:
        title = one_line(normalise(title))
        if not title:
            return
        start = self.block(title)
        self.outline.heading(start, level, title)
        if not self.first_heading:
            self.first_heading = title

    def document(self, source: str, title: str, warnings: list[str]) -> Document:
        text = "".join(self.parts)
        return Document(
            source=source,
            text=text,
            sections=self.outline.sections(len(text)),
            title=title or self.first_heading,
            warnings=warnings,
        )
