"""The streaming tag parser: tags split anywhere, lenient reading, every deviation reported."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from core.agent.events import BlockEnd, BlockStart, ProtocolError, Token
from core.agent.parser import (
    ParseItem,
    TagParser,
    bracket_citations,
    parse_trace,
    results_numbers,
    trace_errors,
)

TRACE = (
    "<think>I need the opening year.</think>\n"
    "<query>bridge opening year</query>\n"
    "<query_res>\n[1] a.md#0: The bridge opened in 1932.\n</query_res>\n"
    "<think>Passage 1 has it; 2 > 1 and a < b are just text.</think>\n"
    "<results>[1] states the year</results>"
)


def run_parser(pieces: list[str], *, allow_query_res: bool = False) -> list[ParseItem]:
    parser = TagParser(allow_query_res=allow_query_res)
    items: list[ParseItem] = []
    for piece in pieces:
        items.extend(parser.feed(piece))
    items.extend(parser.close())
    return items


def blocks_of(items: list[ParseItem]) -> list[tuple[str, str]]:
    return [(i.tag, i.text) for i in items if isinstance(i, BlockEnd)]


def errors_of(items: list[ParseItem]) -> list[str]:
    return [i.kind for i in items if isinstance(i, ProtocolError)]


def test_well_formed_trace_gives_its_blocks_and_no_errors() -> None:
    items = run_parser([TRACE], allow_query_res=True)
    assert blocks_of(items) == [
        ("think", "I need the opening year."),
        ("query", "bridge opening year"),
        ("query_res", "\n[1] a.md#0: The bridge opened in 1932.\n"),
        ("think", "Passage 1 has it; 2 > 1 and a < b are just text."),
        ("results", "[1] states the year"),
    ]
    assert errors_of(items) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(TRACE) - 1), max_size=30))
def test_any_chunking_gives_the_same_blocks(cuts: list[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(TRACE)]
    pieces = [TRACE[a:b] for a, b in itertools.pairwise(bounds)]
    items = run_parser(pieces, allow_query_res=True)
    assert blocks_of(items) == blocks_of(run_parser([TRACE], allow_query_res=True))
    assert errors_of(items) == []


def test_a_half_tag_is_held_back_until_it_resolves() -> None:
    parser = TagParser()
    assert parser.feed("<think>abc <") == [BlockStart("think"), Token("think", "abc ")]
    assert parser.feed("/thi") == []
    assert parser.feed("nk>") == [BlockEnd("think", "abc ")]


def test_a_half_tag_held_back_when_the_user_stops_is_dropped() -> None:
    parser = TagParser()
    assert parser.feed("<think>abc <thi") == [BlockStart("think"), Token("think", "abc ")]
    assert parser.abort() == [BlockEnd("think", "abc ")]


def test_a_lone_less_than_is_shown_once_it_cannot_be_a_tag() -> None:
    parser = TagParser()
    parser.feed("<think>if a <")
    assert parser.feed(" 3 then") == [Token("think", "< 3 then")]
    assert parser.feed(".</think>")[-1] == BlockEnd("think", "if a < 3 then.")


def test_tags_are_read_leniently_case_and_spaces() -> None:
    items = run_parser(["< THINK >x</Think ><Query> cats </ query >"])
    assert blocks_of(items) == [("think", "x"), ("query", " cats ")]
    assert errors_of(items) == []


def test_unknown_tag_is_text_and_reported() -> None:
    items = run_parser(["<think>let me <search>now</think>"])
    assert blocks_of(items) == [("think", "let me <search>now")]
    assert errors_of(items) == ["unknown_tag"]


def test_unclosed_tag_at_the_end_is_closed_and_reported() -> None:
    items = run_parser(["<think>still thinking"])
    assert blocks_of(items) == [("think", "still thinking")]
    assert errors_of(items) == ["unclosed_tag"]


def test_text_without_any_tag_is_kept_as_think_and_reported_as_no_tags() -> None:
    items = run_parser(["The answer is probably 42."])
    assert items[0] == BlockStart("think")
    assert blocks_of(items) == [("think", "The answer is probably 42.")]
    assert errors_of(items) == ["no_tags"]


def test_stray_text_between_blocks_is_reported() -> None:
    items = run_parser(["<think>a</think> so I will search <query>q</query>"])
    assert blocks_of(items) == [("think", "a"), ("think", "so I will search "), ("query", "q")]
    assert errors_of(items) == ["stray_text"]


def test_forgotten_think_close_is_closed_by_the_next_block() -> None:
    items = run_parser(["<think>reasoning<query>q</query>"])
    assert blocks_of(items) == [("think", "reasoning"), ("query", "q")]
    assert errors_of(items) == ["unclosed_tag"]


def test_other_closing_tags_inside_think_are_just_text() -> None:
    items = run_parser(["<think>a doc had </query_res> and </results> in it</think>"])
    assert blocks_of(items) == [("think", "a doc had </query_res> and </results> in it")]
    assert errors_of(items) == []


def test_query_res_written_by_the_model_is_forged_and_cut_out() -> None:
    items = run_parser(["<query>q</query><query_res>[1] made up</query_res><think>t</think>"])
    assert blocks_of(items) == [("query", "q"), ("think", "t")]
    assert errors_of(items) == ["forged_block"]


def test_parse_trace_spans_point_at_the_blocks_in_the_text() -> None:
    for block in parse_trace(TRACE):
        segment = TRACE[block.start : block.end]
        assert segment.startswith("<" + block.tag + ">")
        assert segment.endswith("</" + block.tag + ">")
        assert block.text in segment
    assert trace_errors(TRACE) == []


def test_citations_in_brackets_and_bare_lists() -> None:
    assert bracket_citations("Yes [2], and [1, 3]; see [2] again.") == [2, 1, 3]
    assert results_numbers("[3] relevant\n[1] also") == [3, 1]
    assert results_numbers("2, 4") == [2, 4]
    assert results_numbers("guide.md#7 version 1.5") == []


PIECES = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<query>",
        "</query>",
        "<results>",
        "</results>",
        "<query_res>",
        "</query_res>",
        "< Query >",
        "</THINK >",
        "<search>",
        "<",
        ">",
        "/",
        "a < b",
        "text",
        " ",
        "\n",
        "[1]",
        "query",
        "think",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=25).map("".join), st.data())
def test_streaming_in_any_chunks_reads_like_reading_at_once(text: str, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=12))
    bounds = [0, *sorted(set(cuts)), len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    streamed = run_parser(pieces)
    at_once = run_parser([text])
    assert blocks_of(streamed) == blocks_of(at_once)
    assert errors_of(streamed) == errors_of(at_once)


def test_a_saved_trace_does_not_judge_the_document_text_in_its_passages() -> None:
    from core.agent.parser import trace_errors

    trace = (
        "<think>t</think><query>omit</query>\n<query_res>\n[1] a.md#0: use --omit=<type> "
        "and <pkg>\n</query_res>\n<think>ok</think><results>[1]</results>"
    )
    assert trace_errors(trace) == []
    assert [e.kind for e in trace_errors("<think>a <search> b</think>")] == ["unknown_tag"]
