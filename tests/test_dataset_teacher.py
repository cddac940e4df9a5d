"""The HTTP teacher's real client against a loopback server that speaks the OpenAI
chat-completions protocol: success, bad JSON, a never-closed reply, 401, 429, down, slow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai_stub import Reply, completion, serve

from core.dataset.candidates import Candidate
from core.dataset.teacher import HttpTeacher, TeacherError, parse_pair

CANDIDATE = Candidate("The backup keeps 14 copies before deleting the oldest.", "14", "lookup")


class Script:
    """What the server answers, one entry per request: (status, body, delay)."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, str, float]] = []
        self.requests: list[dict[str, object]] = []
        self.headers: list[dict[str, str]] = []

    def __call__(self, request: dict[str, object], headers: dict[str, str]) -> Reply:
        self.requests.append(request)
        self.headers.append(headers)
        return self.replies.pop(0) if self.replies else (500, "", 0.0)


reply = completion


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    with serve(script) as url:
        yield url, script


def test_a_question_and_a_pair_come_back(server: tuple[str, Script]) -> None:
    url, script = server
    script.replies += [
        (200, reply("Question: How many copies are kept?"), 0.0),
        (200, reply('Sure! ```json\n{"question": "How many copies?", "answer": "14"}\n```'), 0.0),
    ]
    teacher = HttpTeacher(url, "teacher-7b", api_key="sekrit")
    assert teacher.question(CANDIDATE) == "How many copies are kept?"
    assert teacher.pair("The backup keeps 14 copies.", "Backups", "lookup") == (
        "How many copies?",
        "14",
    )
    assert script.requests[0]["model"] == "teacher-7b"
    assert script.headers[0]["Authorization"] == "Bearer sekrit"


def test_invalid_json_and_an_unclosed_object_are_named() -> None:
    with pytest.raises(TeacherError) as exc:
        parse_pair('{"question": "How many')
    assert exc.value.reason == "invalid_json"
    with pytest.raises(TeacherError, match="no JSON object"):
        parse_pair("I cannot help with that.")
    with pytest.raises(TeacherError, match="lacks a question"):
        parse_pair('{"q": "x"}')


def test_401_says_check_the_key(server: tuple[str, Script]) -> None:
    url, script = server
    script.replies.append((401, '{"error": "bad key"}', 0.0))
    with pytest.raises(TeacherError, match="refused the key") as exc:
        HttpTeacher(url, "m").question(CANDIDATE)
    assert exc.value.reason == "unauthorized"


def test_429_is_retried_then_reported(server: tuple[str, Script]) -> None:
    url, script = server
    script.replies += [(429, "", 0.0), (200, reply("How many copies are kept?"), 0.0)]
    teacher = HttpTeacher(url, "m", retries=2, backoff=0.01)
    assert teacher.question(CANDIDATE) == "How many copies are kept?"
    script.replies += [(429, "", 0.0)] * 3
    with pytest.raises(TeacherError, match="too many requests") as exc:
        teacher.question(CANDIDATE)
    assert exc.value.reason == "rate_limited"


def test_a_reply_that_is_not_json_is_named(server: tuple[str, Script]) -> None:
    url, script = server
    script.replies.append((200, "<html>gateway</html>", 0.0))
    with pytest.raises(TeacherError, match="not JSON"):
        HttpTeacher(url, "m").question(CANDIDATE)


def test_a_slow_endpoint_times_out_and_a_dead_one_is_unreachable(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.replies.append((200, reply("late?"), 2.0))
    with pytest.raises(TeacherError, match="could not be reached") as exc:
        HttpTeacher(url, "m", timeout=0.3, retries=0).question(CANDIDATE)
    assert exc.value.reason == "unreachable"
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TeacherError, match="could not be reached"):
        HttpTeacher(f"http://127.0.0.1:{port}/v1", "m", retries=0).question(CANDIDATE)
