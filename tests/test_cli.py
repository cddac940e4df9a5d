"""`cotrag` end to end: real store, real embedder, real bundled model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from docmaker import FACTS, make_mixed_corpus, make_text

from core.cli import main
from core.workspace import Workspace


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A data dir with the mixed corpus (good and bad files) indexed into 'docs', its
    settings capping what the bundled model writes (no test here reads a long block or
    answer: the untuned model fills a block with noise up to the cap, minutes on 2 cores)."""
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "corpus"
    make_mixed_corpus(corpus)
    data = root / "data"
    ws = Workspace(data)
    ws.config.loop.max_block_tokens, ws.config.loop.max_total_tokens = 40, 160
    ws.config.generation.answer_max_tokens = 64
    ws.save_config()
    assert main(["--data-dir", str(data), "index", str(corpus), "--kb", "docs"]) == 0
    return data, corpus


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_index_reports_each_bad_file_and_indexes_the_rest(
    indexed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, corpus = indexed
    code, out, _err = run_cli(capsys, "--data-dir", str(data), "index", str(corpus), "--kb", "docs")
    assert code == 0
    # Second run: nothing changed, the bad files are still named with their reasons.
    assert "0 indexed, 9 unchanged, 7 failed" in out
    assert "broken.pdf: the PDF is damaged" in out
    assert "locked.pdf: the PDF is password-protected" in out
    assert "image.txt: the file holds binary data" in out
    assert "empty.txt: the file is empty" in out


def test_kb_lifecycle_and_switch(
    indexed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = indexed
    d = ["--data-dir", str(data)]
    assert run_cli(capsys, *d, "kb", "create", "scratch")[0] == 0
    code, out, _ = run_cli(capsys, *d, "kb", "list")
    assert "docs" in out and "scratch" in out and "9 documents" in out
    assert run_cli(capsys, *d, "kb", "rename", "scratch", "notes")[0] == 0
    assert run_cli(capsys, *d, "kb", "use", "notes")[0] == 0
    code, out, _ = run_cli(capsys, *d, "kb", "list", "--json")
    assert {k["name"] for k in json.loads(out)} == {"docs", "notes"}
    # With a current knowledge base, --kb can be left out.
    code, out, err = run_cli(capsys, *d, "search", "anything")
    assert code == 0 and "No results" in out
    assert run_cli(capsys, *d, "kb", "delete", "notes", "--yes")[0] == 0
    code, _, err = run_cli(capsys, *d, "search", "anything")
    assert code == 2 and "--kb" in err


def test_search_finds_the_passage_with_the_fact(
    indexed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = indexed
    for method in ("dense", "bm25", "hybrid"):
        code, out, _ = run_cli(
            capsys,
            "--data-dir",
            str(data),
            "search",
            "ferry departure time Port Idris",
            "--kb",
            "docs",
            "-k",
            "3",
            "--method",
            method,
            "--json",
        )
        hits = json.loads(out)
        assert code == 0 and hits
        assert FACTS["html"] in hits[0]["text"], method
        assert hits[0]["source"].endswith("ferry.html")


def test_missing_kb_is_a_sentence_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run_cli(capsys, "--data-dir", str(tmp_path), "search", "x", "--kb", "nope")
    assert code == 1
    assert "No knowledge base named 'nope'" in err and "Traceback" not in err


@pytest.mark.model
def test_ask_loop_searches_vets_and_answers_with_citations(
    indexed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = indexed
    code, out, err = run_cli(
        capsys,
        "--data-dir",
        str(data),
        "ask",
        "When does the Brannock ferry leave Port Idris?",
        "--kb",
        "docs",
        "--max-rounds",
        "2",
        "--json",
        "--save",
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["retrievals"] and record["retrievals"][0]["hits"]
    assert "<query>" in record["trace"] and "<results>" in record["trace"]
    assert "<query_res>" in record["trace"]
    assert record["answer"] and record["citations"]
    shown = {h["number"] for r in record["retrievals"] for h in r["hits"]}
    assert set(record["citations"]) <= shown
    assert record["stats"]["cached_tokens"] > 0  # the loop resumed from the KV cache
    assert "Saved conversation" in err
    assert len(list((data / "conversations").glob("*.json"))) == 1
    # The bundled model is not tuned on the tags: the app wrote the first search itself.
    assert record["info"]["settings"]["first_query"] == "question"
    seed = record["blocks"][0]
    assert (seed["tag"], seed["author"], seed["kind"]) == ("query", "loop", "seed")
    assert record["retrievals"][0]["query"] == "When does the Brannock ferry leave Port Idris"
    assert record["spans"][0] == {
        "author": "loop",
        "kind": "seed",
        "text": "<query>When does the Brannock ferry leave Port Idris</query>",
    }


@pytest.mark.model
def test_ask_marks_the_seeded_search_and_can_leave_it_to_the_model(
    indexed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = indexed
    question = "When does the Brannock ferry leave Port Idris?"
    code, out, err = run_cli(
        capsys,
        "--data-dir",
        str(data),
        "ask",
        question,
        "--kb",
        "docs",
        "--max-rounds",
        "1",
        "--color",
        "never",
        "--retriever-only",
    )
    assert code == 0, err
    assert "(the app searched with your question)" in out
    code, out, err = run_cli(
        capsys,
        "--data-dir",
        str(data),
        "ask",
        question,
        "--kb",
        "docs",
        "--max-rounds",
        "1",
        "--first-query",
        "model",
        "--retriever-only",
        "--json",
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["info"]["settings"]["first_query"] == "model"
    assert record["blocks"][0]["author"] == "model"


@pytest.mark.model
def test_ask_streams_a_readable_trace(
    indexed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = indexed
    code, out, _ = run_cli(
        capsys,
        "--data-dir",
        str(data),
        "ask",
        "What cools the Velquist reactor?",
        "--kb",
        "docs",
        "--max-rounds",
        "1",
        "--color",
        "never",
    )
    assert code == 0
    assert out.index("<query>") < out.index("<query_res>") < out.index("<results>")
    assert "── answer ──" in out and "answered:" in out


@pytest.mark.model
def test_eval_reports_accuracy_recall_and_cost(
    indexed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = indexed
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps(
            {"id": "ferry", "question": "When does the Brannock ferry leave?", "answers": ["06:40"]}
        )
        + "\n"
        + json.dumps(
            {"id": "tin", "question": "What cools the Velquist reactor?", "answers": ["liquid tin"]}
        )
        + "\n"
    )
    out_file = tmp_path / "report.json"
    code, out, err = run_cli(
        capsys,
        "--data-dir",
        str(data),
        "eval",
        "--kb",
        "docs",
        "--qa",
        str(qa),
        "--mode",
        "rag",
        "--out",
        str(out_file),
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["questions"] == 2
    assert summary["recall_at_k"] == 1.0  # both facts are retrieved by the question itself
    for key in ("accuracy", "mean_rounds", "protocol_error_rate", "seconds_per_question"):
        assert key in summary
    assert summary["accuracy"] <= summary["accuracy_contains"]
    assert "(first sentence)" in err and "(contains)" in err and "median answer" in err
    report = json.loads(out_file.read_text())
    assert [i["id"] for i in report["items"]] == ["ferry", "tin"]
    assert all(i["retrieval_hit"] for i in report["items"])
    words = sorted(i["answer_words"] for i in report["items"])
    assert words[0] > 0 and summary["median_answer_words"] == sum(words) / 2


def test_ctrl_c_during_indexing_leaves_a_consistent_knowledge_base(tmp_path: Path) -> None:
    corpus = tmp_path / "many"
    for n in range(60):
        make_text(corpus, name=f"note{n:02d}.txt")
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.cli",
            "--data-dir",
            str(data),
            "index",
            str(corpus),
            "--kb",
            "k",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    seen = 0
    for line in proc.stderr:  # wait until a few documents are in
        seen += "indexed" in line
        if seen >= 3 or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "cancelled; the knowledge base is consistent" in out

    from core.knowledge.store import KnowledgeStore
    from core.paths import DataLayout

    kb = KnowledgeStore(DataLayout.at(data)).get("k")
    docs = kb.documents()
    assert 3 <= len(docs) < 60
    # Every listed document has all its chunks, and Chroma holds no chunk of an unlisted
    # (half-indexed) one.
    counted: dict[str, int] = {}
    for meta in kb.collection.get(include=["metadatas"])["metadatas"]:
        counted[meta["source"]] = counted.get(meta["source"], 0) + 1
    assert counted == {d.source: d.chunks for d in docs}
    # Resuming indexes the rest and skips what is there.
    assert main(["--data-dir", str(data), "index", str(corpus), "--kb", "k"]) == 0
    assert len(kb.documents()) == 60
