"""Read user files into normalised text with their heading structure.

Every loader returns a :class:`Document` whose ``sections`` cover ``text`` in order
and carry the heading path of each span. Every failure is a ``DocumentError``
subclass whose ``reason`` is one sentence for the per-file report: no library
exception leaves this module.
"""

from __future__ import annotations

import codecs
import fnmatch
import io
import logging
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import (
    BinaryContent,
    CorruptDocument,
    DocumentError,
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    UnreadableFile,
    UnsupportedFormat,
    VanishedFile,
)
from core.knowledge.types import Document, Section

log = logging.getLogger(__name__)

MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown"})
RST_EXTENSIONS = frozenset({".rst"})
PLAIN_EXTENSIONS = frozenset({".txt", ".text"})
HTML_EXTENSIONS = frozenset({".html", ".htm"})
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    MARKDOWN_EXTENSIONS | RST_EXTENSIONS | PLAIN_EXTENSIONS | HTML_EXTENSIONS | {".pdf", ".docx"}
)

MAX_FILE_BYTES = 64 * 1024 * 1024
"""Files above this are refused: extracting them would stall indexing for minutes."""

BINARY_SNIFF_BYTES = 8192
_BINARY_CONTROL_SHARE = 0.10
# Control characters that real text files do contain (tab, newlines, form feed, escape).
_TEXT_CONTROLS = frozenset(b"\t\n\r\x0b\x0c\x1b")


# --------------------------------------------------------------------------- public API


def load_document(path: Path) -> Document:
    """Read one file into a :class:`Document`.

    Raises a ``DocumentError`` subclass (never a library exception) when the file
    cannot give text: unsupported format, empty, binary, corrupt, encrypted,
    unreadable, vanished or too large.
    """
    path = Path(path)
    name = str(path)
    ext = path.suffix.lower()
    size = _check_file(path, name)
    if ext not in SUPPORTED_EXTENSIONS:
        shown = f"'{ext}'" if ext else "files without an extension"
        raise UnsupportedFormat(
            name,
            f"unsupported format {shown}; supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))}",
        )
    if size == 0:
        raise EmptyDocument(name, "the file is empty")
    data = _read_bytes(path, name)
    reader = _READERS[ext]
    try:
        doc = reader(name, data)
    except DocumentError:
        raise
    except MemoryError as exc:
        raise DocumentTooLarge(name, "not enough memory to read this file") from exc
    except Exception as exc:  # a parser bug or odd file must not abort a whole indexing run
        log.debug("loader for %s failed", name, exc_info=True)
        raise CorruptDocument(name, f"could not be read ({type(exc).__name__}: {exc})") from exc
    if not doc.text.strip():
        raise EmptyDocument(name, "no text found in the file")
    if not doc.title:
        doc.title = path.stem
    return doc


def iter_files(
    paths: Iterable[Path],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    *,
    skip_hidden: bool = True,
) -> Iterator[Path]:
    """Yield the files to index under ``paths``, each once, in a stable order.

    A file named directly is always yielded (unless excluded), whatever its
    format, so the user hears why it was not indexed; a missing one too, so the
    report says "not found". Inside folders (recursive, sorted, symlink loops
    broken) a file is yielded when it matches ``include`` or, without
    ``include``, when its extension is supported. Patterns are ``fnmatch``
    globs tried on the path relative to the folder and on the bare name;
    an ``exclude`` pattern that matches a folder prunes it. Hidden files and
    folders (``.git``) are skipped unless ``skip_hidden`` is false.
    """
    include = [_clean_pattern(p) for p in include]
    exclude = [_clean_pattern(p) for p in exclude]
    seen_files: set[tuple[int, int] | str] = set()
    for root in paths:
        root = Path(root)
        if root.is_dir():
            yield from _walk(root, include, exclude, skip_hidden, seen_files)
            continue
        if _matches(root.name, root.name, exclude):
            continue
        key = _file_key(root)
        if key in seen_files:
            continue
        seen_files.add(key)
        yield root


# --------------------------------------------------------------------------- file checks


def _check_file(path: Path, name: str) -> int:
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise VanishedFile(name, "the file was not found (moved or deleted?)") from exc
    except PermissionError as exc:
        raise UnreadableFile(name, "permission denied; check the file's permissions") from exc
    except OSError as exc:
        raise UnreadableFile(name, f"cannot access the file ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise UnsupportedFormat(name, "this is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UnsupportedFormat(name, "not a regular file (device, pipe or socket)")
    if st.st_size > MAX_FILE_BYTES:
        raise DocumentTooLarge(
            name,
            f"the file is too large ({st.st_size / 2**20:.0f} MB, limit "
            f"{MAX_FILE_BYTES // 2**20} MB); split it into smaller files",
        )
    return st.st_size


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        with path.open("rb") as fh:
            # Read one byte past the cap: the file may have grown since stat().
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise VanishedFile(name, "the file disappeared while it was being read") from exc
    except PermissionError as exc:
        raise UnreadableFile(name, "permission denied; check the file's permissions") from exc
    except OSError as exc:
        raise UnreadableFile(name, f"the file could not be read ({exc.strerror or exc})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise DocumentTooLarge(
            name, f"the file is over the {MAX_FILE_BYTES // 2**20} MB limit; split it"
        )
    return data


# --------------------------------------------------------------------------- text decoding


def _looks_binary(sample: bytes) -> bool:
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 32 and b not in _TEXT_CONTROLS)
    return controls / len(sample) > _BINARY_CONTROL_SHARE


def _decode(name: str, data: bytes, warnings: list[str], declared: str | None = None) -> str:
    """Decode bytes as text: BOM first, then UTF-8, then the declared charset, then cp1252."""
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise CorruptDocument(
                    name, f"the file starts as {codec.upper()} but is not valid {codec.upper()}"
                ) from exc
            if _looks_binary(text[:BINARY_SNIFF_BYTES].encode("utf-8", "replace")):
                raise BinaryContent(name, "the file holds binary data, not text")
            return text
    if _looks_binary(data[:BINARY_SNIFF_BYTES]):
        raise BinaryContent(name, "the file holds binary data, not text (is the extension right?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    candidates = [c for c in (declared, "cp1252", "latin-1") if c]
    for codec in candidates:
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        warnings.append(
            f"not valid UTF-8; read as {codec}: check accented characters, "
            "or save the file as UTF-8"
        )
        return text
    raise CorruptDocument(name, "the text encoding could not be recognised")  # pragma: no cover


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\ufeff\ufffe]")
_TRAILING_SPACE = re.compile(r"[ \t]+(?=\n)")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")


def _normalise(text: str) -> str:
    """One spelling of whitespace and characters, so offsets and search agree everywhere."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\x0b", "\n").replace("\x0c", "\n\n").replace("\u2028", "\n")
    text = text.replace("\u2029", "\n\n").replace("\u00a0", " ")
    text = _CONTROL_CHARS.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _MANY_BLANK_LINES.sub("\n\n", text)
    return text.strip("\n")


_SPACES = re.compile(r"\s+")


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


# --------------------------------------------------------------------------- structure


@dataclass
class _Outline:
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


class _BlockText:
    """Builds text from blocks separated by blank lines, recording heading offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.outline = _Outline()
        self.first_heading = ""

    def block(self, text: str) -> int:
        text = _normalise(text).strip()
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
        title = _one_line(_normalise(title))
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


# --------------------------------------------------------------------------- plain text


def _load_plain(name: str, data: bytes) -> Document:
    warnings: list[str] = []
    text = _normalise(_decode(name, data, warnings))
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


def _load_markdown(name: str, data: bytes) -> Document:
    warnings: list[str] = []
    text = _normalise(_decode(name, data, warnings))
    outline = _Outline()
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
            heading = _one_line(atx.group(2) or "")
            if heading:
                outline.heading(offset, len(atx.group(1)), heading)
                title = title or (heading if len(atx.group(1)) == 1 else "")
            paragraph_start, paragraph = None, []
            continue
        setext = _SETEXT.match(line)
        if setext and paragraph_start is not None:
            level = 1 if setext.group(1)[0] == "=" else 2
            heading = _one_line(" ".join(paragraph))
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


def _load_rst(name: str, data: bytes) -> Document:
    warnings: list[str] = []
    text = _normalise(_decode(name, data, warnings))
    outline = _Outline()
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


# --------------------------------------------------------------------------- HTML

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
_BREAK_SPACES = re.compile(r" *\n *")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.IGNORECASE)


def _load_html(name: str, data: bytes) -> Document:
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
    html = _decode(name, data, warnings, declared.group(1).decode("ascii") if declared else None)
    soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("title")
    title = _one_line(title_tag.get_text()) if title_tag else ""
    for dropped in soup.find_all(_HTML_DROP):
        dropped.decompose()
    skipped = (Comment, Declaration, Doctype, CData, ProcessingInstruction)
    out = _BlockText()
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
            cells = [_one_line(c.get_text(" ")) for c in child.find_all(["td", "th"])]
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


# --------------------------------------------------------------------------- DOCX

_DOCX_HEADING = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE_ENCRYPTION = "EncryptionInfo".encode("utf-16-le")


def _load_docx(name: str, data: bytes) -> Document:
    if data.startswith(_OLE_MAGIC):
        # Word wraps a password-protected .docx in an OLE container; old .doc files use one too.
        if _OLE_ENCRYPTION in data:
            raise EncryptedDocument(
                name, "the document is password-protected; save a copy without a password"
            )
        raise CorruptDocument(
            name, "this is an old Word (.doc) file renamed .docx; save it as .docx in Word"
        )
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        word = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise CorruptDocument(
            name, f"not a valid Word document; it may be damaged ({type(exc).__name__})"
        ) from exc
    out = _BlockText()
    for item in word.iter_inner_content():
        if isinstance(item, Paragraph):
            level = _docx_heading_level(item)
            if level is None:
                out.block(item.text)
            else:
                out.heading(level, item.text)
        elif isinstance(item, Table):
            out.block(_docx_table_text(item))
    title = _one_line(word.core_properties.title or "")
    return out.document(name, title, [])


def _docx_heading_level(paragraph: Any) -> int | None:
    try:
        style = paragraph.style
    except Exception:  # a style id missing from styles.xml: read it as body text
        return None
    if style is None:
        return None
    for label in (style.name or "", style.style_id or ""):
        if label.lower() == "title":
            return 0
        found = _DOCX_HEADING.match(label)
        if found:
            return int(found.group(1))
    return None


def _docx_table_text(table: Any) -> str:
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            # python-docx repeats a merged cell once per grid column it spans.
            if cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(_one_line(cell.text))
        line = " | ".join(c for c in cells if c)
        if line:
            rows.append(line)
    return "\n".join(rows)


# --------------------------------------------------------------------------- PDF

_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl"}
)


def _load_pdf(name: str, data: bytes) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    if b"%PDF" not in data[:1024]:
        raise CorruptDocument(name, "not a PDF file (no %PDF header); is the extension right?")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise EncryptedDocument(
                name, "the PDF is password-protected; save a copy without a password"
            )
        page_count = len(reader.pages)
    except DocumentError:
        raise
    except DependencyError as exc:
        raise EncryptedDocument(
            name, "the PDF uses AES encryption; install the 'cryptography' package to read it"
        ) from exc
    except FileNotDecryptedError as exc:
        raise EncryptedDocument(name, "the PDF is password-protected") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise CorruptDocument(name, f"the PDF is damaged and could not be read ({exc})") from exc
    if page_count == 0:
        raise CorruptDocument(name, "the PDF has no pages; it is probably damaged")
    warnings: list[str] = []
    parts: list[str] = []
    pages: list[int] = []
    length = 0
    for number, page in enumerate(reader.pages, start=1):
        try:
            raw = page.extract_text() or ""
        except Exception as exc:  # one broken page must not lose the rest of the document
            warnings.append(f"page {number} could not be read ({type(exc).__name__})")
            raw = ""
        text = _normalise(raw.translate(_LIGATURES))
        if parts:
            parts.append("\n\n")
            length += 2
        pages.append(length)
        parts.append(text)
        length += len(text)
    text = "".join(parts)
    if not text.strip():
        raise EmptyDocument(
            name, "no extractable text: it may be a scanned PDF; run OCR on it first"
        )
    outline = _Outline()
    try:
        _pdf_outline(reader, reader.outline, 1, outline, pages)
    except Exception as exc:  # the outline is a bonus: the text is still worth indexing
        warnings.append(f"the PDF outline (bookmarks) could not be read ({type(exc).__name__})")
        outline = _Outline()
    title = ""
    try:
        meta = reader.metadata
        title = _one_line(str(meta.title)) if meta and meta.title else ""
    except Exception:
        title = ""
    return Document(
        name, text, outline.sections(len(text)), title=title, pages=pages, warnings=warnings
    )


def _pdf_outline(
    reader: Any, items: list[Any], level: int, outline: _Outline, pages: list[int]
) -> None:
    for item in items:
        if isinstance(item, list):
            _pdf_outline(reader, item, level + 1, outline, pages)
            continue
        number = reader.get_destination_page_number(item)
        title = _one_line(str(item.title or ""))
        if title and number is not None and 0 <= number < len(pages):
            outline.heading(pages[number], level, title)


_READERS: dict[str, Callable[[str, bytes], Document]] = {
    **{ext: _load_markdown for ext in MARKDOWN_EXTENSIONS},
    **{ext: _load_rst for ext in RST_EXTENSIONS},
    **{ext: _load_plain for ext in PLAIN_EXTENSIONS},
    **{ext: _load_html for ext in HTML_EXTENSIONS},
    ".docx": _load_docx,
    ".pdf": _load_pdf,
}


# --------------------------------------------------------------------------- file walking


def _clean_pattern(pattern: str) -> str:
    pattern = pattern.replace("\\", "/").strip()
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern.rstrip("/")


def _matches(relative: str, name: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        # `**/x` should also match `x` at the top: fnmatch's `*` already crosses folders.
        bare = pattern[3:] if pattern.startswith("**/") else pattern
        for candidate in {pattern, bare}:
            if fnmatch.fnmatch(relative, candidate) or fnmatch.fnmatch(name, candidate):
                return True
    return False


def _file_key(path: Path) -> tuple[int, int] | str:
    try:
        st = path.stat()
    except OSError:
        return os.path.abspath(path)
    return (st.st_dev, st.st_ino)


def _walk(
    root: Path,
    include: Sequence[str],
    exclude: Sequence[str],
    skip_hidden: bool,
    seen_files: set[tuple[int, int] | str],
) -> Iterator[Path]:
    seen_dirs: set[tuple[int, int]] = set()

    def visit(folder: Path, relative: PurePosixPath) -> Iterator[Path]:
        try:
            st = folder.stat()
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen_dirs:  # a symlink back up the tree
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: (e.name.casefold(), e.name))
        except OSError as exc:
            log.warning("skipping folder %s: %s", folder, exc.strerror or exc)
            return
        for entry in entries:
            if skip_hidden and entry.name.startswith("."):
                continue
            rel = relative / entry.name
            if _matches(rel.as_posix(), entry.name, exclude):
                continue
            try:
                is_dir = entry.is_dir()
                is_file = entry.is_file()
            except OSError:
                continue
            if is_dir:
                yield from visit(Path(entry.path), rel)
            elif is_file:
                if include:
                    wanted = _matches(rel.as_posix(), entry.name, include)
                else:
                    wanted = Path(entry.name).suffix.lower() in SUPPORTED_EXTENSIONS
                if not wanted:
                    continue
                path = Path(entry.path)
                key = _file_key(path)
                if key in seen_files:
                    continue
                seen_files.add(key)
                yield path

    yield from visit(root, PurePosixPath())
