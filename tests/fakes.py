"""Test doubles. ``ScriptedBackend`` is a FAKE generator, for tests of the loop's logic only.

It replays scripted outputs, one per ``stream`` call, but honours the contract
the loop relies on like the real llama.cpp backend does: stop sequences end a
call (never yielded, yet part of ``Session.text``), ``max_tokens`` ends it with
``length``, the cancel event is checked between tokens, and the final chunk
carries the finish reason and token counts. Tests about the model itself use
the real bundled model instead (tests/test_agent_model.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from core.knowledge.types import Hit
from core.llm.base import Capabilities, Chunk, GenStats, StreamRequest
from core.llm.stops import StopMatcher

# Words, whitespace runs and single punctuation marks: "<think>" is three tokens,
# so tags really do arrive split across chunks.
_TOKEN_RE = re.compile(r"\s+|\w+|[^\w\s]")


def fake_tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


@dataclass
class StreamCall:
    """What one ``stream`` call was asked for and what it produced."""

    request: StreamRequest
    session_text_before: str
    output: str = ""
    finish_reason: str = ""


@dataclass
class ScriptedSession:
    backend: ScriptedBackend
    prompt: str
    reuse_cache: bool = True
    _parts: list[str] = field(default_factory=list)
    _evaluated: int = 0
    """Characters of the sequence already 'in the KV cache'."""

    def __post_init__(self) -> None:
        self._parts.append(self.prompt)

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def append(self, text: str) -> None:
        self._parts.append(text)

    def stream(self, request: StreamRequest) -> Iterator[Chunk]:
        before = self.text
        call = StreamCall(request, before)
        self.backend.calls.append(call)
        script = self.backend.next_output()
        cached = self._evaluated if self.reuse_cache else 0
        stats = GenStats(
            prompt_tokens=len(fake_tokens(before[cached:])),
            cached_tokens=len(fake_tokens(before[:cached])),
        )
        written: list[str] = []
        finish = "eos"
        # The same matcher as the real backend: partial stops are held back, so a
        # stop sequence split over tokens never reaches the loop as text.
        matcher = StopMatcher(request.stop)
        tokens = fake_tokens(script)
        if request.max_tokens <= 0:
            tokens, finish = [], "length"
        elif request.cancel is not None and request.cancel.is_set():
            tokens, finish = [], "cancelled"
        # The order of checks after each token is the real backend's.
        for token in tokens:
            stats.completion_tokens += 1
            text, stop = matcher.feed(token)
            if text:
                written.append(text)
                yield Chunk(text)
            if stop is not None:
                finish = "stop"
                break
            if stats.completion_tokens >= request.max_tokens:
                finish = "length"
                break
            if request.cancel is not None and request.cancel.is_set():
                finish = "cancelled"
                break
        tail = matcher.flush()
        written.append(tail)
        stop_hit = matcher.stopped
        output = "".join(written) + (stop_hit or "")
        self._parts.append(output)
        self._evaluated = len(self.text)
        call.output = output
        call.finish_reason = finish
        yield Chunk(tail, finish_reason=finish, stop=stop_hit, stats=stats)  # type: ignore[arg-type]


class ScriptedBackend:
    """FAKE backend: each ``stream`` call (in any session) replays the next scripted output.

    When the script runs out, a call ends at once with EOS, like a model with
    nothing more to say; the loop must still finish.
    """

    name = "scripted"

    def __init__(self, outputs: Iterable[str], *, supports_grammar: bool = True) -> None:
        self.outputs = list(outputs)
        self.capabilities = Capabilities(
            constrained="gbnf" if supports_grammar else None, kv_reuse=True, token_ids=False
        )
        self.calls: list[StreamCall] = []
        self.sessions: list[ScriptedSession] = []
        self._next = 0

    def next_output(self) -> str:
        if self._next >= len(self.outputs):
            return ""
        output = self.outputs[self._next]
        self._next += 1
        return output

    def load(self) -> None:
        pass

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        turns = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        return turns + "<|assistant|>\n"

    def session(self, prompt: str, *, reuse_cache: bool = True) -> ScriptedSession:
        session = ScriptedSession(self, prompt, reuse_cache)
        self.sessions.append(session)
        return session

    def count_tokens(self, text: str) -> int:
        return len(fake_tokens(text))

    def close(self) -> None:
        pass


class KeywordRetriever:
    """A real, tiny retriever: ranks passages by words shared with the query."""

    def __init__(self, passages: dict[str, str]) -> None:
        self.hits = [
            Hit(id=f"{source}#0", text=text, score=0.0, source=source, method="bm25")
            for source, text in passages.items()
        ]
        self.queries: list[str] = []

    def search(self, query: str, k: int) -> list[Hit]:
        self.queries.append(query)
        words = set(re.findall(r"\w+", query.lower()))
        scored = []
        for hit in self.hits:
            overlap = len(words & set(re.findall(r"\w+", hit.text.lower())))
            if overlap:
                scored.append((overlap, hit))
        scored.sort(key=lambda pair: -pair[0])
        return [
            Hit(h.id, h.text, float(score), h.source, method=h.method) for score, h in scored[:k]
        ]
