"""The rewrite step with "a model the user pulled" as the question writer.

    python bench/rewrite.py [--corpus DIR] [--files 12] [--count 20] [--writer GGUF]
                            [--questions templates|writer] [--pairs] [--max-overlap 0.6]
                            [--keep DIR] [--json FILE]

The writer defaults to the bench stand-in (``bench/standin_model.py``: Qwen2.5-Coder-1.5B-
Instruct Q4_K_M, fetched into ``~/.cache/cotrag-bench/``; bench only, never shipped). A
knowledge base is built from the first ``--files`` documents of the corpus (default: the
npm CLI's docs, ``commands/`` first), and ``--count`` examples are generated with the
rewrite step on. ``--questions templates`` (the default) gives the writer only the short
job the issue asks of it: the questions are the app's templates (as when the bundled model's
question fails its checks), and the writer only restates them. ``--questions writer``: the
writer also writes the answer-first question (and, with ``--pairs``, its own
question-and-answer pairs, as the app does with a model file), so it restates its own.

Printed: how many rewrites were kept and why the others were not, the median word overlap
with the source sentence before and after, the seconds the writer took per rewrite and the
run's seconds per example, and five before/after pairs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import default_corpus


class TimedWriter:
    """The teacher, with the seconds each rewrite took recorded (bench instrumentation)."""

    def __init__(self, teacher: Any, pairs: bool, templates: bool) -> None:
        self.teacher = teacher
        self.writes_pairs = pairs and teacher.writes_pairs and not templates
        self.templates = templates
        self.rewrite_seconds: list[float] = []

    def question(self, candidate: Any) -> str:
        if self.templates:
            from core.dataset.teacher import TeacherError

            raise TeacherError("bench_templates", "bench: the template question is used")
        return str(self.teacher.question(candidate))

    @property
    def name(self) -> str:
        return str(self.teacher.name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.teacher, attr)

    def rewrite(self, question: str, answer: str) -> str:
        started = time.perf_counter()
        try:
            return str(self.teacher.rewrite(question, answer))
        finally:
            self.rewrite_seconds.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--files", type=int, default=12, help="documents indexed (0: all)")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--writer", default="", help="a .gguf (default: the bench stand-in)")
    parser.add_argument("--questions", choices=["templates", "writer"], default="templates")
    parser.add_argument("--pairs", action="store_true", help="the writer also writes pairs")
    parser.add_argument("--max-overlap", type=float, default=0.6)
    parser.add_argument("--keep", type=Path, default=None, help="data dir to keep (else temp)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    corpus = args.corpus or default_corpus()
    writer_path = args.writer
    if not writer_path:
        from standin_model import fetch

        writer_path = str(fetch())

    from core.dataset import export as exporting
    from core.dataset import service
    from core.dataset.progress import Accepted
    from core.dataset.spec import GenerateSpec
    from core.knowledge.indexer import Indexer
    from core.workspace import Workspace

    files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix in (".md", ".html"))
    if args.files:
        files = files[: args.files]
    with tempfile.TemporaryDirectory(prefix="cotrag-bench-") as tmp:
        ws = Workspace(args.keep or tmp)
        if "bench" not in [i.name for i in ws.store.list()]:
            kb = ws.store.create("bench")
            docs = Path(tmp) / "docs"
            docs.mkdir(exist_ok=True)
            for path in files:
                (docs / path.name).write_bytes(path.read_bytes())
            for _ in Indexer(kb, ws.embedder, ws.config.chunking).run([docs]):
                pass
        kb = ws.store.get("bench")
        print(f"{len(files)} documents, {kb.count()} chunks; writer {writer_path}", flush=True)
        loaded = time.perf_counter()
        writer = TimedWriter(
            service.make_teacher(ws, writer_path), args.pairs, args.questions == "templates"
        )
        spec = GenerateSpec(
            kb="bench",
            count=args.count,
            kinds={"lookup": 1, "definition": 1, "default": 1, "behaviour": 1, "howto": 1},
            unanswerable_share=0.0,
            rewrite=True,
            rewrite_max_overlap=args.max_overlap,
        )
        name = f"rewrite-{int(time.time())}"
        gen, dataset, _ = service.generator(ws, name, spec, writer)  # type: ignore[arg-type]
        started = time.perf_counter()
        for event in gen.run():
            if isinstance(event, Accepted):
                ex = event.example
                print(
                    f"  [{time.perf_counter() - started:5.0f} s] "
                    f"{'REWRITTEN' if ex['question_rewritten'] else ex['rewrite_reason']}: "
                    f"{ex['source_question']}  =>  {ex.get('rewrite_attempt', '')}",
                    flush=True,
                )
        seconds = time.perf_counter() - started
        figures = exporting.report(dataset)["rewrite"]
        examples = dataset.examples()
        spent = writer.rewrite_seconds
        figures.update(
            {
                "examples": len(examples),
                "run_seconds": round(seconds, 1),
                "seconds_per_example": round(seconds / max(1, len(examples)), 1),
                "writer_rewrite_calls": len(spent),
                "seconds_per_rewrite": round(sum(spent) / max(1, len(spent)), 2),
                "load_seconds": round(started - loaded, 1),
                "teacher_errors": dict(gen.teacher_errors),
                "pairs": [
                    {
                        "origin": e["question_origin"],
                        "before": e["source_question"],
                        "writer": e.get("rewrite_attempt", ""),
                        "kept": e["question_rewritten"],
                        "reason": e["rewrite_reason"],
                        "answer": e["gold_answer"],
                        "overlap": [e["source_overlap"], e.get("attempt_overlap")],
                    }
                    for e in examples
                ],
            }
        )
        print()
        print(
            f"rewritten {figures['rewritten']} of {figures['tried']} "
            f"(kept rate {figures['kept_rate']:.0%}); not kept: {figures['reasons']}"
        )
        print(
            f"word overlap with the source sentence, median: "
            f"{figures['overlap_median_before']:.2f} before, "
            f"{figures['overlap_median_after']:.2f} after"
        )
        print(
            f"{figures['seconds_per_rewrite']:.1f} s per rewrite (writer), "
            f"{figures['seconds_per_example']:.1f} s per example (whole run, {seconds:.0f} s)"
        )
        shown = [p for p in figures["pairs"] if p["kept"]][:5]
        for pair in shown:
            print(f"\n  before: {pair['before']}\n  after:  {pair['writer']}  ({pair['answer']})")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1), "utf-8")
        ws.close()


if __name__ == "__main__":
    main()
