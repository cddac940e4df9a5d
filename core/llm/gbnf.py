"""GBNF grammars applied token by token, for engines without llama.cpp's grammar sampler.

The tag loop's grammars (``core/agent/grammar.py``) describe regular languages: rules
refer to each other but never recursively, and repetition is ``? * + {m,n}``. Such a
grammar compiles to a character automaton (Thompson's construction, determinised
lazily as the text is written). A sampler asks it two things, as llama.cpp's does:
whether one token may come next (checked first, on the token the sampler chose), and
when not, which tokens may (a mask, computed once per automaton state and kept).

Recursive rules are refused with a :class:`GrammarError`: they need a pushdown
parser, which only llama.cpp's engine has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import GrammarError

DEAD = -1


# -- parsing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CharSet:
    negated: bool
    ranges: tuple[tuple[int, int], ...]

    def matches(self, char: str) -> bool:
        code = ord(char)
        inside = any(lo <= code <= hi for lo, hi in self.ranges)
        return inside != self.negated


@dataclass(frozen=True)
class Node:
    kind: str  # "seq", "alt", "chars", "ref", "rep"
    items: tuple[Node, ...] = ()
    chars: CharSet | None = None
    name: str = ""
    low: int = 0
    high: int | None = None


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> GrammarError:
        line = self.text.count("\n", 0, self.pos) + 1
        return GrammarError(f"The GBNF grammar does not parse at line {line}: {what}.")

    def rules(self) -> dict[str, Node]:
        rules: dict[str, Node] = {}
        self.space(newlines=True)
        while self.pos < len(self.text):
            name = self.name()
            self.space()
            if not self.text.startswith("::=", self.pos):
                raise self.error(f"expected ::= after {name}")
            self.pos += 3
            self.space(newlines=True)
            rules[name] = self.alternatives()
            self.space(newlines=True)
        if "root" not in rules:
            raise GrammarError("The GBNF grammar has no root rule.")
        return rules

    def space(self, *, newlines: bool = False) -> None:
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "#":
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self.pos += 1
            elif char in " \t" or (newlines and char in "\r\n"):
                self.pos += 1
            else:
                return

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] in "-_"
        ):
            self.pos += 1
        if start == self.pos:
            raise self.error("expected a rule name")
        return self.text[start : self.pos]

    def alternatives(self) -> Node:
        options = [self.sequence()]
        while True:
            save = self.pos
            self.space(newlines=True)  # an alternative may continue on the next line
            if self.peek() != "|":
                self.pos = save
                break
            self.pos += 1
            self.space(newlines=True)
            options.append(self.sequence())
        return options[0] if len(options) == 1 else Node("alt", tuple(options))

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def sequence(self) -> Node:
        items: list[Node] = []
        while True:
            self.space()
            char = self.peek()
            if char in ("", "|", ")", "\n", "\r"):
                break
            if char == "(":
                self.pos += 1
                self.space(newlines=True)
                item = self.alternatives()
                self.space(newlines=True)
                if self.peek() != ")":
                    raise self.error("expected )")
                self.pos += 1
            elif char == '"':
                item = self.literal()
            elif char == "[":
                item = Node("chars", chars=self.char_class())
            elif char == ".":
                self.pos += 1
                item = Node("chars", chars=CharSet(True, ()))  # any character
            else:
                name = self.name()
                # A name followed by ::= starts the next rule: this sequence is over.
                save = self.pos
                self.space()
                if self.text.startswith("::=", self.pos):
                    self.pos = save - len(name)
                    break
                self.pos = save
                item = Node("ref", name=name)
            items.append(self.repetition(item))
        self.space()
        return items[0] if len(items) == 1 else Node("seq", tuple(items))

    def repetition(self, item: Node) -> Node:
        char = self.peek()
        if char == "?":
            self.pos += 1
            return Node("rep", (item,), low=0, high=1)
        if char == "*":
            self.pos += 1
            return Node("rep", (item,), low=0, high=None)
        if char == "+":
            self.pos += 1
            return Node("rep", (item,), low=1, high=None)
        if char == "{":
            end = self.text.find("}", self.pos)
            if end < 0:
                raise self.error("unclosed {")
            body = self.text[self.pos + 1 : end].replace(" ", "")
            self.pos = end + 1
            try:
                if "," not in body:
                    low = high = int(body)
                    return Node("rep", (item,), low=low, high=high)
                first, second = body.split(",", 1)
                return Node("rep", (item,), low=int(first), high=int(second) if second else None)
            except ValueError as exc:
                raise self.error(f"bad repetition {{{body}}}") from exc
        return item

    def char(self) -> str:
        char = self.text[self.pos]
        self.pos += 1
        if char != "\\":
            return char
        code = self.text[self.pos]
        self.pos += 1
        if code in _ESCAPES:
            return _ESCAPES[code]
        if code in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[code]
            digits = self.text[self.pos : self.pos + size]
            self.pos += size
            return chr(int(digits, 16))
        raise self.error(f"unknown escape \\{code}")

    def literal(self) -> Node:
        self.pos += 1
        chars: list[Node] = []
        while self.peek() != '"':
            if not self.peek():
                raise self.error("unclosed string")
            code = ord(self.char())
            chars.append(Node("chars", chars=CharSet(False, ((code, code),))))
        self.pos += 1
        return chars[0] if len(chars) == 1 else Node("seq", tuple(chars))

    def char_class(self) -> CharSet:
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        while self.peek() != "]":
            if not self.peek():
                raise self.error("unclosed [")
            low = ord(self.char())
            high = low
            if self.peek() == "-" and self.text[self.pos + 1 : self.pos + 2] != "]":
                self.pos += 1
                high = ord(self.char())
            ranges.append((low, high))
        self.pos += 1
        return CharSet(negated, tuple(ranges))


# -- the automaton -----------------------------------------------------------------------


@dataclass
class _Nfa:
    edges: list[list[tuple[CharSet | None, int]]] = field(default_factory=list)

    def state(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1

    def link(self, source: int, target: int, chars: CharSet | None = None) -> None:
        self.edges[source].append((chars, target))


class Grammar:
    """A compiled grammar: a lazily determinised automaton over characters."""

    MAX_STATES = 200_000

    def __init__(self, gbnf: str) -> None:
        self._rules = _Parser(gbnf).rules()
        self._nfa = _Nfa()
        start = self._nfa.state()
        self._end = self._compile(self._rules["root"], start, ())
        self._sets: list[frozenset[int]] = []
        self._ids: dict[frozenset[int], int] = {}
        self._moves: dict[tuple[int, str], int] = {}
        self.masks: dict[int, Any] = {}
        """Per automaton state: the engine's allowed-token mask (filled by the engine)."""
        self.start = self._intern(self._closure({start}))

    def _compile(self, node: Node, start: int, stack: tuple[str, ...]) -> int:
        nfa = self._nfa
        if len(nfa.edges) > self.MAX_STATES:
            raise GrammarError("The GBNF grammar is too large to apply outside llama.cpp.")
        if node.kind == "chars":
            end = nfa.state()
            nfa.link(start, end, node.chars)
            return end
        if node.kind == "seq":
            for item in node.items:
                start = self._compile(item, start, stack)
            return start
        if node.kind == "alt":
            end = nfa.state()
            for item in node.items:
                branch = nfa.state()
                nfa.link(start, branch)
                nfa.link(self._compile(item, branch, stack), end)
            return end
        if node.kind == "ref":
            if node.name in stack:
                raise GrammarError(
                    f"The GBNF rule {node.name} refers to itself: recursive grammars need "
                    "llama.cpp; run a GGUF model or turn the grammar off."
                )
            if node.name not in self._rules:
                raise GrammarError(f"The GBNF grammar uses an undefined rule {node.name}.")
            return self._compile(self._rules[node.name], start, (*stack, node.name))
        # repetition
        (item,) = node.items
        for _ in range(node.low):
            start = self._compile(item, start, stack)
        if node.high is None:
            loop = nfa.state()
            nfa.link(start, loop)
            nfa.link(self._compile(item, loop, stack), loop)
            return loop
        end = nfa.state()
        for _ in range(node.high - node.low):
            # Each optional copy may be skipped straight to the end: X? nested, so the
            # state sets stay small however long the bound.
            nfa.link(start, end)
            start = self._compile(item, start, stack)
        nfa.link(start, end)
        return end

    def _closure(self, states: set[int]) -> frozenset[int]:
        todo = list(states)
        seen = set(states)
        while todo:
            for chars, target in self._nfa.edges[todo.pop()]:
                if chars is None and target not in seen:
                    seen.add(target)
                    todo.append(target)
        return frozenset(seen)

    def _intern(self, states: frozenset[int]) -> int:
        if not states:
            return DEAD
        found = self._ids.get(states)
        if found is None:
            found = len(self._sets)
            self._sets.append(states)
            self._ids[states] = found
        return found

    def step(self, state: int, char: str) -> int:
        key = (state, char)
        found = self._moves.get(key)
        if found is None:
            targets = {
                target
                for source in self._sets[state]
                for chars, target in self._nfa.edges[source]
                if chars is not None and chars.matches(char)
            }
            found = self._intern(self._closure(targets)) if targets else DEAD
            self._moves[key] = found
        return found

    def walk(self, state: int, text: str) -> int:
        for char in text:
            state = self.step(state, char)
            if state == DEAD:
                return DEAD
        return state

    def accepting(self, state: int) -> bool:
        return self._end in self._sets[state]

    def allowed(self, state: int, token_texts: Sequence[str]) -> list[int]:
        """Tokens whose text may come next (empty texts, special tokens, never)."""
        return [
            token
            for token, text in enumerate(token_texts)
            if text and self.walk(state, text) != DEAD
        ]
