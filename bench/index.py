"""Indexing throughput and dense recall, per embedding backend, against plain torch.

    python bench/index.py [--corpus DIR] [--qa FILE.jsonl] [--backends torch,onnx,openvino]

Loads and chunks the corpus once, then, in the same run:

* encodes those chunk texts with a bare SentenceTransformer on torch (batch 32): the
  baseline, what embedding costs without this app;
* for each backend, indexes the corpus into a fresh data dir through the whole pipeline
  (load → chunk → embed → Chroma) and reports chunks/s and its ratio to the baseline;
* searches each backend's knowledge base (dense) with the QA file's questions: recall@5
  must stay within a point of torch's, or the faster backend is not worth having.

A backend that is not installed is reported and skipped. Exporting a backend's model
happens once per run here (in a temp cache) and is shown apart, not counted as indexing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import default_corpus, default_qa, table

KS = (1, 5, 10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--qa", type=Path, default=None)
    parser.add_argument("--backends", default="torch,onnx,openvino")
    args = parser.parse_args()
    corpus = args.corpus or default_corpus()
    qa_path = args.qa or default_qa()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    from core.compare.evaluation import contains_any, load_qa
    from core.config import ChunkingConfig
    from core.knowledge.chunking import chunk_document
    from core.knowledge.embedding import Embedder, bundled_model_path
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


if __name__ == "__main__":
    main()
