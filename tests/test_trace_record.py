"""The run record is training-grade: spans by author, messages, settings, positions.

Loop logic with the FAKE ScriptedBackend (see tests/fakes.py); the replay is the
desktop's pure-Python one (no Qt needed).
"""

from __future__ import annotations

import json

from fakes import KeywordRetriever, ScriptedBackend

from core.agent import prompts
from core.agent.events import (
    BlockEnd,
    BlockStart,
    Event,
    Finished,
    Prompt,
    ProtocolError,
    Retrieval,
    Started,
    Vetted,
)
from core.agent.loop import Agent, seed_query
from core.agent.record import RunRecord
from core.config import AppConfig, LoopConfig
from core.knowledge.types import Hit
from desktop.replay import events_from_record

DOCS = {
    "bridge.md": "The old bridge opened to traffic in 1932 after four years of work.",
    "river.md": "The river floods the valley every spring; the bridge was built above it.",
    "cats.md": "Cats sleep for most of the day.",
}
QUESTION = "When did the bridge open?"
ANSWER = "The bridge opened in 1932 [1]."


def agent_for(
    outputs: list[str], first_query: str = "model", **loop: int
) -> tuple[Agent, ScriptedBackend, KeywordRetriever]:
    backend = ScriptedBackend(outputs)
    retriever = KeywordRetriever(DOCS)
    config = AppConfig(loop=LoopConfig(**loop))
    agent = Agent(backend, retriever, config, first_query=first_query)  # type: ignore[arg-type]
    return agent, backend, retriever


def record_of(events: list[Event]) -> RunRecord:
    record = RunRecord(QUESTION, "loop")
    for event in events:
        record.add(event)
    return record


def shape(events: list[object]) -> list[tuple[str, ...]]:
    """What a viewer draws, in order: blocks (with author and kind), retrievals, errors."""
    out: list[tuple[str, ...]] = []
    for e in events:
        if isinstance(e, BlockEnd):
            out.append(("block", e.tag, e.author, e.kind, e.text))
        elif isinstance(e, Retrieval):
            out.append(("retrieval", e.query, *map(str, e.numbers)))
        elif isinstance(e, ProtocolError):
            out.append(("error", e.kind))
    return out


def test_spans_join_to_the_trace_and_say_who_wrote_what() -> None:
    model_first = "<think>I need the year.</think>\n<query>bridge opened</query>"
    model_second = "<think>Passage 1 has it.</think>\n<results>[1] the year</results>"
    agent, _, _ = agent_for([model_first, model_second, ANSWER])
    events = list(agent.run(QUESTION))
    done = events[-1]
    assert isinstance(done, Finished)
    assert "".join(s.text for s in done.spans) == done.trace
    assert [(s.author, s.kind) for s in done.spans] == [
        ("model", ""),
        ("loop", "passages"),
        ("model", ""),
    ]
    assert done.spans[0].text == model_first and done.spans[2].text == model_second
    assert done.spans[1].text.startswith("\n<query_res>\n[1] bridge.md#0:")
    # The injected block says what it is, and the vetted numbers are an event.
    starts = [e for e in events if isinstance(e, BlockStart) and e.tag == "query_res"]
    assert [(s.author, s.kind) for s in starts] == [("loop", "passages")]
    assert [e for e in events if isinstance(e, Vetted)] == [Vetted([1], "results")]


def test_tags_the_loop_closes_or_opens_are_loop_spans() -> None:
    # The model never closes its think and never writes results: the loop closes the
    # block and opens <results> for it; those few characters must not be trained on.
    agent, _, _ = agent_for(["<think>I wonder", "[1] the year", ANSWER], max_block_tokens=8)
    done = list(agent.run(QUESTION))[-1]
    assert isinstance(done, Finished)
    assert "".join(s.text for s in done.spans) == done.trace
    loop_tags = [s.text for s in done.spans if s.author == "loop" and s.kind == "tag"]
    assert "</think>" in loop_tags and "\n<results>" in loop_tags
    assert all("<results>" not in s.text for s in done.spans if s.author == "model")


def test_the_record_keeps_messages_settings_and_hit_provenance() -> None:
    agent, backend, _ = agent_for(
        [
            "<think>t</think><query>bridge opened</query>",
            "<think>ok</think><results>[1] year</results>",
            ANSWER,
        ]
    )
    events = list(agent.run(QUESTION))
    started = events[0]
    assert isinstance(started, Started) and started.question == QUESTION
    stages = [e.stage for e in events if isinstance(e, Prompt)]
    assert stages == ["search", "answer"]
    record = record_of(events)
    again = RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.messages["search"] == prompts.loop_messages(QUESTION, max_rounds=3)
    assert again.messages["search"][0]["role"] == "system"
    assert "[1] bridge.md#0:" in again.messages["answer"][1]["content"]
    assert again.info["template_version"] == prompts.template_version()
    settings = again.info["settings"]
    assert settings["grammar"] is False and settings["first_query"] == "model"
    assert settings["k"] == 4 and settings["max_rounds"] == 3
    assert again.info["model"] == "scripted"
    assert again.spans == record.spans and again.trace == record.trace
    assert again.results == [1] and again.results_source == "results"
    # The prompt the engine really got is the chat template over those messages.
    search_prompt = next(e for e in events if isinstance(e, Prompt) and e.stage == "search")
    assert search_prompt.text == backend.sessions[0].prompt


def test_hits_keep_their_document_hash_and_page_through_json() -> None:
    hit = Hit(
        "x#1",
        "text",
        0.5,
        "/d/manual.pdf",
        "Intro",
        1,
        10,
        14,
        "dense",
        extra={"doc_hash": "ab" * 32, "page": 7},
    )
    record = RunRecord("q", "rag", retrievals=[Retrieval("q", [hit], [1])], retrieval_seq=[1])
    again = RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    back = again.retrievals[0].hits[0]
    assert back.extra == {"doc_hash": "ab" * 32, "page": 7}


def test_a_replay_puts_notes_errors_and_retrievals_where_they_happened() -> None:
    # A repeated query earns a loop note (no retrieval); the next real search must still
    # pair with its own passages, and the error must stay where it happened.
    agent, _, _ = agent_for(
        [
            "<think>a</think><query>bridge opened</query>",
            "<think>b</think><query>bridge opened</query>",
            "<think>c</think><query>river floods</query>",
            "<think>d</think><results>[1] year [2] river</results>",
            ANSWER,
        ]
    )
    live = list(agent.run(QUESTION))
    kinds = [(e.kind) for e in live if isinstance(e, BlockEnd) and e.tag == "query_res"]
    assert kinds == ["passages", "note", "passages"]
    record = record_of(live)
    replayed = events_from_record(json.loads(json.dumps(record.to_dict())))
    assert shape(replayed) == shape(live)


def test_an_old_record_without_positions_still_replays() -> None:
    old = {
        "version": 1,
        "question": QUESTION,
        "mode": "loop",
        "blocks": [
            {"tag": "query", "text": "bridge"},
            {"tag": "query_res", "text": "[1] bridge.md#0: The old bridge"},
            {"tag": "results", "text": "[1]"},
            {"tag": "answer", "text": ANSWER},
        ],
        "retrievals": [
            {
                "query": "bridge",
                "hits": [
                    {
                        "number": 1,
                        "id": "b#0",
                        "text": "The old bridge",
                        "score": 1.0,
                        "source": "bridge.md",
                    }
                ],
            }
        ],
        "protocol_errors": [{"kind": "stray_text", "detail": "x"}],
        "answer": ANSWER,
        "citations": [1],
        "finished": "answered",
    }
    events = events_from_record(old)
    assert [s[0] for s in shape(events)] == [
        "block",
        "retrieval",
        "block",
        "block",
        "error",
        "block",
    ]


def test_the_seeded_first_round_searches_with_the_question_as_the_loop() -> None:
    agent, backend, retriever = agent_for(
        ["<think>Passage 1 says 1932.</think>\n<results>[1] the year</results>", ANSWER],
        first_query="question",
    )
    events = list(agent.run(QUESTION))
    assert retriever.queries[0] == "When did the bridge open"
    seed = next(e for e in events if isinstance(e, BlockEnd) and e.tag == "query")
    assert (seed.author, seed.kind, seed.text) == ("loop", "seed", "When did the bridge open")
    # The model's first call already sees the passages of the seeded search.
    before = backend.calls[0].session_text_before
    assert before.endswith("</query_res>\n")
    assert "<query>When did the bridge open</query>\n<query_res>\n[1] bridge.md#0:" in before
    done = events[-1]
    assert isinstance(done, Finished) and done.reason == "answered"
    assert done.stats.rounds == 1 and done.stats.protocol_errors == 0
    assert [(s.author, s.kind) for s in done.spans][:2] == [("loop", "seed"), ("loop", "passages")]
    assert "".join(s.text for s in done.spans) == done.trace
    assert record_of(events).info["settings"]["first_query"] == "question"


def test_after_the_seed_the_model_searches_again_with_its_own_query() -> None:
    agent, _, retriever = agent_for(
        [
            "<think>I also need where.</think><query>river floods valley</query>",
            "<think>Both found.</think><results>[1] year [2] place</results>",
            ANSWER,
        ],
        first_query="question",
    )
    events = list(agent.run(QUESTION))
    assert retriever.queries == ["When did the bridge open", "river floods valley"]
    done = events[-1]
    assert isinstance(done, Finished) and done.stats.rounds == 2


def test_the_model_repeating_the_seeded_question_is_a_repeated_query() -> None:
    agent, _, _ = agent_for(
        [
            "<think>search</think><query>when did the bridge open</query>",
            "<think>ok</think><results>[1] year</results>",
            ANSWER,
        ],
        first_query="question",
    )
    events = list(agent.run(QUESTION))
    assert [e.kind for e in events if isinstance(e, ProtocolError)] == ["repeated_query"]


def test_a_seeded_run_respects_max_rounds_one() -> None:
    agent, _, retriever = agent_for(
        ["[1] the year", ANSWER], first_query="question", max_rounds=1, min_rounds=1
    )
    events = list(agent.run(QUESTION))
    assert len(retriever.queries) == 1
    assert any(isinstance(e, Vetted) for e in events)
    assert isinstance(events[-1], Finished) and events[-1].reason == "answered"


def test_seed_query_is_one_search_line() -> None:
    assert seed_query("  How do I\n reset   the <cache>? ") == "How do I reset the cache"
    long = "word " * 100
    line = seed_query(long)
    assert len(line) <= 160 and not line.endswith(" ") and "\n" not in line


def test_the_seeded_search_is_kept_for_the_answer_after_what_the_model_vetted() -> None:
    agent, backend, _ = agent_for(
        [
            "<think>Where?</think><query>river floods valley</query>",
            "<think>Only the river.</think><results>[2] the river passage</results>",
            ANSWER,
        ],
        first_query="question",
    )
    events = list(agent.run(QUESTION))
    vetted = next(e for e in events if isinstance(e, Vetted))
    assert vetted.numbers[0] == 2 and 1 in vetted.numbers
    assert vetted.source == "results+seed"
    answer_prompt = backend.sessions[1].prompt
    assert answer_prompt.index("[2] river.md") < answer_prompt.index("[1] bridge.md")


def test_results_none_vets_nothing_on_purpose() -> None:
    agent, backend, _ = agent_for(
        [
            "<think>t</think><query>cats sleep</query>",
            "<think>Nothing about bridges.</think><results>\nnone\n</results>",
            "The documents do not say.",
        ]
    )
    events = list(agent.run(QUESTION))
    assert [e for e in events if isinstance(e, Vetted)] == [Vetted([], "none")]
    assert not [e for e in events if isinstance(e, ProtocolError)]
    assert "(no passages were found)" in backend.sessions[1].prompt
