"""QA pairs from files: the formats, and each kind of bad file named in a sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.dataset.importing import ImportFailed, load_pairs


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, "utf-8")
    return path


def test_jsonl_csv_json_and_squad(tmp_path: Path) -> None:
    jsonl = write(
        tmp_path / "a.jsonl",
        '{"question": "Q1?", "answers": ["A1", "x"]}\n\n'
        '{"Question": "Q2?", "answer": "A2", "context": "c", "source": "s.md"}\n',
    )
    assert [(p.question, p.answer) for p in load_pairs(jsonl)] == [("Q1?", "A1"), ("Q2?", "A2")]
    csv = write(tmp_path / "b.csv", 'question,answer\n"Why, then?",Because\n')
    assert load_pairs(csv)[0].question == "Why, then?"
    plain = write(tmp_path / "c.json", json.dumps([{"question": "Q?", "answer": "A"}]))
    assert load_pairs(plain)[0].answer == "A"
    squad = {
        "data": [
            {
                "title": "T",
                "paragraphs": [
                    {
                        "context": "ctx",
                        "qas": [
                            {"question": "Q?", "answers": [{"text": "A", "answer_start": 0}]},
                            {"question": "No?", "answers": [], "is_impossible": True},
                        ],
                    }
                ],
            }
        ]
    }
    pairs = load_pairs(write(tmp_path / "d.json", json.dumps(squad)))
    assert [(p.question, p.answer, p.context) for p in pairs] == [("Q?", "A", "ctx")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", "", "is empty"),
        ("blank.jsonl", "\n  \n", "only whitespace"),
        ("cols.csv", "prompt,reply\nx,y\n", "no question and no answer column"),
        ("miss.jsonl", '{"question": "Q?"}\n', "line 1: missing answer"),
        ("bad.jsonl", '{"question": "Q?", "answer": "A"}\n{oops\n', "line 2 is not JSON"),
        ("latin1.csv", "question,answer\nCaf\xe9?,x\n".encode("latin-1"), "not UTF-8"),
        ("x.txt", "question: a", "reads .json, .jsonl and .csv"),
        ("broken.json", '[{"question": ', "not valid JSON"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, name: str, content: str | bytes, message: str) -> None:
    with pytest.raises(ImportFailed, match=message):
        load_pairs(write(tmp_path / name, content))


def test_a_huge_line_is_refused_not_read_as_a_pair(tmp_path: Path) -> None:
    huge = '{"question": "Q?", "answer": "' + "x" * 50_000_000 + '"}\n'
    with pytest.raises(ImportFailed, match="line 1 is longer than"):
        load_pairs(write(tmp_path / "huge.jsonl", huge))
