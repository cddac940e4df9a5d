"""Question writers ("teachers"): a loaded model, or an OpenAI-compatible HTTP endpoint.

Two ways to ask:
- ``question(candidate)``: the answer-first path. The teacher gets one sentence and
  the answer picked from it, and writes only the question (what a small model can do).
- ``pair(passage, heading, kind)``: a stronger teacher writes the question *and* the
  answer, copied from the passage, as JSON.
- ``bridge_question(first, second, answer)`` (optional, pair-writing teachers only): a
  two-hop question whose answer needs both passages; without it, or when it fails the
  checks, the bridge question is built from the two sentences.
- ``rewrite(question, answer)``: a verified question restated in the writer's own words
  (the rewrite step, :mod:`core.dataset.rewrite`).

Either may fail: every failure is a :class:`TeacherError` whose ``reason`` is counted
among the rejections and whose message is a sentence.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from core.agent.prompts import render
from core.dataset.candidates import Candidate
from core.errors import CotragError
from core.llm.base import Backend, Sampling, StreamRequest

KEYRING_SERVICE = "cotrag-studio-teacher"
API_KEY_ENV = "COTRAG_TEACHER_API_KEY"
MAX_QUESTION_CHARS = 200
LICENCE_NOTICE = (
    "Check the teacher model's licence: some forbid using their output to train other models."
)

QUESTION_OPENINGS = {
    "lookup": "Which",
    "default": "What is the default",
    "howto": "How do I",
    "definition": "What is",
    "behaviour": "Which option",
}
"""How the loaded-model teacher's reply starts, by kind: a small model keeps to a question
far more often when its first words are given (measured on the bundled 135M model)."""


class TeacherError(CotragError, RuntimeError):
    """The teacher gave nothing usable; ``reason`` names why (counted in the report)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Teacher(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def writes_pairs(self) -> bool:
        """True when the teacher is strong enough to write question and answer."""
        ...

    def question(self, candidate: Candidate) -> str: ...

    def pair(self, passage: str, heading: str, kind: str) -> tuple[str, str]: ...


def question_messages(candidate: Candidate) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": render("dataset_question_system")},
        {"role": "user", "content": render("dataset_question_example_user")},
        {"role": "assistant", "content": render("dataset_question_example_answer")},
        {
            "role": "user",
            "content": render(
                "dataset_question_user", sentence=candidate.sentence, answer=candidate.answer
            ),
        },
    ]


def pair_messages(passage: str, heading: str, kind: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": render("dataset_pair_system")},
        {
            "role": "user",
            "content": render(
                "dataset_pair_user", kind=kind, heading=heading or "no heading", passage=passage
            ),
        },
    ]


BRIDGE_SYSTEM = (
    "You write one question for a reading test over documentation. The question must need "
    "two passages: it describes a thing, called X, only by what the first passage says of "
    "it (never by its name), and asks for the fact the second passage states about X. "
    "Reply with the question only, on one line, ending with a question mark."
)
"""The bridge-question prompt (a question writer's prompt: no part of what a tuned model
sees, like the ``dataset_*`` templates)."""


def bridge_messages(first: str, second: str, answer: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": BRIDGE_SYSTEM},
        {
            "role": "user",
            "content": f"First passage (X is the thing): {first}\n"
            f"Second passage, about X: {second}\nAnswer (do not write it): {answer}\n"
            "Question:",
        },
    ]


REWRITE_SYSTEM = (
    "You rewrite questions about documentation the way a user would type them: in your own "
    "plain words, short, without the documentation's phrasing, so that the same answer "
    "still fits. A fill-in question becomes a plain question. Never write the answer. "
    "Reply with the question only, on one line, ending with a question mark."
)
"""The rewrite prompt (a question writer's prompt, like :data:`BRIDGE_SYSTEM`)."""

REWRITE_EXAMPLE = (
    'In the documentation about Cache, what fills the blank: "Entries older than ___ are '
    'removed when the cache is cleaned."?',
    "30 days",
    "How long do cache entries last before a cleanup deletes them?",
)
"""One worked rewrite shown before the real one (a small writer keeps to the task far
more often with an example)."""


def rewrite_messages(question: str, answer: str) -> list[dict[str, str]]:
    def ask(q: str, a: str) -> str:
        return f"Question: {q}\nAnswer (do not write it): {a}\nRewritten question:"

    example_q, example_a, example_rewrite = REWRITE_EXAMPLE
    return [
        {"role": "system", "content": REWRITE_SYSTEM},
        {"role": "user", "content": ask(example_q, example_a)},
        {"role": "assistant", "content": example_rewrite},
        {"role": "user", "content": ask(question, answer)},
    ]


def clean_question(text: str) -> str:
    """One line, up to the first question mark; a prefix such as ``Question:`` dropped."""
    line = " ".join(text.strip().split())
    line = re.sub(r"^(?:question|q)\s*[:.-]\s*", "", line, flags=re.IGNORECASE)
    if "?" in line:
        line = line[: line.index("?") + 1]
    return line.strip(" \"'")


def parse_pair(text: str) -> tuple[str, str]:
    """``{"question": …, "answer": …}`` from a reply that may wrap it in prose or a fence."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise TeacherError("invalid_json", "The teacher's reply held no JSON object.")
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise TeacherError(
            "invalid_json", f"The teacher's reply was not valid JSON ({exc})."
        ) from exc
    if not isinstance(data, dict):
        raise TeacherError("invalid_json", "The teacher's JSON was not an object.")
    question, answer = data.get("question"), data.get("answer")
    if not isinstance(question, str) or not isinstance(answer, str):
        raise TeacherError("invalid_json", "The teacher's JSON lacks a question or an answer.")
    return clean_question(question), " ".join(answer.split())


# -- a loaded model ------------------------------------------------------------------


@dataclass
class BackendTeacher:
    """Any loaded backend (the bundled model, a GGUF the user added)."""

    backend: Backend
    name: str = "bundled"
    writes_pairs: bool = False
    max_tokens: int = 40
    temperature: float = 0.3
    seed: int = 1234

    def _complete(self, prompt: str, stop: tuple[str, ...], tokens: int) -> tuple[str, str]:
        """The continuation of ``prompt`` and how it ended (no grammar: measured here, the
        question grammar made a 64-token reply take 40 s instead of 2)."""
        session = self.backend.session(prompt, reuse_cache=False)
        request = StreamRequest(
            stop=stop,
            max_tokens=tokens,
            sampling=Sampling(temperature=self.temperature, seed=self.seed),
        )
        parts: list[str] = []
        finish = "eos"
        for chunk in session.stream(request):
            parts.append(chunk.text)
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
        self.seed += 1  # another draw next time, still reproducible from the first seed
        return "".join(parts), finish

    def question(self, candidate: Candidate) -> str:
        opening = QUESTION_OPENINGS.get(candidate.kind, "")
        prompt = self.backend.chat_prompt(question_messages(candidate)) + opening
        text, finish = self._complete(prompt, ("\n", "?"), self.max_tokens)
        if finish == "length":
            raise TeacherError("unclosed_output", "The teacher's question never ended.")
        question = clean_question(f"{opening}{text}".strip() + "?")
        if len(question) <= len(opening) + 2:
            raise TeacherError("empty_output", "The teacher wrote no question.")
        return question

    def pair(self, passage: str, heading: str, kind: str) -> tuple[str, str]:
        prompt = self.backend.chat_prompt(pair_messages(passage, heading, kind))
        text, _ = self._complete(prompt, ("\n\n",), 160)
        return parse_pair(text)

    def bridge_question(self, first: str, second: str, answer: str) -> str:
        """A two-hop question (asked only of a model that writes pairs)."""
        return self._one_line_question(bridge_messages(first, second, answer), 96)

    def rewrite(self, question: str, answer: str) -> str:
        """``question`` restated in the model's own words (the rewrite step)."""
        return self._one_line_question(rewrite_messages(question, answer), 64)

    def _one_line_question(self, messages: list[dict[str, str]], tokens: int) -> str:
        """The question the model writes on one line, cleaned; an error when it never ends
        the line or writes nothing."""
        text, finish = self._complete(self.backend.chat_prompt(messages), ("\n",), tokens)
        if finish == "length":
            raise TeacherError("unclosed_output", "The teacher's question never ended.")
        question = clean_question(text)
        if not question:
            raise TeacherError("empty_output", "The teacher wrote no question.")
        return question


# -- an OpenAI-compatible endpoint ------------------------------------------------------


def api_key_for(base_url: str) -> str:
    """The endpoint's key: the environment variable, else the OS keyring; empty if none."""
    key = os.environ.get(API_KEY_ENV, "")
    if key:
        return key
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, base_url) or ""
    except Exception:  # no keyring package, or no keyring backend on this machine
        return ""


def store_api_key(base_url: str, key: str) -> None:
    """Keep an endpoint's key in the OS keyring (never in a file)."""
    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, base_url, key)
    except Exception as exc:
        raise CotragError(
            f"The key could not be stored in the OS keyring ({exc}); set {API_KEY_ENV} "
            "in the environment instead."
        ) from exc


@dataclass
class HttpTeacher:
    """``POST {base_url}/chat/completions`` (llama.cpp server, Ollama, LM Studio, vLLM, a
    hosted API). Retries a 429 or a 5xx with backoff; a 401 or a dead endpoint fails."""

    base_url: str
    model: str
    api_key: str = ""
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    temperature: float = 0.3
    writes_pairs: bool = True

    @property
    def name(self) -> str:
        return f"{self.model} @ {self.base_url}"

    def _post(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        url = self.base_url.rstrip("/") + "/chat/completions"
        body = json.dumps(
            {
                "model": self.model,
                "messages": messages,
                "temperature": self.temperature,
                "max_tokens": max_tokens,
            }
        ).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    data = json.loads(response.read().decode("utf-8"))
                return _reply_text(data)
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    raise TeacherError(
                        "unauthorized",
                        f"The teacher endpoint {self.base_url} refused the key (HTTP "
                        f"{exc.code}); check the API key.",
                    ) from exc
                if (exc.code == 429 or exc.code >= 500) and attempt < self.retries:
                    time.sleep(_retry_after(exc, self.backoff * 2**attempt))
                    continue
                raise TeacherError(
                    "rate_limited" if exc.code == 429 else "http_error",
                    f"The teacher endpoint answered HTTP {exc.code}"
                    + (" (too many requests; try again later)" if exc.code == 429 else "")
                    + ".",
                ) from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                raise TeacherError(
                    "unreachable",
                    f"The teacher endpoint {self.base_url} could not be reached ({reason}).",
                ) from exc
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise TeacherError(
                    "invalid_response", f"The teacher endpoint's reply was not JSON ({exc})."
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def question(self, candidate: Candidate) -> str:
        return self._question(question_messages(candidate), 64)

    def pair(self, passage: str, heading: str, kind: str) -> tuple[str, str]:
        return parse_pair(self._post(pair_messages(passage, heading, kind), 200))

    def bridge_question(self, first: str, second: str, answer: str) -> str:
        """A two-hop question: X described by the first passage, asked about by the second."""
        return self._question(bridge_messages(first, second, answer), 96)

    def rewrite(self, question: str, answer: str) -> str:
        """``question`` restated in the writer's own words (the rewrite step)."""
        return self._question(rewrite_messages(question, answer), 64)

    def _question(self, messages: list[dict[str, str]], tokens: int) -> str:
        question = clean_question(self._post(messages, tokens))
        if not question:
            raise TeacherError("empty_output", "The teacher wrote no question.")
        return question


def _retry_after(exc: urllib.error.HTTPError, default: float) -> float:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return min(30.0, float(value)) if value else default
    except ValueError:
        return default


def _reply_text(data: Any) -> str:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise TeacherError(
            "invalid_response", "The teacher endpoint's reply has no choices[0].message."
        ) from exc
    if not isinstance(content, str):
        raise TeacherError("invalid_response", "The teacher's message content is not text.")
    return content
