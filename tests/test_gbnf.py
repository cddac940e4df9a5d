"""The GBNF automaton that applies the loop's grammars outside llama.cpp (no model)."""

from __future__ import annotations

import pytest

from core.agent.grammar import answer_grammar, results_body_grammar, segment_grammar
from core.errors import GrammarError
from core.llm.gbnf import DEAD, Grammar


def complete(grammar: Grammar, text: str) -> bool:
    state = grammar.walk(grammar.start, text)
    return state != DEAD and grammar.accepting(state)


def test_a_search_segment_admits_the_tags_in_order_and_nothing_else() -> None:
    grammar = Grammar(segment_grammar(allow_results=False))
    assert complete(grammar, "<think>sun?</think>\n<query>tomato sun hours</query>")
    assert not complete(grammar, "<query>no thinking first</query>")
    assert not complete(grammar, "<think>a</think><results>[1] x\n</results>")
    # Inside a block anything but "<" goes; a "<" can only start the closing tag.
    assert grammar.walk(grammar.start, "<think>a < b") == DEAD
    assert grammar.walk(grammar.start, "<think>日本 café") != DEAD


def test_results_and_answers_may_cite_only_the_numbers_shown() -> None:
    results = Grammar(results_body_grammar([2, 5]))
    assert complete(results, "[2] it says so\n[5] also\n</results>")
    assert not complete(results, "[3] never shown\n</results>")
    answer = Grammar(answer_grammar([1, 2]))
    assert complete(answer, "Six hours [1]. Water the roots [2].")
    assert not complete(answer, "Six hours [7].")
    assert not complete(answer, "No citation at all.")


def test_bounds_are_kept_however_long_the_text() -> None:
    grammar = Grammar(segment_grammar(allow_results=False, max_think_tokens=10))
    assert grammar.walk(grammar.start, "<think>" + "x" * 30) != DEAD
    assert grammar.walk(grammar.start, "<think>" + "x" * 31) == DEAD


def test_a_grammar_lists_the_tokens_that_may_come_next() -> None:
    grammar = Grammar('root ::= "yes" | "no"')
    texts = ["", "y", "yes", "no", "n", "nope", "maybe"]
    assert grammar.allowed(grammar.start, texts) == [1, 2, 3, 4]
    assert grammar.accepting(grammar.walk(grammar.start, "no"))


@pytest.mark.parametrize(
    ("gbnf", "message"),
    [
        ('root ::= "a" root', "refers to itself"),
        ('root ::= "unclosed', "does not parse"),
        ("root ::= missing", "undefined rule"),
        ('start ::= "a"', "no root"),
    ],
)
def test_a_grammar_it_cannot_apply_is_refused_with_the_reason(gbnf: str, message: str) -> None:
    with pytest.raises(GrammarError, match=message):
        Grammar(gbnf)


def test_comments_classes_and_multi_line_alternatives_parse() -> None:
    grammar = Grammar(
        "# a comment\n"
        "root ::= greeting [a-c\\]]{2} # trailing comment\n"
        '  | "\\x41" .\n'
        'greeting ::= "hi" ("!" | "?")?\n'
    )
    assert complete(grammar, "hi!ab")
    assert complete(grammar, "hic]")
    assert complete(grammar, "A\n")
    assert not complete(grammar, "hid")
