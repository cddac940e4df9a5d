from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from core.conversations import ConversationNotFound, ConversationStore


def test_save_list_load_delete_export(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "conv")
    first = store.new("What is a cache?", kb="docs", model="m.gguf")
    first.turns.append({"question": "What is a cache?", "answer": "A store [1]."})
    store.save(first)
    second = store.new("  ")
    second.created += 10
    store.save(second)

    listed = store.list()
    assert [c.id for c in listed] == [second.id, first.id]
    assert second.title == "Conversation"
    again = store.load(first.id)
    assert again.turns[0]["answer"] == "A store [1]."
    assert again.kb == "docs"

    out = store.export(first.id, tmp_path / "export.json")
    assert json.loads(out.read_text())["title"] == "What is a cache?"

    store.delete(first.id)
    assert [c.id for c in store.list()] == [second.id]
    with pytest.raises(ConversationNotFound):
        store.load(first.id)


def test_damaged_file_does_not_hide_the_others(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path)
    good = store.new("ok")
    store.save(good)
    (tmp_path / "broken.json").write_text("{not json")
    assert [c.id for c in store.list()] == [good.id]


def test_ids_cannot_escape_the_folder(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c")
    with pytest.raises(ConversationNotFound):
        store.load("../../etc/passwd")


def test_two_writers_at_once_never_share_a_temp_file(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path)
    conv = store.new("Saved from two places")
    conv.turns.append({"question": "q", "answer": "a"})
    failures: list[BaseException] = []

    def save_many() -> None:
        try:
            for _ in range(50):
                store.save(conv)
        except BaseException as exc:  # a shared temp file fails one of the renames
            failures.append(exc)

    threads = [threading.Thread(target=save_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert store.load(conv.id).turns == conv.turns
    assert [p.name for p in tmp_path.iterdir()] == [f"{conv.id}.json"]
