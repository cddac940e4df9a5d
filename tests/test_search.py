"""Dense, BM25 and hybrid search over a small real corpus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import ChunkingConfig
from core.errors import ConfigError
from core.knowledge import search as search_module
from core.knowledge.embedder import Embedder
from core.knowledge.indexer import Indexer
from core.knowledge.knowledge_base import KnowledgeBase
from core.knowledge.loaders import load_document
from core.knowledge.store import KnowledgeStore
from core.knowledge.types import DocChunk
from core.paths import DataLayout

CORPUS = {
    "bread.md": (
        "# Baking\n\n## Sourdough\n\n"
        "A sourdough starter must be fed with equal weights of flour and water every "
        "twelve hours. Bake the loaf at 240 degrees for forty minutes with steam.\n\n"
        "## Rye\n\n"
        "Rye dough is sticky and is shaped with wet hands rather than on a floured bench.\n"
    ),
    "bikes.txt": (
        "Bicycle chains should be cleaned and oiled every 300 kilometres. A worn chain "
        "stretches and wears out the cassette, so measure it with a chain checker tool.\n\n"
        "Tyre pressure for a road bike is usually between six and eight bar.\n"
    ),
    "astronomy.md": (
        "# Night sky\n\n"
        "Jupiter has ninety-five known moons; the four largest were discovered by "
        "Galileo in 1610 with a small refracting telescope.\n\n"
        "# Comets\n\n"
        "A comet's tail always points away from the Sun, pushed by the solar wind.\n"
    ),
    "garden.txt": (
        "Tomato seedlings need sixteen hours of light a day; move them outdoors only "
        "after the last frost. Water at the base of the plant to avoid leaf blight.\n"
    ),
    "finance.md": (
        "# Expenses\n\n"
        "Travel expenses are reimbursed within 30 days when the receipt is uploaded to "
        "the Ledgerly portal. Meals abroad are capped at 45 euros per day.\n"
    ),
}

# (question, file that answers it, words that must be in the passage)
QUESTIONS = [
    ("How often do I feed my sourdough starter?", "bread.md", "twelve hours"),
    ("When should a bike chain be lubricated?", "bikes.txt", "300 kilometres"),
    ("Who found the biggest moons of Jupiter?", "astronomy.md", "Galileo"),
    ("How long until my travel costs are paid back?", "finance.md", "30 days"),
    ("Which direction does a comet tail point?", "astronomy.md", "away from the Sun"),
]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for name, text in CORPUS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def kb(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, corpus_dir: Path
) -> Iterator[KnowledgeBase]:
    store = KnowledgeStore(DataLayout(tmp_path_factory.mktemp("data")), embedder=embedder)
    base = store.create("corpus")
    chunking = ChunkingConfig(size=200, overlap=0, min_chars=10)
    for _ in Indexer(base, embedder, chunking).run([corpus_dir]):
        pass
    yield base


# The travel question shares no keyword with its passage: that is what dense search is for.
CASES = [
    (method, *q)
    for q in QUESTIONS
    for method in ("dense", "bm25", "hybrid")
    if not (method == "bm25" and q[1] == "finance.md")
]


@pytest.mark.parametrize(("method", "question", "source", "words"), CASES)
def test_the_answering_passage_comes_first(
    kb: KnowledgeBase, method: str, question: str, source: str, words: str
) -> None:
    hits = kb.search(question, k=3, method=method)
    assert hits, question
    assert Path(hits[0].source).name == source
    assert words in hits[0].text
    assert all(h.method == method for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hits_point_back_into_their_document(kb: KnowledgeBase) -> None:
    hit = kb.search("comet tail solar wind", k=1, method="hybrid")[0]
    assert Path(hit.source).is_absolute() and hit.source.endswith("astronomy.md")
    assert hit.heading == "Comets"
    assert hit.label == f"astronomy.md#{hit.chunk_index}"
    assert load_document(Path(hit.source)).text[hit.start : hit.end] == hit.text
    assert len(hit.extra["doc_hash"]) == 64
    assert kb.get_chunk(hit.id).text == hit.text


def test_scores_mean_what_they_say(kb: KnowledgeBase) -> None:
    dense = kb.search("sourdough starter feeding", k=5, method="dense")
    assert len(dense) == 5
    assert all(-1.0 <= h.score <= 1.0 for h in dense)
    assert dense[0].score > 0.4 > dense[-1].score
    hybrid = kb.search("sourdough starter feeding", k=5, method="hybrid")
    top = hybrid[0]
    # Ranked first by both lists: 1/61 + 1/61.
    assert top.score == pytest.approx(2 / 61)
    assert (top.extra["dense_rank"], top.extra["bm25_rank"]) == (1, 1)


def test_bm25_only_returns_passages_sharing_a_word(kb: KnowledgeBase) -> None:
    hits = kb.search("telescope", k=5, method="bm25")
    assert [Path(h.source).name for h in hits] == ["astronomy.md"]
    assert kb.search("what is the", k=5, method="bm25") == []
    assert kb.search("zeppelin", k=5, method="bm25") == []


def test_k_is_respected_and_bad_arguments_are_explained(kb: KnowledgeBase) -> None:
    assert len(kb.search("water", k=2, method="hybrid")) == 2
    assert len(kb.search("water", k=50, method="dense")) == kb.count()
    with pytest.raises(ConfigError, match="dense, bm25 or hybrid"):
        kb.search("water", method="semantic")
    with pytest.raises(ConfigError):
        kb.search("water", k=0)


def test_bm25_index_is_reused_until_the_kb_changes(
    tmp_path: Path, data_dir: Path, embedder: Embedder
) -> None:
    store = KnowledgeStore(DataLayout(data_dir), embedder=embedder)
    kb = store.create("growing")
    chunking = ChunkingConfig(size=200, overlap=0, min_chars=10)
    (tmp_path / "one.txt").write_text("Otters hold hands while they sleep.\n", encoding="utf-8")
    list(Indexer(kb, embedder, chunking).run([tmp_path / "one.txt"]))
    assert kb.search("kiwi", k=3, method="bm25") == []

    built = search_module.cached_bm25(kb.state_dir)
    assert built is not None
    started = time.perf_counter()
    kb.search("otters", k=3, method="bm25")
    assert search_module.cached_bm25(kb.state_dir) is built
    assert time.perf_counter() - started < 0.5

    (tmp_path / "two.txt").write_text("Kiwi birds cannot fly at all.\n", encoding="utf-8")
    list(Indexer(kb, embedder, chunking).run([tmp_path / "two.txt"]))
    hits = kb.search("kiwi", k=3, method="bm25")
    assert [Path(h.source).name for h in hits] == ["two.txt"]
    assert search_module.cached_bm25(kb.state_dir) is not built


def test_search_ignores_a_document_being_indexed(
    data_dir: Path, embedder: Embedder, tmp_path: Path
) -> None:
    store = KnowledgeStore(DataLayout(data_dir), embedder=embedder)
    kb = store.create("busy")
    (tmp_path / "done.txt").write_text("Penguins huddle to stay warm.\n", encoding="utf-8")
    list(Indexer(kb, embedder).run([tmp_path / "done.txt"]))
    half = DocChunk(
        source="/docs/half.txt", text="Penguins of the half-written file", index=0, start=0, end=33
    )
    kb.begin_document(half.source, "b" * 64)
    kb.add_chunks("b" * 64, [half], embedder.embed([half.text]))
    for method in ("dense", "bm25", "hybrid"):
        hits = kb.search("penguins", k=5, method=method)
        assert [Path(h.source).name for h in hits] == ["done.txt"], method


def test_an_empty_kb_finds_nothing(data_dir: Path, embedder: Embedder) -> None:
    kb = KnowledgeStore(DataLayout(data_dir), embedder=embedder).create("empty")
    for method in ("dense", "bm25", "hybrid"):
        assert kb.search("anything at all", k=3, method=method) == []
