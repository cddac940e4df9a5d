"""Escaping of document text before it enters a ``<query_res>`` block.

A document is untrusted input: one containing ``</query_res>`` or ``<results>``
must not close or forge a block (prompt injection through the knowledge base).
The ``<`` of anything the tag parser could read as a protocol tag becomes
``&lt;``; an ``&`` that already starts ``&lt;`` (or ``&amp;lt;`` …) gains one more
``amp;`` so that :func:`unescape_passage` restores the exact original.
"""

from __future__ import annotations

import re

from core.agent.parser import TAG_NAME_PATTERN

# Broader than the parser on purpose (any tag *starting* with a protocol name,
# also <answer>): escaping too much costs nothing, escaping too little is a hole.
_ESCAPE_RE = re.compile(rf"<(?=\s*/?\s*(?i:{TAG_NAME_PATTERN}|answer))|&(?=(?:amp;)*lt;)")
_UNESCAPE_RE = re.compile(r"&((?:amp;)*)lt;")


def _escape_one(match: re.Match[str]) -> str:
    return "&lt;" if match.group(0) == "<" else "&amp;"


def _unescape_one(match: re.Match[str]) -> str:
    amps = match.group(1)
    return "<" if not amps else "&" + amps[len("amp;") :] + "lt;"


def escape_passage(text: str) -> str:
    return _ESCAPE_RE.sub(_escape_one, text)


def unescape_passage(text: str) -> str:
    return _UNESCAPE_RE.sub(_unescape_one, text)
