"""Dataset generation on a real documentation set: speed, acceptance, rejections, round trip.

    python bench/dataset.py [--corpus DIR] [--count 200] [--teachers bundled,none] [--keep DIR]

For each question writer (the bundled model, and none = questions built from the
sentence only), the same knowledge base gets a fresh dataset of ``--count`` examples.
Printed per writer: examples per minute, acceptance rate, rejections by reason, who
wrote the kept questions, and for the accepted examples the share whose round trip
holds at k=1 and at k=5 (the question, searched as the loop searches, returns the
source chunk first / within five).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import default_corpus, table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--teachers", default="bundled,none")
    parser.add_argument("--keep", type=Path, default=None, help="data dir to keep (else temp)")
    args = parser.parse_args()
    corpus = args.corpus or default_corpus()

    from core.dataset import export as exporting
    from core.dataset import service
    from core.dataset.progress import Accepted
    from core.dataset.spec import GenerateSpec
    from core.knowledge.indexer import Indexer
    from core.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="cotrag-bench-") as tmp:
        ws = Workspace(args.keep or tmp)
        if "bench" not in [i.name for i in ws.store.list()]:
            kb = ws.store.create("bench")
            for _ in Indexer(kb, ws.embedder, ws.config.chunking).run([corpus]):
                pass
        kb = ws.store.get("bench")
        print(f"corpus {corpus}: {kb.count()} chunks; {args.count} examples per writer", flush=True)
        rows = [
            [
                "question writer",
                "examples",
                "per minute",
                "acceptance",
                "by teacher",
                "round trip k=1",
                "k=5",
                "mean rounds",
            ]
        ]
        details = []
        for ref in args.teachers.split(","):
            name = f"bench-{ref}-{int(time.time())}"
            teacher = service.make_teacher(ws, ref)
            gen, dataset, _ = service.generator(
                ws, name, GenerateSpec(kb="bench", count=args.count), teacher
            )
            started = time.perf_counter()
            accepted = 0
            for event in gen.run():
                if isinstance(event, Accepted):
                    accepted += 1
                    if accepted % 25 == 0:
                        print(
                            f"  {ref}: {accepted} accepted, {time.perf_counter() - started:.0f} s",
                            flush=True,
                        )
            seconds = time.perf_counter() - started
            report = exporting.report(dataset)
            examples = dataset.examples()
            method = ws.config.retrieval.method
            at1 = at5 = 0
            for example in examples:
                ids = [h.id for h in kb.search(example["question"], k=5, method=method)]
                at1 += bool(ids) and ids[0] == example["chunk_id"]
                at5 += example["chunk_id"] in ids
            n = max(1, len(examples))
            origins = Counter(e["question_origin"] for e in examples)
            rows.append(
                [
                    ref,
                    str(len(examples)),
                    f"{len(examples) / seconds * 60:.1f}",
                    f"{report['acceptance_rate']:.2f}",
                    f"{origins.get('teacher', 0)}",
                    f"{at1 / n:.2f}",
                    f"{at5 / n:.2f}",
                    f"{sum(e['rounds'] for e in examples) / n:.2f}",
                ]
            )
            details.append((ref, report, Counter(e.get("teacher_failure") or "" for e in examples)))
        print()
        print(table(rows))
        for ref, report, failures in details:
            print(f"\n{ref}: rejections by reason: {report['rejections']}")
            print(f"{ref}: kinds: {report['kinds']}")
            failures.pop("", None)
            if failures:
                print(f"{ref}: teacher questions replaced by the template, why: {dict(failures)}")
        ws.close()


if __name__ == "__main__":
    main()
