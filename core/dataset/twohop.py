"""Two-hop seeds: a chunk that mentions a term, and the chunk that the term names.

A *bridge* joins two chunks through one term:

- the **first** chunk mentions the term in a sentence (as a code literal or an option
  name: ``--save-exact``, `` `retention` ``; or as a term another chunk defines);
- the **second** chunk is about the term: a heading names it (reference pages title a
  setting, a command or a function with its name), or a sentence defines it ("A reverse
  proxy is a server that …"), and it states a fact the first chunk does not (a default,
  a literal, a number).

The question describes the term by the first chunk's sentence, without naming it, and
asks for the second chunk's fact: answering needs both. Nothing here knows a corpus:
terms come from the text's own markup (backticks, option syntax, headings, definitions),
and the pairs are ordered by the seed alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.dataset.candidates import (
    _CODE_RE,
    _DEFINITION_RE,
    _NOT_TERMS,
    _OPTION_RE,
    Candidate,
    candidates,
    sentences,
)
from core.dataset.construct import STOPWORDS, keywords
from core.dataset.spread import spread_over_documents
from core.dataset.verify import contains, normalise

MAX_NAMED_TEXTS = 2
"""A term that heads or defines more distinct chunk texts than this is a generic heading
("Description", "Examples"), not a name of one thing."""
MAX_MENTION_SHARE = 0.05
"""A term mentioned in more than this share of chunks names nothing in particular."""
MAX_FIRST_WORDS = 20
MAX_SECOND_WORDS = 16
BLANK = "X"
"""What stands for the bridge term in the question's quote of the first chunk."""

_FIELD_DEFAULT_RE = re.compile(
    r"^[ \t]*(?:[*+-][ \t]+)?[Dd]efault(?: value)?:[ \t]*(.+?)[ \t]*$", re.M
)
"""A reference field line, ``* Default: false``: too short for a sentence, yet the fact a
reader of a setting's section looks for."""
_HEADING_CODE_RE = re.compile(r"`([^`\n]{2,60})`")
_KIND_ORDER = {"default": 0, "lookup": 1, "behaviour": 2, "howto": 3, "definition": 4}


def term_key(term: str) -> str:
    """``--save-exact``, `` `save-exact` `` and ``save-exact=true`` name the same thing."""
    bare = term.strip().strip("`").strip()
    bare = re.sub(r"=.*$", "", bare)
    bare = re.sub(r"\(\)$", "", bare)
    return bare.lstrip("-").casefold()


@dataclass(frozen=True)
class Part:
    """One chunk of a bridge (the fields of a generation seed)."""

    chunk_id: str
    text: str
    source: str
    doc_hash: str
    heading: str


@dataclass(frozen=True)
class Bridge:
    first: Part
    """The chunk that mentions the term (the first hop)."""
    first_sentence: str
    term: str
    """As the first chunk writes it (``--save-exact``)."""
    second: Part
    """The chunk about the term, holding the answer (the second hop)."""
    answer: Candidate
    """The second chunk's fact: sentence, answer and the kind of its single-hop question."""
    first_ids: frozenset[str]
    """The first chunk and its verbatim copies (reference sections repeat across pages)."""
    second_ids: frozenset[str]

    @property
    def key(self) -> str:
        return f"{self.first.chunk_id}+{self.second.chunk_id}|twohop|{self.answer.answer}"

    @property
    def bare_term(self) -> str:
        """The term as a search word: no backticks, option dashes or ``=value``."""
        bare = re.sub(r"=.*$", "", self.term.strip().strip("`").strip())
        return bare.lstrip("-") or bare


def _names(text: str, heading: str) -> set[str]:
    """Keys of the terms a chunk is about: code in its own heading, terms it defines."""
    names: set[str] = set()
    last = heading.split(" > ")[-1] if heading else ""
    names.update(term_key(m) for m in _HEADING_CODE_RE.findall(last))
    for sentence in sentences(text):
        found = _DEFINITION_RE.match(sentence)
        if found:
            term = re.sub(r"^(?:An?|The)\s+", "", found.group(1))
            # One plain word ("Proxy") is too loose to find again in another chunk.
            first = term.split()[0].casefold()
            if first in STOPWORDS or first in _NOT_TERMS:
                continue  # "This command is …" defines nothing by name
            if term.startswith("`") or len(term.split()) >= 2:
                names.add(term_key(term))
    names.discard("")
    return names


def _mentions(sentence: str, defined: Iterable[str]) -> list[str]:
    """The terms a sentence mentions, as written: code literals and options, then the
    multi-word defined terms it contains."""
    found = [m.group(0) for m in _CODE_RE.finditer(sentence)]
    found += [m.group(1) for m in _OPTION_RE.finditer(sentence)]
    found += [t for t in defined if " " in t and contains(sentence, t)]
    return found


_KIND_CUE_RE = re.compile(
    r"\b(?:config(?:uration)?|options?|flags?|settings?|parameters?|variables?|commands?|"
    r"fields?|properties|property|keys?|arguments?|functions?|methods?)\b",
    re.IGNORECASE,
)
_MAX_LITERALS = 2
"""A sentence listing more code literals than this only enumerates the term."""


def specific(term: str, sentence: str, same_document: bool) -> bool:
    """Whether a mention surely means what another chunk names: a compound identifier
    (``save-exact``, ``init.author.name``) or option syntax does; a single word (``name``)
    does only within one document or where the sentence says what kind of thing it is."""
    key = term_key(term)
    if re.search(r"[-._/ ]", key) or term.strip("`").startswith("-") or same_document:
        return True
    return _KIND_CUE_RE.search(sentence) is not None


def _second_facts(text: str, term: str) -> list[Candidate]:
    """Facts of the second chunk to ask for: ``Default:`` field lines first, then the
    answer-first candidates, never the term itself."""
    out = [
        Candidate(f"Default: {m.group(1)}", m.group(1).strip().strip("`").rstrip("."), "default")
        for m in _FIELD_DEFAULT_RE.finditer(text)
        # A value, not a paragraph explaining one.
        if len(m.group(1).split()) <= 4 and not re.search(r"[.,;]\s", m.group(1))
    ]
    out += list(candidates(text))
    key = term_key(term)
    kept = []
    for candidate in out:
        answer = candidate.answer
        if not answer or len(answer) > 60 or re.search(r"[<>\[\]]", answer):
            continue
        if term_key(answer) == key or contains(answer, term.strip("`")):
            continue
        kept.append(candidate)
    return sorted(kept, key=lambda c: _KIND_ORDER.get(c.kind, 9))


def bridges(
    parts: list[Part],
    *,
    seed: int,
    split: Callable[[str], str],
    common: Callable[[str], bool],
) -> list[Bridge]:
    """Every usable bridge, one per first chunk, in a seeded order spread over the first
    chunks' documents. ``split`` gives a document's split (both chunks of a bridge are in
    the same one); ``common`` says an answer is too common to ask for on its own (a
    ``Default:`` field's value is exempt: the term makes it specific)."""
    source_of = {p.chunk_id: p.source for p in parts}
    copies: dict[str, set[str]] = {}
    for part in parts:
        copies.setdefault(normalise(part.text), set()).add(part.chunk_id)
    named: dict[str, list[Part]] = {}
    for part in parts:
        for name in _names(part.text, part.heading):
            named.setdefault(name, []).append(part)
    # A generic heading names many different texts: keep names of one thing.
    named = {
        k: v for k, v in named.items() if len({normalise(p.text) for p in v}) <= MAX_NAMED_TEXTS
    }
    defined = sorted({k for k in named if " " in k})
    mentioned: dict[str, int] = {}
    per_part: list[tuple[Part, list[tuple[str, str]]]] = []
    for part in parts:
        found = [(s, t) for s in sentences(part.text) for t in _mentions(s, defined)]
        per_part.append((part, found))
        for key in {term_key(t) for _, t in found}:
            mentioned[key] = mentioned.get(key, 0) + 1
    too_many = max(3, int(MAX_MENTION_SHARE * len(parts)))
    by_doc: dict[str, list[Bridge]] = {}
    for first, found in per_part:
        first_copies = copies[normalise(first.text)]
        options: list[tuple[int, str, Bridge]] = []
        for sentence, term in found:
            key = term_key(term)
            if key not in named or mentioned.get(key, 0) > too_many:
                continue
            if len(sentence.split()) - len(term.split()) < 5:
                continue
            if len(_CODE_RE.findall(sentence)) > _MAX_LITERALS or _FIELD_DEFAULT_RE.match(sentence):
                continue  # a list of names, or a field line: no description of the term
            for second in sorted(named[key], key=lambda p: p.chunk_id):
                if second.chunk_id in first_copies or normalise(second.text) == normalise(
                    first.text
                ):
                    continue
                if split(second.source) != split(first.source):
                    continue
                if not specific(term, sentence, second.source == first.source):
                    continue
                fact = next(
                    (
                        c
                        for c in _second_facts(second.text, term)
                        if not contains(first.text, c.answer)
                        and (c.sentence.startswith("Default: ") or not common(c.answer))
                    ),
                    None,
                )
                if fact is None:
                    continue
                same_split = {
                    cid
                    for cid in copies[normalise(second.text)]
                    if split(source_of[cid]) == split(first.source)
                }
                bridge = Bridge(
                    first,
                    sentence,
                    term,
                    second,
                    fact,
                    frozenset(first_copies),
                    frozenset(same_split),
                )
                options.append((mentioned.get(key, 0), second.chunk_id, bridge))
                break
        if options:
            # The rarest term: the most specific link.
            options.sort(key=lambda o: (o[0], o[1]))
            by_doc.setdefault(first.source, []).append(options[0][2])
    return spread_over_documents(by_doc, seed, lambda b: b.key)


def _window(text: str, marker: str, limit: int) -> str:
    words = text.split()
    if len(words) <= limit:
        return " ".join(words)
    at = next((i for i, w in enumerate(words) if marker in w), 0)
    start = max(0, min(at - limit // 2, len(words) - limit))
    piece = " ".join(words[start : start + limit])
    return ("…" if start else "") + piece + ("…" if start + limit < len(words) else "")


def _masked(sentence: str, target: str, marker: str) -> str:
    """The sentence with ``target`` as ``marker``: as written (with its backticks), and any
    other spelling of the same name (``--name``, `` `name` ``)."""
    out = re.sub(rf"(?<![\w-]){re.escape(target)}(?![\w-])", marker, sentence)
    bare = re.escape(re.sub(r"=.*$", "", target.strip("`")).lstrip("-"))
    if not bare:
        return out
    other = rf"`?(?<![\w./-])-{{0,2}}{bare}(?:=[\w.-]+)?(?![\w/-]|\.\w)`?"
    return re.sub(other, marker, out, flags=re.IGNORECASE)


def first_quote(bridge: Bridge) -> str:
    """The first chunk's sentence, its term as X."""
    return _window(_masked(bridge.first_sentence, bridge.term, BLANK), BLANK, MAX_FIRST_WORDS)


def template_question(bridge: Bridge) -> str:
    """The bridge question built from the two sentences: the first describes X without
    naming it; the second chunk's fact about X is what is asked."""
    quote = first_quote(bridge).rstrip(".")
    fact = bridge.answer
    if fact.kind == "default":
        return f'Documentation says: "{quote}". What is the default value of {BLANK}?'
    masked = re.sub(re.escape(fact.answer), "___", fact.sentence, flags=re.IGNORECASE)
    masked = re.sub(r"`+___`+", "___", masked)
    masked = _masked(masked, bridge.term, BLANK)
    second = _window(masked, "___", MAX_SECOND_WORDS).rstrip(".")
    return f'Documentation says: "{quote}". In the documentation of {BLANK}, what fills the blank: "{second}"?'


ASKS = {
    "default": "default",
    "lookup": "",
    "behaviour": "option",
    "howto": "how to",
    "definition": "",
}


def second_query(bridge: Bridge) -> str:
    """The refined query of the second hop: the bridge term, and what is asked of it."""
    ask = ASKS.get(bridge.answer.kind, "")
    if not ask:
        ask = keywords(bridge.answer.sentence.replace(bridge.answer.answer, " "), 4)
    return f"{bridge.bare_term} {ask}".strip()


def search_text(question: str) -> str:
    """What a searcher takes from a bridge question for the first hop: the quote."""
    found = re.search(r'"([^"]+)"', question)
    return found.group(1).replace(BLANK, " ") if found else question
