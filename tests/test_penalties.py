"""The shared repetition penalties (the engines apply them; the contract suite runs them)."""

from __future__ import annotations

import pytest

from core.config import ConfigError, GenerationConfig
from core.llm.penalties import count_offsets, ngram_bans


def test_ngram_bans_forbid_completing_a_seen_ngram() -> None:
    assert ngram_bans([1, 2, 3, 1, 2], 3) == {3}
    assert ngram_bans([1, 2, 1, 3, 1], 2) == {2, 3}
    assert ngram_bans([1, 2, 3], 4) == set()
    assert ngram_bans([5, 5, 5], 0) == set()


def test_count_offsets_are_presence_plus_frequency_per_occurrence() -> None:
    assert count_offsets([7, 7, 8], 0.5, 0.25) == {7: 1.0, 8: 0.75}
    assert count_offsets([7], 0.0, 0.0) == {}


def test_bad_penalty_settings_are_sentences() -> None:
    with pytest.raises(ConfigError, match="presence_penalty"):
        GenerationConfig(presence_penalty=3.0)
    with pytest.raises(ConfigError, match="no_repeat_ngram"):
        GenerationConfig(no_repeat_ngram=1)
