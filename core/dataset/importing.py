"""Question/answer pairs from files: JSON, JSON lines, CSV and SQuAD-format JSON.

Columns (case-insensitive): ``question`` and ``answer`` (or ``answers``, a list or a
string), optional ``context`` and ``source``. Every problem is an
:class:`ImportFailed` that names the file and, where it has one, the line.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from core.dataset.pairs import ImportedPair
from core.errors import CotragError

MAX_LINE_BYTES = 1_000_000
"""A line longer than this is no QA pair (a minified dump, a binary file)."""
MAX_FILE_BYTES = 200_000_000


class ImportFailed(CotragError, ValueError):
    pass


def _decode(path: Path, data: bytes) -> str:
    for encoding in (
        ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",)
    ):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFailed(
            f"{path.name} is not UTF-8 text (byte {exc.start} cannot be read); save it as "
            "UTF-8 and import it again."
        ) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _answer_of(row: dict[str, Any]) -> str:
    for key in ("answer", "answers"):
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, list) and value and isinstance(value[0], str):
            return value[0].strip()
        if isinstance(value, dict):  # SQuAD-like {"text": [...]}
            texts = value.get("text")
            if isinstance(texts, list) and texts:
                return str(texts[0]).strip()
    return ""


def _pair(row: Any, where: str) -> ImportedPair:
    if not isinstance(row, dict):
        raise ImportFailed(f"{where}: expected an object with question and answer.")
    lowered = {str(k).strip().lower(): v for k, v in row.items()}
    question = lowered.get("question")
    answer = _answer_of(lowered)
    missing = [name for name, value in (("question", question), ("answer", answer)) if not value]
    if missing:
        raise ImportFailed(f"{where}: missing {' and '.join(missing)}.")
    return ImportedPair(
        str(question).strip(),
        answer,
        str(lowered.get("context") or ""),
        str(lowered.get("source") or ""),
    )


def _squad(data: dict[str, Any], name: str) -> list[ImportedPair]:
    pairs = []
    for article in data.get("data", []):
        for paragraph in article.get("paragraphs", []):
            context = str(paragraph.get("context", ""))
            for qa in paragraph.get("qas", []):
                if qa.get("is_impossible"):
                    continue
                answers = qa.get("answers") or []
                if not answers or not qa.get("question"):
                    continue
                pairs.append(
                    ImportedPair(
                        str(qa["question"]).strip(),
                        str(answers[0].get("text", "")).strip(),
                        context,
                        str(article.get("title", "")),
                    )
                )
    if not pairs:
        raise ImportFailed(f"{name} is SQuAD-shaped but holds no answerable question.")
    return pairs


def load_pairs(path: Path) -> list[ImportedPair]:
    """Every pair in the file, in order; the first bad line fails the whole import (so
    nothing half-imported is mistaken for the file)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImportFailed(f"{path} cannot be read ({exc.strerror or exc}).") from exc
    if size == 0:
        raise ImportFailed(f"{path.name} is empty.")
    if size > MAX_FILE_BYTES:
        raise ImportFailed(f"{path.name} is {size // 1_000_000} MB: split it into smaller files.")
    data = path.read_bytes()
    text = _decode(path, data)
    if not text.strip():
        raise ImportFailed(f"{path.name} holds only whitespace.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv(text, path.name)
    if suffix == ".json":
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportFailed(
                f"{path.name} is not valid JSON (line {exc.lineno}: {exc.msg})."
            ) from exc
        if isinstance(loaded, dict) and "data" in loaded:
            return _squad(loaded, path.name)
        if isinstance(loaded, dict):
            loaded = loaded.get("pairs") or loaded.get("examples") or [loaded]
        if not isinstance(loaded, list):
            raise ImportFailed(f"{path.name} holds no list of question/answer objects.")
        return [_pair(row, f"{path.name} item {i}") for i, row in enumerate(loaded, 1)]
    if suffix in (".jsonl", ".ndjson"):
        pairs = []
        for number, line in enumerate(text.split("\n"), 1):
            if len(line.encode("utf-8")) > MAX_LINE_BYTES:
                raise ImportFailed(
                    f"{path.name} line {number} is longer than {MAX_LINE_BYTES // 1000} kB: "
                    "it is not one question/answer pair."
                )
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ImportFailed(f"{path.name} line {number} is not JSON ({exc.msg}).") from exc
            pairs.append(_pair(row, f"{path.name} line {number}"))
        if not pairs:
            raise ImportFailed(f"{path.name} holds no question/answer line.")
        return pairs
    raise ImportFailed(f"{path.name}: import reads .json, .jsonl and .csv files.")


def _csv(text: str, name: str) -> list[ImportedPair]:
    csv.field_size_limit(MAX_LINE_BYTES)
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    missing = [c for c in ("question",) if c not in fields]
    if "answer" not in fields and "answers" not in fields:
        missing.append("answer")
    if missing:
        raise ImportFailed(
            f"{name} has no {' and no '.join(missing)} column (its columns: "
            f"{', '.join(fields) or 'none'})."
        )
    pairs = []
    try:
        for number, row in enumerate(reader, 2):
            pairs.append(_pair(row, f"{name} line {number}"))
    except csv.Error as exc:
        raise ImportFailed(f"{name}: {exc}.") from exc
    if not pairs:
        raise ImportFailed(f"{name} has a header but no rows.")
    return pairs
