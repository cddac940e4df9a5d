"""Build sample documents of every kind in a folder, for tests.

Each ``make_*`` function writes one file and returns its path. Every readable
document states one distinctive fact (``FACTS[kind]``) so that search and
agent tests can check that the right passage comes back. ``make_mixed_corpus``
writes them all, good and bad, and returns ``{kind: path}``.
"""

from __future__ import annotations

import io
import random
import zlib
from pathlib import Path

FACTS: dict[str, str] = {
    "markdown": "The Velquist reactor is cooled by liquid tin at 340 degrees.",
    "text": "Orchard ladders must be inspected every ninety days by a certified warden.",
    "html": "The Brannock ferry leaves Port Idris at 06:40 every weekday.",
    "docx": "Quarterly revenue of the Lumen division rose to 4.2 million crowns.",
    "pdf": "Tessaract valves close automatically when the pressure drops below 3 bar.",
    "rst": "The Kestrel compiler emits bytecode for the Ostrava virtual machine.",
    "cp1252": "Le café de Zoë ouvre à sept heures précises, même le dimanche.",
    "utf16": "Ämter in Übersee stempeln Anträge nur mittwochs.",
}
"""One sentence per readable kind, found verbatim in that document's text."""

_FILLER = (
    "This paragraph adds ordinary context so that the document has several chunks. "
    "It talks about schedules, maintenance and the people who keep things running. "
)


def _write(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode(encoding)
    path.write_bytes(data)
    return path


def make_markdown(folder: Path, name: str = "reactor.md") -> Path:
    """Markdown with front matter, ATX and setext headings, and a fenced `# comment`."""
    text = f"""---
title: Reactor handbook
---

Reactor handbook
================

Introductory words before any subsection. {_FILLER}

## Cooling

{FACTS["markdown"]} {_FILLER}

```bash
# this comment is code, not a heading
echo cool
```

### Pumps

The pumps run in pairs. {_FILLER * 2}

Safety
------

Never open the tin loop while it is hot. {_FILLER}
"""
    return _write(folder / name, text)


def make_text(folder: Path, name: str = "orchard.txt") -> Path:
    paragraphs = [f"{FACTS['text']} {_FILLER}"] + [_FILLER * 3 for _ in range(3)]
    return _write(folder / name, "\n\n".join(paragraphs) + "\n")


def make_rst(folder: Path, name: str = "kestrel.rst") -> Path:
    text = f"""=======
Kestrel
=======

Overview
--------

{FACTS["rst"]} {_FILLER}

Install
-------

Run the installer. {_FILLER}
"""
    return _write(folder / name, text)


def make_html(folder: Path, name: str = "ferry.html") -> Path:
    text = f"""<!DOCTYPE html>
<html><head><title>Ferry timetable</title>
<style>body {{ color: red; }}</style>
<script>var hidden = "SCRIPT TEXT MUST NOT APPEAR";</script>
</head><body>
<nav><a href="/">Home</a> NAVIGATION MUST NOT APPEAR</nav>
<h1>Ferries</h1>
<p>Ferries connect the islands. {_FILLER}</p>
<h2>Brannock line</h2>
<p>{FACTS["html"]}</p>
<p>Tickets are sold <b>on board</b>.<br>Cash only.</p>
<table><tr><th>Day</th><th>Departure</th></tr><tr><td>Monday</td><td>06:40</td></tr></table>
<h2>Other lines</h2>
<ul><li>North loop</li><li>South loop</li></ul>
<p>{_FILLER}</p>
</body></html>
"""
    return _write(folder / name, text)


def make_docx(folder: Path, name: str = "lumen.docx") -> Path:
    """Word file with a Title, Heading 1/2 paragraphs and a table."""
    import docx

    document = docx.Document()
    document.add_heading("Lumen annual report", level=0)
    document.add_paragraph(f"Summary of the year. {_FILLER}")
    document.add_heading("Finance", level=1)
    document.add_paragraph(f"{FACTS['docx']} {_FILLER}")
    document.add_heading("Costs", level=2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Item"
    table.cell(0, 1).text = "Amount"
    table.cell(1, 0).text = "Salaries"
    table.cell(1, 1).text = "1.1 million"
    document.add_heading("Outlook", level=1)
    document.add_paragraph(f"Next year looks steady. {_FILLER}")
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def _pdf_escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: list[list[str]], compress: bool = True) -> bytes:
    """A minimal valid PDF written by hand: one Helvetica text stream per page."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3
    first_page_id = 4
    kids = " ".join(f"{first_page_id + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        content_id = first_page_id + 2 * i + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {content_id} 0 R >>".encode()
        )
        ops = ["BT", "/F1 11 Tf", "14 TL", "56 740 Td"]
        for line in lines:
            ops.append(f"({_pdf_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        if compress:
            stream = zlib.compress(stream)
            head = f"<< /Length {len(stream)} /Filter /FlateDecode >>"
        else:
            head = f"<< /Length {len(stream)} >>"
        objects.append(head.encode() + b"\nstream\n" + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


PDF_PAGES: list[list[str]] = [
    ["Valve manual", "Chapter one: basics.", "Valves regulate flow in the plant."],
    ["Chapter two: safety.", FACTS["pdf"], "Operators log every closure."],
    ["Chapter three: repair.", "Replace seals with the part kit."],
]


def make_pdf(folder: Path, name: str = "valves.pdf", outline: bool = True) -> Path:
    """A three-page text PDF; with ``outline``, bookmarks for the three chapters."""
    path = _write(folder / name, pdf_bytes(PDF_PAGES))
    if outline:
        from pypdf import PdfWriter

        writer = PdfWriter(clone_from=str(path))
        writer.add_outline_item(title="Basics", page_number=0)
        safety = writer.add_outline_item(title="Safety", page_number=1)
        writer.add_outline_item(title="Closures", page_number=1, parent=safety)
        writer.add_outline_item(title="Repair", page_number=2)
        writer.add_metadata({"/Title": "Valve manual"})
        with path.open("wb") as fh:
            writer.write(fh)
    return path


def make_encrypted_pdf(
    folder: Path, name: str = "locked.pdf", user_password: str = "secret"
) -> Path:
    """An RC4-encrypted PDF (pure-python in pypdf); empty ``user_password`` opens freely."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(pdf_bytes(PDF_PAGES))).pages:
        writer.add_page(page)
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def make_scanned_pdf(folder: Path, name: str = "scan.pdf") -> Path:
    """A PDF whose pages hold no text (what a scanner without OCR produces)."""
    return _write(folder / name, pdf_bytes([[], []]))


def make_corrupt_pdf(folder: Path, name: str = "broken.pdf") -> Path:
    return _write(
        folder / name, b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R\n\x00\x17garbage"
    )


def make_fake_pdf(folder: Path, name: str = "notreally.pdf") -> Path:
    """A text file with a .pdf extension."""
    return _write(folder / name, "Just some words, not a PDF at all.\n")


def make_empty(folder: Path, name: str = "empty.txt") -> Path:
    return _write(folder / name, b"")


def make_whitespace(folder: Path, name: str = "blank.md") -> Path:
    return _write(folder / name, "  \n\n\t \r\n   \n")


def make_binary_txt(folder: Path, name: str = "image.txt") -> Path:
    rng = random.Random(7)
    return _write(
        folder / name, b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(4096))
    )


def make_cp1252_txt(folder: Path, name: str = "cafe.txt") -> Path:
    """Windows-1252 text (invalid as UTF-8), including a cp1252-only character (€)."""
    return _write(folder / name, f"{FACTS['cp1252']}\nPrix: 3 € le café.\n", encoding="cp1252")


def make_utf16_txt(folder: Path, name: str = "aemter.txt") -> Path:
    return _write(folder / name, f"{FACTS['utf16']}\r\nZweite Zeile.\r\n", encoding="utf-16")


def make_bom_utf8_md(folder: Path, name: str = "bom.md") -> Path:
    return _write(
        folder / name, "# Title with BOM\n\nBody text that is long enough.\n", "utf-8-sig"
    )


def make_huge_txt(folder: Path, name: str = "huge.txt", megabytes: float = 3.0) -> Path:
    """One enormous line of words, no newline and no sentence end."""
    rng = random.Random(11)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 11)))
        for _ in range(2000)
    ]
    target = int(megabytes * 1024 * 1024)
    parts: list[str] = []
    length = 0
    while length < target:
        word = rng.choice(words)
        parts.append(word)
        length += len(word) + 1
    return _write(folder / name, " ".join(parts))


def make_unsupported(folder: Path, name: str = "sheet.xlsx") -> Path:
    return _write(folder / name, b"PK\x03\x04not really a spreadsheet")


def make_mixed_corpus(folder: Path) -> dict[str, Path]:
    """Write every kind of sample into ``folder``; keys name the kind.

    Readable: markdown, text, rst, html, docx, pdf, cp1252, utf16, bom.
    Failing (with the error the loader should raise): encrypted_pdf
    (EncryptedDocument), scanned_pdf / empty / whitespace (EmptyDocument),
    corrupt_pdf / fake_pdf (CorruptDocument), binary_txt (BinaryContent),
    unsupported (UnsupportedFormat). ``huge`` is a few MB of one line; it is
    left out here because it slows every consumer; call ``make_huge_txt``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "markdown": make_markdown(folder),
        "text": make_text(folder),
        "rst": make_rst(folder),
        "html": make_html(folder),
        "docx": make_docx(folder),
        "pdf": make_pdf(folder),
        "cp1252": make_cp1252_txt(folder),
        "utf16": make_utf16_txt(folder),
        "bom": make_bom_utf8_md(folder),
        "encrypted_pdf": make_encrypted_pdf(folder),
        "scanned_pdf": make_scanned_pdf(folder),
        "corrupt_pdf": make_corrupt_pdf(folder),
        "fake_pdf": make_fake_pdf(folder),
        "empty": make_empty(folder),
        "whitespace": make_whitespace(folder),
        "binary_txt": make_binary_txt(folder),
        "unsupported": make_unsupported(folder),
    }


READABLE_KINDS = ("markdown", "text", "rst", "html", "docx", "pdf", "cp1252", "utf16", "bom")
"""Keys of ``make_mixed_corpus`` whose file loads without error."""
