"""Repetition penalties shared by the engines that sample in our own code.

The untuned model repeats itself (its own query, a sentence of its think): the repeat
penalty (llama.cpp's own) scales the logits of recent tokens; presence and frequency
penalties (OpenAI's definitions) subtract a fixed amount for a token seen at all and per
time seen; a no-repeat n-gram size forbids a token that would complete an n-gram already
written. All look at the tokens generated in the current stream only: copying from the
prompt (a passage's wording, the question's terms into a query) is what the loop wants.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def ngram_bans(history: Sequence[int], n: int) -> set[int]:
    """Tokens that would complete an ``n``-gram already in ``history`` (n < 2: none)."""
    if n < 2 or len(history) < n - 1:
        return set()
    prefix = tuple(history[len(history) - (n - 1) :])
    banned = set()
    for i in range(len(history) - n + 1):
        if tuple(history[i : i + n - 1]) == prefix:
            banned.add(int(history[i + n - 1]))
    return banned


def count_offsets(history: Sequence[int], presence: float, frequency: float) -> dict[int, float]:
    """What to subtract from each seen token's logit: ``presence`` once, plus
    ``frequency`` per occurrence."""
    if not history or (presence == 0.0 and frequency == 0.0):
        return {}
    return {int(token): presence + frequency * count for token, count in Counter(history).items()}
