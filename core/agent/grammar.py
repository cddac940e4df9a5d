"""GBNF grammars that hold a model to the tag protocol (llama.cpp).

Strict about tags, permissive inside blocks: the model may write anything but
``<`` in its reasoning, so the only way out of a block is its closing tag. Every
grammar describes what the *next* stream call may write; stop sequences end the
call at ``</query>`` or ``</results>`` before the grammar is exhausted.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_QUERY_CHARS = 160
"""Longest query the grammar admits: a search query is one line, not a paragraph."""
CHARS_PER_TOKEN = 3
"""A low estimate, so that a think block bounded in characters stays under its token bound."""


def _think_rules(max_chars: int | None) -> str:
    body = "[^<]*" if max_chars is None else f"[^<]{{0,{max_chars}}}"
    return f'think ::= "<think>" think-text "</think>"\nthink-text ::= {body}\n'


_MOVE_RULES = {
    "query": (
        'query ::= "<query>" query-text "</query>"\n'
        f"query-text ::= [^<\\n \\t] [^<\\n]{{0,{MAX_QUERY_CHARS - 1}}}\n"
    ),
    "results": 'results ::= "<results>" results-text "</results>"\n',
}


MAX_REASON_CHARS = 120
"""Longest reason the grammar admits after a passage number in <results>."""
MAX_SENTENCE_CHARS = 240
"""Longest stretch of answer text before a citation is due."""


def _numbers_rule(name: str, numbers: Sequence[int]) -> str:
    alternatives = " | ".join(f'"{n}"' for n in sorted(set(numbers)))
    return f"{name} ::= {alternatives}\n"


def _results_text_rules(numbers: Sequence[int]) -> str:
    """Free text, or, once passages were shown, one ``[n] why`` line per vetted passage
    where n must be a number the model was shown."""
    if not numbers:
        return "results-text ::= [^<]*\n"
    most = max(1, min(len(set(numbers)), 8))
    return (
        f'results-text ::= "\\n"? entry{{1,{most}}}\n'
        f'entry ::= "[" num "]" [^<\\n\\[\\]]{{0,{MAX_REASON_CHARS}}} "\\n"\n'
        + _numbers_rule("num", numbers)
    )


def segment_grammar(
    *,
    allow_query: bool = True,
    allow_results: bool = True,
    think: bool = True,
    max_think_tokens: int | None = None,
    numbers: Sequence[int] = (),
) -> str:
    """One step of the search turn: optional whitespace, a think block, then the next move.

    ``allow_query=False`` when the loop must conclude; ``allow_results=False`` before
    the first search, so that a model cannot skip searching altogether.
    ``think=False`` right after a think block (one the loop cut, say), so the model
    moves on instead of thinking the same thought again. ``max_think_tokens`` bounds
    the reasoning so the model closes it itself, before the loop has to.
    """
    moves = [name for name, ok in (("query", allow_query), ("results", allow_results)) if ok]
    if not moves:
        raise ValueError("a segment must allow a query, a results block or both")
    steps = "ws think ws" if think else "ws"
    rules = f"root ::= {steps} ({' | '.join(moves)})\nws ::= [ \\t\\n]{{0,3}}\n"
    if think:
        max_chars = None if max_think_tokens is None else max_think_tokens * CHARS_PER_TOKEN
        rules += _think_rules(max_chars)
    rules += "".join(_MOVE_RULES[name] for name in moves)
    if allow_results:
        rules += _results_text_rules(numbers)
    return rules


def results_body_grammar(numbers: Sequence[int] = ()) -> str:
    """What may follow a ``<results>`` the loop wrote itself to make the model conclude."""
    return 'root ::= results-text "</results>"\n' + _results_text_rules(numbers)


def answer_grammar(numbers: Sequence[int], *, max_sentences: int = 6) -> str:
    """A grounded answer: sentences, each closed by a citation of a given passage.

    ``[`` can only be written as part of a citation, so every ``[n]`` names a passage
    the answer stage was given, and at least one is cited.
    """
    if not numbers:
        raise ValueError("an answer grammar needs the numbers of the passages it may cite")
    return (
        f'root ::= sentence (" " sentence){{0,{max_sentences - 1}}}\n'
        f'sentence ::= [^\\[\\]<\\n] [^\\[\\]<\\n]{{0,{MAX_SENTENCE_CHARS}}} " [" num "]" "."?\n'
        + _numbers_rule("num", numbers)
    )


def query_text_grammar() -> str:
    """A bare query (one line, no ``<``): for generating queries outside the loop."""
    return f"root ::= [^<\\n \\t] [^<\\n]{{0,{MAX_QUERY_CHARS - 1}}}\n"


def think_text_grammar() -> str:
    """Bare reasoning text (no ``<``)."""
    return "root ::= [^<]*\n"
