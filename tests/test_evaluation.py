from __future__ import annotations

from pathlib import Path

import pytest

from core.compare.evaluation import EvalReport, ItemResult, QAFileError, load_qa
from core.compare.pairs import Comparison, Side
from core.compare.service import CompareRequest, compare_models, load_items
from core.dataset.storage import DatasetStore
from core.errors import CotragError
from core.scoring import contains_any, score_answer
from core.workspace import Workspace


def test_load_qa_reads_lines_and_skips_blanks(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        '{"id": "a", "question": "Who?", "answers": ["Ada", "Lovelace"]}\n\n'
        '{"question": "When?", "answers": "1843"}\n'
    )
    items = load_qa(path)
    assert [i.id for i in items] == ["a", "3"]
    assert items[1].answers == ["1843"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"question": "x"}\n', "qa.jsonl:1"),
        ('{"question": "x", "answers": []}\n', "no expected answers"),
        ("not json\n", "qa.jsonl:1"),
        ("", "no questions"),
    ],
)
def test_bad_qa_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(content)
    with pytest.raises(QAFileError, match=message):
        load_qa(path)


def test_correctness_is_case_insensitive_substring() -> None:
    assert contains_any("Use the --OMIT flag", ["--omit"])
    assert not contains_any("nothing here", ["--omit", "prune"])


def _result(id: str, answer: str, expected: list[str]) -> ItemResult:
    correct, contains = score_answer(answer, expected)
    return ItemResult(
        id=id, question=f"{id}?", expected=expected, answer=answer, correct=correct,
        retrieval_hit=True, rounds=1, protocol_errors=[], prompt_tokens=0, cached_tokens=0,
        completion_tokens=0, seconds=0.1, finished="answered", contains=contains,
        answer_words=len(answer.split()),
    )  # fmt: skip


def test_a_rambling_side_wins_only_on_containment_and_the_table_shows_both() -> None:
    questions = [
        ("cache", ["~/.npm"], "The cache is in `~/.npm` [1]."),
        ("tag", ["latest"], "Use the `latest` tag [2]."),
        ("port", ["8443"], "It listens on 8443."),
    ]
    terse = EvalReport("loop", "docs", "tuned")
    rambling = EvalReport("loop", "docs", "base")
    for id, expected, short in questions:
        terse.items.append(_result(id, short, expected))
        long = f"The documents describe {id} settings in detail. {short} " + "More words. " * 40
        rambling.items.append(_result(id, long, expected))
    assert terse.summary["accuracy"] == terse.summary["accuracy_contains"] == 1.0
    assert rambling.summary["accuracy"] == 0.0 and rambling.summary["accuracy_contains"] == 1.0
    assert terse.summary["median_answer_words"] < 10 < rambling.summary["median_answer_words"]

    comparison = Comparison(Side("base"), Side("tuned"), "docs", [rambling, terse])
    table = comparison.table
    assert (table["questions"], table["both"], table["only_a"], table["only_b"]) == (3, 0, 0, 3)
    assert table["contains"] == {
        "both": 3, "only_a": 0, "only_b": 0, "neither": 0, "mcnemar_p": 1.0
    }  # fmt: skip
    row = comparison.to_dict()["per_question"][0]
    assert (row["a_correct"], row["a_contains"], row["b_correct"], row["b_contains"]) == (
        False, True, True, True
    )  # fmt: skip
    assert row["a_words"] > row["b_words"]


def test_questions_come_from_a_dataset_split_or_a_qa_file(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "data")
    dataset = DatasetStore(ws.layout.datasets).create("d", {})
    for n, (split, answer) in enumerate([("validation", "02:00"), ("train", "x"),
                                         ("validation", "")]):  # fmt: skip
        dataset.append_example({"id": f"e{n}", "split": split, "question": "When?",
                                "answer": answer})  # fmt: skip
    [item] = load_items(ws, "dataset:d")
    assert (item.id, item.answers) == ("e0", ["02:00"])
    DatasetStore(ws.layout.datasets).create("empty", {})
    with pytest.raises(QAFileError, match="no validation examples"):
        load_items(ws, "dataset:empty")
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "Who?", "answers": ["Ada"]}\n')
    assert [i.question for i in load_items(ws, str(qa))] == ["Who?"]


def test_a_comparison_that_searches_needs_a_knowledge_base(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "data")
    request = CompareRequest(Side("default", "rag"), Side("default", "closed"))
    assert request.needs_kb
    with pytest.raises(CotragError, match="--kb NAME"):
        compare_models(ws, request, [])
    closed = CompareRequest(Side("default", "closed"), Side("default", "closed"))
    assert not closed.needs_kb
