"""Word (.docx): paragraphs and tables in order, headings from the paragraph styles."""

from __future__ import annotations

import io
import re
from typing import Any

from core.errors import CorruptDocument, EncryptedDocument
from core.knowledge.outline import BlockText
from core.knowledge.text_decoding import one_line
from core.knowledge.types import Document

_DOCX_HEADING = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE_ENCRYPTION = "EncryptionInfo".encode("utf-16-le")


def load_docx(name: str, data: bytes) -> Document:
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
    out = BlockText()
    for item in word.iter_inner_content():
        if isinstance(item, Paragraph):
            level = _docx_heading_level(item)
            if level is None:
                out.block(item.text)
            else:
                out.heading(level, item.text)
        elif isinstance(item, Table):
            out.block(_docx_table_text(item))
    title = one_line(word.core_properties.title or "")
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
            cells.append(one_line(cell.text))
        line = " | ".join(c for c in cells if c)
        if line:
            rows.append(line)
    return "\n".join(rows)
