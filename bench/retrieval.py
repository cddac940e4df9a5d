"""Retrieval quality: recall@k of dense, BM25 and hybrid search on a QA file.

    python bench/retrieval.py [--corpus DIR] [--qa FILE.jsonl] [--data-dir DIR]

A question counts as found at k when any of the top-k passages contains one of its
expected strings (case-insensitive), the same rule `cotrag eval` uses.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import default_corpus, default_qa, table

KS = (1, 3, 5, 10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--qa", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse an indexed data dir")
    args = parser.parse_args()
    corpus = args.corpus or default_corpus()
    qa_path = args.qa or default_qa()

    from core.compare.evaluation import contains_any, load_qa
    from core.knowledge.indexer import Indexer
    from core.workspace import Workspace

    items = load_qa(qa_path)
    with tempfile.TemporaryDirectory(prefix="cotrag-bench-") as tmp:
        ws = Workspace(args.data_dir or tmp)
        names = {i.name for i in ws.store.list()}
        kb = ws.store.get("bench") if "bench" in names else ws.store.create("bench")
        for _ in Indexer(kb, ws.embedder, ws.config.chunking).run([corpus]):
            pass
        rows = [["method"] + [f"recall@{k}" for k in KS] + ["ms/query"]]
        for method in ("dense", "bm25", "hybrid"):
            kb.search("warm-up", k=1, method=method)
            found = dict.fromkeys(KS, 0)
            start = time.perf_counter()
            for item in items:
                hits = kb.search(item.question, k=max(KS), method=method)
                for k in KS:
                    if any(contains_any(h.text, item.answers) for h in hits[:k]):
                        found[k] += 1
            ms = (time.perf_counter() - start) * 1000 / len(items)
            rows.append([method] + [f"{found[k] / len(items):.3f}" for k in KS] + [f"{ms:.1f}"])
        print(f"corpus: {corpus} ({kb.count()} chunks); questions: {len(items)} from {qa_path}")
        print(table(rows))


if __name__ == "__main__":
    main()
