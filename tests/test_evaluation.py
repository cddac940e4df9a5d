from __future__ import annotations

from pathlib import Path

import pytest

from core.compare.evaluation import QAFileError, contains_any, load_qa
from core.compare.pairs import Side
from core.compare.service import CompareRequest, compare_models, load_items
from core.dataset.storage import DatasetStore
from core.errors import CotragError
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
