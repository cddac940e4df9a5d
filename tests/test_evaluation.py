from __future__ import annotations

from pathlib import Path

import pytest

from core.evaluation import QAFileError, contains_any, load_qa


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
