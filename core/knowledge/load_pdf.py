"""PDF: the text of each page, sections from the outline (bookmarks)."""

from __future__ import annotations

import io
from typing import Any

from core.errors import CorruptDocument, DocumentError, EmptyDocument, EncryptedDocument
from core.knowledge.outline import Outline
from core.knowledge.text_decoding import normalise, one_line
from core.knowledge.types import Document

_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl"}
)


def load_pdf(name: str, data: bytes) -> Document:
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
        text = normalise(raw.translate(_LIGATURES))
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
    outline = Outline()
    try:
        _pdf_outline(reader, reader.outline, 1, outline, pages)
    except Exception as exc:  # the outline is a bonus: the text is still worth indexing
        warnings.append(f"the PDF outline (bookmarks) could not be read ({type(exc).__name__})")
        outline = Outline()
    title = ""
    try:
        meta = reader.metadata
        title = one_line(str(meta.title)) if meta and meta.title else ""
    except Exception:
        title = ""
    return Document(
        name, text, outline.sections(len(text)), title=title, pages=pages, warnings=warnings
    )


def _pdf_outline(
    reader: Any, items: list[Any], level: int, outline: Outline, pages: list[int]
) -> None:
    for item in items:
        if isinstance(item, list):
            _pdf_outline(reader, item, level + 1, outline, pages)
            continue
        number = reader.get_destination_page_number(item)
        title = one_line(str(item.title or ""))
        if title and number is not None and 0 <= number < len(pages):
            outline.heading(pages[number], level, title)
