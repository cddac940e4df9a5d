"""Indexing throughput and dense recall, per embedding backend, against plain torch.

    python bench/index.py [--corpus DIR] [--qa FILE.jsonl] [--backends torch,onnx,openvino]
    python bench/index.py --formats [--corpus DIR] [--html DIR] [--backends onnx] [--limit N]

Loads and chunks the corpus once, then, in the same run:

* encodes those chunk texts with a bare SentenceTransformer on torch (batch 32): the
  baseline, what embedding costs without this app;
* for each backend, indexes the corpus into a fresh data dir through the whole pipeline
  (load → chunk → embed → Chroma) and reports chunks/s and its ratio to the baseline;
* searches each backend's knowledge base (dense) with the QA file's questions: recall@5
  must stay within a point of torch's, or the faster backend is not worth having.

A backend that is not installed is reported and skipped. Exporting a backend's model
happens once per run here (in a temp cache) and is shown apart, not counted as indexing.

``--formats`` compares what a chunk costs per document format instead: the Markdown
corpus against an HTML one (default: the zsh manual, ``apt-get install zsh-doc``), each
indexed through the whole pipeline with the first backend. Per corpus: chunks, tokens
per chunk as embedded (the model reads at most 256), load + chunk time alone, the
pipeline's chunks/s and tokens/s; for HTML also the previous loader (Beautiful Soup's
tree and a walk over it, ``tests/html_reference.py``) timed on the same pages, and
whether both give the same text. Tokens/s near each other means a chunk of either
format costs what its length says; chunks/s then differ only by chunk length.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ROOT, default_corpus, default_html_corpus, default_qa, table

KS = (1, 5, 10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--qa", type=Path, default=None)
    parser.add_argument("--backends", default="torch,onnx,openvino")
    parser.add_argument("--formats", action="store_true", help="Markdown against HTML")
    parser.add_argument("--html", type=Path, default=None, help="an HTML corpus (--formats)")
    parser.add_argument("--limit", type=int, default=0, help="files per corpus (--formats)")
    args = parser.parse_args()
    if args.formats:
        corpora = {
            "markdown": args.corpus or default_corpus(),
            "html": args.html or default_html_corpus(),
        }
        backend = args.backends.split(",")[0].strip()
        format_costs(corpora, backend, args.limit)
        return
    corpus = args.corpus or default_corpus()
    qa_path = args.qa or default_qa()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    from core.compare.evaluation import contains_any, load_qa
    from core.config import ChunkingConfig
    from core.knowledge.chunking import chunk_document
    from core.knowledge.embedder import Embedder, bundled_model_path
    from core.knowledge.indexer import Indexer, IndexSummary
    from core.knowledge.loaders import iter_files, load_document
    from core.knowledge.records import embedding_text
    from core.knowledge.store import KnowledgeStore
    from core.paths import DataLayout

    chunking = ChunkingConfig()
    items = load_qa(qa_path)

    # Loading and chunking alone: the part of the pipeline that is not embedding.
    start = time.perf_counter()
    texts: list[str] = []
    for path in iter_files([corpus]):
        try:
            doc = load_document(path)
        except Exception:
            continue
        texts.extend(embedding_text(c) for c in chunk_document(doc, chunking))
    chunk_s = time.perf_counter() - start

    # Baseline: the same chunk texts, encoded by a bare SentenceTransformer on torch.
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(bundled_model_path()), device="cpu", local_files_only=True)
    model.encode(["warm-up"])
    start = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    encode_s = time.perf_counter() - start
    del model
    plain_rate = len(texts) / encode_s

    rows = [
        ["what", "load s", "seconds", "chunks/s", "x plain", *[f"recall@{k}" for k in KS]],
        ["load + chunk only", "", f"{chunk_s:.2f}", f"{len(texts) / chunk_s:.0f}", "", "", "", ""],
        [
            "plain SentenceTransformer.encode (torch)",
            "",
            f"{encode_s:.2f}",
            f"{plain_rate:.1f}",
            "1.00",
            "",
            "",
            "",
        ],
    ]
    notes: list[str] = []
    reindex = ""
    with tempfile.TemporaryDirectory(prefix="cotrag-bench-") as tmp:
        for backend in backends:
            embedder = Embedder(backend=backend, cache_dir=Path(tmp) / "embedders")
            start = time.perf_counter()
            embedder.embed(["warm-up"])  # model load (and export) is not indexing throughput
            load_s = time.perf_counter() - start
            if embedder.backend != backend:
                notes.append(f"{backend}: not available here (see the log); skipped")
                continue
            store = KnowledgeStore(DataLayout(Path(tmp) / backend), embedder=embedder)
            kb = store.create("bench")
            indexer = Indexer(kb, embedder, chunking)
            summary: IndexSummary | None = None
            start = time.perf_counter()
            for event in indexer.run([corpus]):
                if isinstance(event, IndexSummary):
                    summary = event
            pipeline_s = time.perf_counter() - start
            assert summary is not None
            if not reindex:
                start = time.perf_counter()
                for _event in indexer.run([corpus]):
                    pass
                reindex = f"re-index with nothing changed: {time.perf_counter() - start:.2f}s"
            kb.search("warm-up", k=1, method="dense")
            found = dict.fromkeys(KS, 0)
            for item in items:
                hits = kb.search(item.question, k=max(KS), method="dense")
                for k in KS:
                    if any(contains_any(h.text, item.answers) for h in hits[:k]):
                        found[k] += 1
            rate = summary.chunks / pipeline_s
            rows.append(
                [
                    f"whole pipeline, {backend} (batch {embedder.batch_size})",
                    f"{load_s:.1f}",
                    f"{pipeline_s:.2f}",
                    f"{rate:.1f}",
                    f"{rate / plain_rate:.2f}",
                    *[f"{found[k] / len(items):.3f}" for k in KS],
                ]
            )
            print(f"... {backend} done", file=sys.stderr, flush=True)

    print(f"corpus: {corpus} ({len(texts)} chunks); questions: {len(items)} from {qa_path}")
    print(table(rows))
    print("recall: dense search, each backend's own index and query vectors")
    print("load s: first use of the backend, including its one-time export here")
    for line in (reindex, *notes):
        if line:
            print(line)


def format_costs(corpora: dict[str, Path], backend: str, limit: int) -> None:
    from tokenizers import Tokenizer

    from core.config import ChunkingConfig
    from core.knowledge.chunking import chunk_document
    from core.knowledge.embedder import Embedder, bundled_model_path
    from core.knowledge.indexer import Indexer, IndexSummary
    from core.knowledge.load_html import load_html
    from core.knowledge.loaders import iter_files, load_document
    from core.knowledge.store import KnowledgeStore, embedding_text
    from core.paths import DataLayout

    sys.path.insert(0, str(ROOT / "tests"))
    from html_reference import load_html_tree

    chunking = ChunkingConfig()
    tokenizer = Tokenizer.from_file(str(bundled_model_path() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.no_padding()  # tokenizer.json pads to 128: count real tokens only
    rows = [
        [
            "corpus", "files", "chunks", "tokens/chunk", "load+chunk s", "pipeline s",
            "chunks/s", "tokens/s",
        ]
    ]  # fmt: skip
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cotrag-bench-") as tmp:
        embedder = Embedder(backend=backend, cache_dir=Path(tmp) / "embedders")
        embedder.embed(["warm-up"])
        for label, corpus in corpora.items():
            files = sorted(iter_files([corpus]))[: limit or None]
            folder = Path(tmp) / f"{label}-files"  # the files to index, and no others
            folder.mkdir()
            for n, path in enumerate(files):
                (folder / f"{n:05d}-{path.name}").symlink_to(path)
            start = time.perf_counter()
            texts: list[str] = []
            for path in files:
                try:
                    doc = load_document(path)
                except Exception:
                    continue
                texts.extend(embedding_text(c) for c in chunk_document(doc, chunking))
            load_s = time.perf_counter() - start
            tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts))
            store = KnowledgeStore(DataLayout(Path(tmp) / label), embedder=embedder)
            indexer = Indexer(store.create("bench"), embedder, chunking)
            summary: IndexSummary | None = None
            start = time.perf_counter()
            for event in indexer.run([folder]):
                if isinstance(event, IndexSummary):
                    summary = event
            pipeline_s = time.perf_counter() - start
            assert summary is not None
            rows.append(
                [
                    f"{label} ({corpus})",
                    str(len(files)),
                    str(summary.chunks),
                    f"{tokens / max(1, len(texts)):.0f}",
                    f"{load_s:.2f}",
                    f"{pipeline_s:.1f}",
                    f"{summary.chunks / pipeline_s:.1f}",
                    f"{tokens / pipeline_s:.0f}",
                ]
            )
            pages = [
                (str(p), p.read_bytes()) for p in files if p.suffix.lower() in {".html", ".htm"}
            ]
            if pages:
                times = {}
                for name, load in (("one pass", load_html), ("tree walk (before)", load_html_tree)):
                    start = time.perf_counter()
                    docs = [load(source, data) for source, data in pages]
                    times[name] = time.perf_counter() - start
                    if name == "one pass":
                        ours = [(d.text, d.sections, d.title) for d in docs]
                same = ours == [(d.text, d.sections, d.title) for d in docs]
                notes.append(
                    f"{label}: reading {len(pages)} pages: one pass {times['one pass']:.2f}s, "
                    f"tree walk (before) {times['tree walk (before)']:.2f}s "
                    f"(x{times['tree walk (before)'] / times['one pass']:.1f}); "
                    f"same text, sections and titles: {same}"
                )
            print(f"... {label} done", file=sys.stderr, flush=True)
    print(f"backend: {embedder.backend} (asked: {backend}; batch {embedder.batch_size})")
    print(table(rows))
    print("tokens/chunk: as embedded (heading + text, at most 256 tokens)")
    for line in notes:
        print(line)


if __name__ == "__main__":
    main()
