"""Questions for a fact without a model, and the checks a teacher's question must pass:
a plain question where the sentence's shape gives one (a default, a definition, "To X,
run Y"), else a fill-in; the words a searcher takes from it; why a question is no good."""

from __future__ import annotations

import re

from core.agent.prompts import render
from core.dataset.candidates import Candidate
from core.dataset.construct import STOPWORDS
from core.dataset.verify import contains, words

_DEFAULT_SUBJECT_RE = re.compile(
    r"\b[Dd]efaults?\s+((?:(?!is\b|to\b)[\w`.-]+\s+){0,3}?)(?:is|to)\s"
)
_DEFINITION_SHAPE_RE = re.compile(
    r"^(?:An?\s+|The\s+)?(?P<term>.+?)\s+(?:is|are)\s+(?P<article>an?|the|one)\s+(?P<rest>.+)$"
)
_WHICH_DEFAULTS_RE = re.compile(r"(`[^`]{1,40}`|[\w.-]+),?\s+which\s+defaults?\s+to\s")
_DANGLING = frozenset(
    [
        "and",
        "or",
        "the",
        "their",
        "its",
        "to",
        "of",
        "a",
        "an",
        "with",
        "for",
        "in",
        "on",
        "by",
        "from",
        "that",
        "which",
    ]
)
_HOWTO_SHAPE_RE = re.compile(r"^To\s+(?P<goal>[^,]{5,90}),\s+(?:run|use|type|call)\s")


def _words(text: str, limit: int) -> str:
    """The first clause, at most ``limit`` words, not ending on a function word."""
    clause = re.split(r"[,;:(]", text, maxsplit=1)[0]
    words = clause.rstrip(" .").split()[:limit]
    while words and words[-1].casefold() in _DANGLING:
        words.pop()
    return " ".join(words)


def template_question(candidate: Candidate, heading: str) -> str:
    """The fallback question, built from the sentence alone: a plain question where the
    sentence has a shape that gives one (a default, a definition, "To X, run Y"), else the
    sentence with its answer blanked, as a fill-in."""
    sentence, answer = candidate.sentence, candidate.answer
    topic = heading.split(" > ")[-1].strip() if heading else ""
    if candidate.kind == "default":
        found = _DEFAULT_SUBJECT_RE.search(sentence)
        subject = found.group(1).strip() if found else ""
        if subject and not contains(subject, answer):
            return f"What is the default {subject}?"
        which = _WHICH_DEFAULTS_RE.search(sentence)
        if which and not contains(which.group(1), answer):
            return f"What does {which.group(1)} default to?"
        # Reference pages often title each setting with its name in backticks.
        if topic.startswith("`") and not contains(topic, answer):
            return f"What is the default value of {topic}?"
    if candidate.kind == "definition":
        found = _DEFINITION_SHAPE_RE.match(sentence)
        if found and contains(found.group("term"), answer):
            rest = _words(found.group("rest"), 18)
            if not contains(rest, answer):
                return f"What is the name for {found.group('article').lower()} {rest}?"
    if candidate.kind == "howto":
        found = _HOWTO_SHAPE_RE.match(sentence)
        if found and not contains(found.group("goal"), answer):
            return f"How do I {_words(found.group('goal'), 14)}?"
    masked = re.sub(re.escape(answer), "___", sentence, flags=re.IGNORECASE)
    masked = re.sub(r"`+___`+", "___", masked)
    words = masked.split()
    if len(words) > 30:
        blank = next((i for i, w in enumerate(words) if "___" in w), 0)
        start = max(0, min(blank - 12, len(words) - 30))
        words = words[start : start + 30]
    where = f" about {topic}" if topic else ""
    return f'In the documentation{where}, {FILL_IN_ASK}: "{" ".join(words)}"?'


FILL_IN_ASK = "what fills the blank"
_FILL_IN_RE = re.compile(
    rf'^In the documentation(?: about (?P<topic>.*?))?, {FILL_IN_ASK}: "(?P<text>.*)"\?$'
)


def search_text(question: str) -> str:
    """What a searcher would take from the question: for a fill-in, its topic and sentence
    without the frame and the blank (the frame's words are no search words)."""
    found = _FILL_IN_RE.match(question)
    if found is None:
        return question
    return f"{found.group('topic') or ''} {found.group('text').replace('___', ' ')}".strip()


_QUIZ_RE = re.compile(
    r"\b(?:of the following|correct answer|true or false|grammatically|this sentence)\b", re.I
)


def implausible(question: str, candidate: Candidate) -> str:
    """Why a teacher's question cannot be for this sentence and answer ('' when it can)."""
    if not question.endswith("?"):
        return "not_a_question"
    if contains(question, candidate.answer):
        return "answer_in_question"
    if _QUIZ_RE.search(question):
        return "quiz_phrasing"
    mine = words(question) - STOPWORDS
    example = words(render("dataset_question_example_answer")) - STOPWORDS
    if mine and len(mine & example) / len(mine) >= 0.5:
        return "copied_example"
    topic = words(candidate.sentence) - words(candidate.answer) - STOPWORDS
    if len(mine & topic) < min(2, len(topic)):
        return "off_topic"
    return ""
