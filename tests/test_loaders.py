from __future__ import annotations

import os
import random
import time
from pathlib import Path

import docmaker
import pytest
from html_reference import load_html_tree

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
from core.knowledge import loaders
from core.knowledge.load_html import load_html
from core.knowledge.loaders import SUPPORTED_EXTENSIONS, iter_files, load_document
from core.knowledge.types import Document


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return docmaker.make_mixed_corpus(tmp_path_factory.mktemp("corpus"))


def assert_sections_cover(doc: Document) -> None:
    assert doc.sections, "a document always has at least one section"
    assert doc.sections[0].start == 0
    assert doc.sections[-1].end == len(doc.text)
    for before, after in zip(doc.sections, doc.sections[1:], strict=False):
        assert before.end == after.start
    assert all(s.end > s.start for s in doc.sections)


def section_of(doc: Document, needle: str) -> tuple[str, ...]:
    offset = doc.text.index(needle)
    return next(s.heading_path for s in doc.sections if s.start <= offset < s.end)


@pytest.mark.parametrize("kind", docmaker.READABLE_KINDS)
def test_every_readable_kind_gives_its_text_and_covering_sections(
    corpus: dict[str, Path], kind: str
) -> None:
    doc = load_document(corpus[kind])
    if kind in docmaker.FACTS:
        assert docmaker.FACTS[kind] in doc.text
    assert doc.source == str(corpus[kind])
    assert doc.title
    assert "\r" not in doc.text and "\ufeff" not in doc.text
    assert_sections_cover(doc)


@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("encrypted_pdf", EncryptedDocument, "password"),
        ("scanned_pdf", EmptyDocument, "OCR"),
        ("corrupt_pdf", CorruptDocument, "damaged"),
        ("fake_pdf", CorruptDocument, "not a PDF"),
        ("empty", EmptyDocument, "empty"),
        ("whitespace", EmptyDocument, "no text"),
        ("binary_txt", BinaryContent, "binary"),
        ("unsupported", UnsupportedFormat, ".xlsx"),
    ],
)
def test_unreadable_kinds_raise_a_typed_error_with_a_reason(
    corpus: dict[str, Path], kind: str, error: type[DocumentError], words: str
) -> None:
    with pytest.raises(error) as caught:
        load_document(corpus[kind])
    assert words in caught.value.reason
    assert caught.value.path == str(corpus[kind])


def test_markdown_headings_follow_the_outline_not_code_or_front_matter(
    corpus: dict[str, Path],
) -> None:
    doc = load_document(corpus["markdown"])
    assert doc.title == "Reactor handbook"
    assert section_of(doc, docmaker.FACTS["markdown"]) == ("Reactor handbook", "Cooling")
    assert section_of(doc, "echo cool") == ("Reactor handbook", "Cooling")
    assert section_of(doc, "The pumps run") == ("Reactor handbook", "Cooling", "Pumps")
    assert section_of(doc, "Never open") == ("Reactor handbook", "Safety")
    headings = {h for s in doc.sections for h in s.heading_path}
    assert not any("comment" in h or "title:" in h for h in headings)


def test_markdown_rule_under_a_list_is_not_a_heading(tmp_path: Path) -> None:
    path = tmp_path / "list.md"
    path.write_text("# Top\n\n- item one\n---\n\nMore text after the rule.\n", encoding="utf-8")
    doc = load_document(path)
    assert [s.heading_path for s in doc.sections] == [("Top",)]


def test_rst_levels_follow_the_order_styles_appear(corpus: dict[str, Path]) -> None:
    doc = load_document(corpus["rst"])
    assert doc.title == "Kestrel"
    assert section_of(doc, docmaker.FACTS["rst"]) == ("Kestrel", "Overview")
    assert section_of(doc, "Run the installer") == ("Kestrel", "Install")


def test_html_keeps_content_structure_and_drops_scripts_and_navigation(
    corpus: dict[str, Path],
) -> None:
    doc = load_document(corpus["html"])
    assert doc.title == "Ferry timetable"
    assert "MUST NOT APPEAR" not in doc.text
    assert "color: red" not in doc.text
    assert section_of(doc, docmaker.FACTS["html"]) == ("Ferries", "Brannock line")
    assert "Tickets are sold on board.\nCash only." in doc.text
    assert "Monday | 06:40" in doc.text
    assert section_of(doc, "North loop") == ("Ferries", "Other lines")
    # Paragraphs stay apart, so chunking can split between them.
    assert "\n\nThe Brannock ferry" in doc.text


def test_html_declared_charset_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "old.htm"
    html = '<html><head><meta charset="iso-8859-15"></head><body><p>Prix: 5 € net</p></body>'
    path.write_bytes(html.encode("iso-8859-15"))
    doc = load_document(path)
    assert "5 € net" in doc.text
    assert doc.warnings  # the user learns the file was not UTF-8


def test_docx_headings_and_tables(corpus: dict[str, Path]) -> None:
    doc = load_document(corpus["docx"])
    assert doc.title == "Lumen annual report"
    assert section_of(doc, docmaker.FACTS["docx"]) == ("Lumen annual report", "Finance")
    assert "Salaries | 1.1 million" in doc.text
    assert section_of(doc, "Salaries") == ("Lumen annual report", "Finance", "Costs")
    assert section_of(doc, "Next year") == ("Lumen annual report", "Outlook")


def test_password_protected_docx_is_reported_as_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "secret.docx"
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100
    path.write_bytes(ole + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 100)
    with pytest.raises(EncryptedDocument):
        load_document(path)
    path.write_bytes(ole + b"\x00" * 100)
    with pytest.raises(CorruptDocument, match=r"\.doc"):
        load_document(path)


def test_pdf_pages_outline_and_title(corpus: dict[str, Path]) -> None:
    doc = load_document(corpus["pdf"])
    assert doc.title == "Valve manual"
    assert len(doc.pages) == 3 and doc.pages[0] == 0
    page_texts = [
        doc.text[start:end]
        for start, end in zip(doc.pages, [*doc.pages[1:], len(doc.text)], strict=True)
    ]
    assert docmaker.FACTS["pdf"] in page_texts[1]
    assert "Replace seals" in page_texts[2]
    assert section_of(doc, docmaker.FACTS["pdf"]) == ("Safety", "Closures")
    assert section_of(doc, "Replace seals") == ("Repair",)


def test_pdf_without_outline_is_one_section(tmp_path: Path) -> None:
    doc = load_document(docmaker.make_pdf(tmp_path, outline=False))
    assert [s.heading_path for s in doc.sections] == [()]
    assert len(doc.pages) == 3


def test_pdf_with_only_an_owner_password_opens(tmp_path: Path) -> None:
    doc = load_document(docmaker.make_encrypted_pdf(tmp_path, user_password=""))
    assert docmaker.FACTS["pdf"] in doc.text


def test_non_utf8_text_is_decoded_with_a_warning(corpus: dict[str, Path]) -> None:
    doc = load_document(corpus["cp1252"])
    assert "3 € le café" in doc.text
    assert any("UTF-8" in w for w in doc.warnings)
    assert not load_document(corpus["text"]).warnings


def test_utf16_and_bom_files_decode_cleanly(corpus: dict[str, Path]) -> None:
    doc = load_document(corpus["utf16"])
    assert doc.text.startswith(docmaker.FACTS["utf16"]) and not doc.warnings
    bom = load_document(corpus["bom"])
    assert bom.text.startswith("# Title with BOM")
    assert bom.sections[0].heading_path == ("Title with BOM",)


def test_missing_file_and_folder_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(VanishedFile, match="not found"):
        load_document(tmp_path / "gone.md")
    with pytest.raises(UnsupportedFormat, match="folder"):
        load_document(tmp_path)
    (tmp_path / "Makefile").write_text("all:\n\techo hi\n")
    with pytest.raises(UnsupportedFormat, match="without an extension"):
        load_document(tmp_path / "Makefile")


def test_permission_denied_is_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = docmaker.make_text(tmp_path)
    if os.name == "posix" and os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads everything, so make the open itself fail the way it would
        real_open = Path.open

        def denied(self: Path, *args: object, **kwargs: object) -> object:
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Path, "open", denied)
    try:
        with pytest.raises(UnreadableFile, match="permission"):
            load_document(path)
    finally:
        path.chmod(0o644)


def test_size_cap_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = docmaker.make_text(tmp_path)
    monkeypatch.setattr(loaders, "MAX_FILE_BYTES", 100)
    with pytest.raises(DocumentTooLarge, match="too large"):
        load_document(path)


def test_a_few_megabytes_on_one_line_load_quickly(tmp_path: Path) -> None:
    path = docmaker.make_huge_txt(tmp_path, megabytes=3)
    started = time.perf_counter()
    doc = load_document(path)
    assert time.perf_counter() - started < 5
    assert len(doc.text) == path.stat().st_size


def _mutations(data: bytes, rng: random.Random) -> list[bytes]:
    out = [
        data[: len(data) // 2],
        data[: len(data) // 5],
        bytes(rng.randrange(256) for _ in range(600)),
    ]
    for _ in range(6):
        blob = bytearray(data)
        for _ in range(20):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        out.append(bytes(blob))
    return out


@pytest.mark.parametrize("kind", ["markdown", "html", "docx", "pdf", "rst", "text"])
def test_damaged_files_never_leak_a_library_exception(
    corpus: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    rng = random.Random(kind)
    source = corpus[kind]
    data = source.read_bytes()
    for n, blob in enumerate(_mutations(data, rng)):
        path = tmp_path / f"m{n}{source.suffix}"
        path.write_bytes(blob)
        try:
            doc = load_document(path)
        except DocumentError as exc:
            assert exc.reason
        else:
            assert_sections_cover(doc)


# --------------------------------------------------------------------------- iter_files


def _tree(root: Path) -> None:
    for rel in [
        "b.md",
        "A.txt",
        "notes/deep/c.pdf",
        "notes/x.xlsx",
        "notes/readme.rst",
        ".git/config.md",
        ".hidden.md",
        "build/out.html",
    ]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("text")


def test_folders_yield_supported_files_in_a_stable_order(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    assert found == ["A.txt", "b.md", "build/out.html", "notes/deep/c.pdf", "notes/readme.rst"]


def test_include_and_exclude_patterns(tmp_path: Path) -> None:
    _tree(tmp_path)

    def rel(include: list[str], exclude: list[str]) -> list[str]:
        return [
            p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path], include, exclude)
        ]

    assert rel(["*.xlsx"], []) == ["notes/x.xlsx"]  # include opts into any extension
    assert rel(["notes/*"], []) == ["notes/deep/c.pdf", "notes/readme.rst", "notes/x.xlsx"]
    assert rel(["**/*.md"], []) == ["b.md"]
    assert rel([], ["build/", "*.pdf"]) == ["A.txt", "b.md", "notes/readme.rst"]
    assert rel([], ["notes"]) == ["A.txt", "b.md", "build/out.html"]


def test_hidden_files_can_be_included(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = {p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path], skip_hidden=False)}
    assert {".git/config.md", ".hidden.md"} <= found


def test_named_files_are_yielded_whatever_their_format_and_only_once(tmp_path: Path) -> None:
    _tree(tmp_path)
    named = [tmp_path / "notes/x.xlsx", tmp_path / "missing.md", tmp_path / "b.md"]
    found = list(iter_files([*named, tmp_path]))
    assert found[:3] == named
    assert found.count(tmp_path / "b.md") == 1
    with pytest.raises(UnsupportedFormat):
        load_document(found[0])


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_loops_terminate(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("hello")
    (tmp_path / "docs" / "loop").symlink_to(tmp_path, target_is_directory=True)
    started = time.perf_counter()
    found = list(iter_files([tmp_path]))
    assert time.perf_counter() - started < 2
    assert found == [tmp_path / "docs" / "a.md"]


def test_extensions_match_without_regard_to_case(tmp_path: Path) -> None:
    assert {".md", ".txt", ".pdf", ".docx", ".html", ".htm"} <= SUPPORTED_EXTENSIONS
    path = tmp_path / "SHOUT.MD"
    path.write_text("# Loud\n\nA heading in capitals.\n", encoding="utf-8")
    assert list(iter_files([tmp_path])) == [path]
    assert load_document(path).sections[0].heading_path == ("Loud",)


def test_deeply_nested_sloppy_html_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "sloppy.html"
    path.write_text("<div>" + "<span>" * 5000 + "Deep text survives the nesting.", encoding="utf-8")
    assert "Deep text survives the nesting." in load_document(path).text


# Tags, strings and markup of every kind the one-pass HTML reader has to nest and type as
# Beautiful Soup's tree does (unclosed, stray end tags, void, dropped, ruby, CDATA, ...).
_SOUP_TAGS = [
    "p", "div", "h1", "h2", "h3", "pre", "tr", "td", "th", "table", "li", "ul", "br", "span",
    "b", "script", "style", "nav", "title", "svg", "rt", "rp", "ruby", "textarea", "hr", "img",
    "section", "body", "html", "head", "template", "noscript", "a", "code", "tbody", "dd",
    "dt",
]  # fmt: skip
_SOUP_STRINGS = (
    "hello", " ", "\n", "  \n  ", "a &amp; b", "&nbsp;x", "&#65;&#x42;", "&bogus;",
    "&#999999999;", "<!-- c -->", "<![CDATA[cd]]>", "<!DOCTYPE html>", "tab\there",
    "x < y", "é", "\u00a0", "line\r\nbreak", "&lt;/p&gt;", "&", "&#128;", "<br/>", "<img/>",
)  # fmt: skip


def _tag_soup(rng: random.Random) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(1, 120)):
        roll = rng.random()
        if roll < 0.35:
            tag = rng.choice(_SOUP_TAGS)
            parts.append(f"<{tag}>" if rng.random() < 0.8 else f"<{tag.upper()} class='x'>")
        elif roll < 0.6:
            parts.append(f"</{rng.choice(_SOUP_TAGS)}>")
        else:
            parts.append(rng.choice(_SOUP_STRINGS))
    return "".join(parts)


def test_html_read_in_one_pass_gives_what_the_walk_over_the_tree_gave(
    corpus: dict[str, Path],
) -> None:
    pages = [corpus["html"].read_bytes()]
    rng = random.Random(17)
    pages += [_tag_soup(rng).encode("utf-8") for _ in range(400)]
    for page in pages:
        new, old = load_html("page.html", page), load_html_tree("page.html", page)
        assert (new.text, new.sections, new.title) == (old.text, old.sections, old.title), page
