from __future__ import annotations

import itertools
import random
import time
from pathlib import Path

import docmaker
import pytest

from core.config import ChunkingConfig
from core.knowledge.chunking import chunk_document
from core.knowledge.loaders import load_document
from core.knowledge.types import DocChunk, Document, Section

CONFIGS = [
    ChunkingConfig(size=100, overlap=0, min_chars=0),
    ChunkingConfig(size=120, overlap=40, min_chars=10),
    ChunkingConfig(size=300, overlap=149, min_chars=30),
    ChunkingConfig(),
]


def check_invariants(doc: Document, chunks: list[DocChunk], config: ChunkingConfig) -> None:
    """What every consumer relies on: exact offsets, bounds, sections, overlap, order."""
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.source == doc.source
        assert 0 < len(chunk.text) <= config.size
        assert chunk.text == chunk.text.strip()
        section = next(s for s in doc.sections if s.start <= chunk.start < s.end)
        assert chunk.end <= section.end, "a chunk crossed a section boundary"
        assert chunk.heading_path == section.heading_path
    for before, after in itertools.pairwise(chunks):
        assert after.start > before.start and after.end > before.end
        if before.heading_path == after.heading_path and after.start < before.end:
            assert before.end - after.start <= config.overlap


def check_coverage(doc: Document, chunks: list[DocChunk]) -> None:
    """With no minimum length, every non-space character lands in some chunk."""
    covered = bytearray(len(doc.text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    lost = [i for i, ch in enumerate(doc.text) if not ch.isspace() and not covered[i]]
    assert not lost, f"text lost at {lost[:5]}: {doc.text[lost[0] : lost[0] + 40]!r}"


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> list[Document]:
    corpus = docmaker.make_mixed_corpus(tmp_path_factory.mktemp("corpus"))
    return [load_document(corpus[kind]) for kind in docmaker.READABLE_KINDS]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.size}-{c.overlap}-{c.min_chars}")
def test_offsets_sections_and_bounds_hold_on_every_kind(
    documents: list[Document], config: ChunkingConfig
) -> None:
    for doc in documents:
        chunks = chunk_document(doc, config)
        assert chunks, doc.source
        check_invariants(doc, chunks, config)
        if config.min_chars == 0:
            check_coverage(doc, chunks)


def _random_text(rng: random.Random) -> str:
    alphabet = "abcdefghij klmnop qrstuvwxyzäöü€中文 .,!?;\n\t\u00a0"
    parts: list[str] = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        if kind < 0.5:
            words = [
                "".join(rng.choice("abcdefghijklmnoprstuvwyzé") for _ in range(rng.randint(1, 12)))
                for _ in range(rng.randint(1, 120))
            ]
            text = " ".join(words)
            if rng.random() < 0.7:
                text = ". ".join(text.split("  ")) + "."
            parts.append(text)
        elif kind < 0.7:
            parts.append("x" * rng.randint(1, 700))  # one word longer than any chunk
        elif kind < 0.8:
            parts.append("")  # extra blank lines
        else:
            parts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 500))))
    return rng.choice(["\n\n", "\n", " \n \n", "\n\n\n"]).join(parts)


def _random_document(rng: random.Random) -> Document:
    text = _random_text(rng)
    cuts = sorted({0, len(text), *(rng.randrange(len(text) + 1) for _ in range(rng.randint(0, 4)))})
    sections = [
        Section((f"h{i}",) if i else (), start, end)
        for i, (start, end) in enumerate(itertools.pairwise(cuts))
        if end > start
    ] or [Section((), 0, len(text))]
    return Document("random.txt", text, sections)


def test_random_texts_keep_every_invariant() -> None:
    rng = random.Random(20240601)
    for _ in range(300):
        doc = _random_document(rng)
        size = rng.randint(100, 400)
        config = ChunkingConfig(size=size, overlap=rng.randrange(size // 2), min_chars=0)
        chunks = chunk_document(doc, config)
        check_invariants(doc, chunks, config)
        check_coverage(doc, chunks)


def test_chunks_prefer_paragraph_breaks(tmp_path: Path) -> None:
    first = "First paragraph sentence. " * 20
    second = "Second paragraph sentence. " * 20
    path = tmp_path / "two.txt"
    path.write_text(f"{first.strip()}\n\n{second.strip()}\n", encoding="utf-8")
    doc = load_document(path)
    chunks = chunk_document(doc, ChunkingConfig(size=800, overlap=0, min_chars=0))
    assert [c.text for c in chunks] == [first.strip(), second.strip()]


def test_overlap_repeats_the_end_of_the_previous_chunk_from_a_word_start() -> None:
    words = [f"w{i:04d}" for i in range(600)]
    doc = Document("words.txt", " ".join(words), [Section((), 0, 600 * 6 - 1)])
    config = ChunkingConfig(size=200, overlap=50, min_chars=0)
    chunks = chunk_document(doc, config)
    assert len(chunks) > 10
    for before, after in itertools.pairwise(chunks):
        shared = before.end - after.start
        assert 30 <= shared <= 50
        assert before.text.endswith(doc.text[after.start : before.end])
        assert doc.text[after.start - 1] == " ", "overlap must not start mid-word"


def test_sections_are_never_merged_even_when_small(tmp_path: Path) -> None:
    path = tmp_path / "small.md"
    path.write_text(
        "# A\n\nAlpha section text is here.\n\n# B\n\nBeta section text is here.\n",
        encoding="utf-8",
    )
    chunks = chunk_document(load_document(path), ChunkingConfig(min_chars=0))
    assert [(c.heading_path, c.text) for c in chunks] == [
        (("A",), "# A\n\nAlpha section text is here."),
        (("B",), "# B\n\nBeta section text is here."),
    ]


def test_short_chunks_are_dropped_and_indexes_stay_consecutive(tmp_path: Path) -> None:
    path = tmp_path / "stray.md"
    body = "A real paragraph that is long enough to keep around. " * 3
    path.write_text(f"# Empty heading\n\n## Body\n\n{body}\n\n## Page 3\n\n3\n", encoding="utf-8")
    chunks = chunk_document(load_document(path), ChunkingConfig(min_chars=30))
    assert [c.heading_path for c in chunks] == [("Empty heading", "Body")]
    assert chunks[0].index == 0


def test_a_short_note_still_gives_one_chunk(tmp_path: Path) -> None:
    path = tmp_path / "wifi.txt"
    path.write_text("Wifi password: hunter2\n", encoding="utf-8")
    chunks = chunk_document(load_document(path), ChunkingConfig(min_chars=30))
    assert [c.text for c in chunks] == ["Wifi password: hunter2"]


def test_pdf_chunks_know_their_page(tmp_path: Path) -> None:
    doc = load_document(docmaker.make_pdf(tmp_path))
    chunks = chunk_document(doc, ChunkingConfig(size=100, overlap=0, min_chars=0))
    page_of = {c.text: c.page for c in chunks}
    fact = next(text for text in page_of if "Tessaract" in text)
    assert page_of[fact] == 2
    assert {c.page for c in chunks} == {1, 2, 3}
    assert next(c for c in chunks if "Tessaract" in c.text).heading_path == ("Safety", "Closures")


def test_non_pdf_chunks_have_no_page(documents: list[Document]) -> None:
    chunks = chunk_document(documents[0], ChunkingConfig())
    assert all(c.page is None for c in chunks)


def test_megabytes_on_one_line_chunk_in_linear_time(tmp_path: Path) -> None:
    doc = load_document(docmaker.make_huge_txt(tmp_path, megabytes=3))
    config = ChunkingConfig(size=1000, overlap=150, min_chars=30)
    started = time.perf_counter()
    chunks = chunk_document(doc, config)
    elapsed = time.perf_counter() - started
    assert elapsed < 20, f"chunking 3 MB took {elapsed:.1f}s"
    assert len(chunks) >= len(doc.text) // 1000
    assert all(len(c.text) <= 1000 for c in chunks)
    assert all(doc.text[c.start - 1] == " " for c in chunks[1:]), "chunks start at a word"
    assert chunks[-1].end == len(doc.text)


def test_text_without_any_space_is_cut_hard() -> None:
    blob = "0123456789" * 50_000
    doc = Document("blob.txt", blob, [Section((), 0, len(blob))])
    chunks = chunk_document(doc, ChunkingConfig(size=1000, overlap=150, min_chars=0))
    assert len(chunks) == 500
    assert "".join(c.text for c in chunks) == blob


def test_document_without_sections_is_chunked_whole() -> None:
    doc = Document("bare.txt", "Some words here. " * 100, [])
    chunks = chunk_document(doc, ChunkingConfig(size=200, overlap=0, min_chars=0))
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text.rstrip())


MARKDOWN_NOISE = """# Timers

<!-- YAML
added: v0.0.1
-->

## setTimeout

Use [`setTimeout()`][] to run a callback later. See [the guide](https://example.org/a_(b))
for details. ![diagram](timers.png)

```js
const a = [1](2); // <!-- stays in code -->
```

Inline `[x](y)` code stays too.

[`setTimeout()`]: timers.md#settimeouttimeout-delay-args
"""


def test_markdown_chunks_are_clean_text_with_offsets_into_the_original(tmp_path: Path) -> None:
    path = tmp_path / "timers.md"
    path.write_text(MARKDOWN_NOISE, "utf-8")
    doc = load_document(path)
    chunks = chunk_document(doc, ChunkingConfig(size=120, overlap=0, min_chars=10))
    text = "\n".join(c.text for c in chunks)
    assert "YAML" not in text and "<!--" not in text.replace("// <!-- stays in code -->", "")
    assert "[`setTimeout()`][]" not in text and "`setTimeout()` to run a callback" in text
    assert "example.org" not in text and "the guide for details" in " ".join(text.split())
    assert "timers.md#settimeout" not in text and "diagram" in text
    assert "const a = [1](2); // <!-- stays in code -->" in text
    assert "Inline `[x](y)` code stays too." in text
    for chunk in chunks:
        original = doc.text[chunk.start : chunk.end]
        # The offsets cover the original the clean text came from: same first and last
        # characters, and every word of the chunk is there in order.
        assert original[0] == chunk.text[0] and original[-1] == chunk.text[-1]
        position = 0
        for word in chunk.text.split():
            position = original.index(word, position) + len(word)


def test_a_markdown_section_that_is_only_a_comment_gives_no_chunk(tmp_path: Path) -> None:
    path = tmp_path / "api.md"
    path.write_text("# A\n\n<!-- only metadata here -->\n\n# B\n\nReal text about B.\n", "utf-8")
    chunks = chunk_document(load_document(path), ChunkingConfig(min_chars=5))
    assert [c.heading for c in chunks] == ["B"]
