from __future__ import annotations

import pytest

from core.llm.stops import StopMatcher, Utf8Decoder


def run(stops: list[str], chunks: list[str]) -> tuple[list[str], str | None]:
    """Feed chunks; return what was shown after each feed (plus the flush) and the stop."""
    matcher = StopMatcher(stops)
    shown: list[str] = []
    stop: str | None = None
    for chunk in chunks:
        text, stop = matcher.feed(chunk)
        shown.append(text)
        if stop is not None:
            break
    shown.append(matcher.flush())
    return shown, stop


def split_every_way(text: str, parts: int) -> list[list[str]]:
    """All ways to cut ``text`` into ``parts`` pieces (pieces may be empty)."""
    if parts == 1:
        return [[text]]
    out: list[list[str]] = []
    for cut in range(len(text) + 1):
        for rest in split_every_way(text[cut:], parts - 1):
            out.append([text[:cut], *rest])
    return out


@pytest.mark.parametrize("parts", [1, 2, 3, 4])
def test_stop_split_over_any_chunks_is_never_shown(parts: int) -> None:
    text = "a query é</query> trailing"
    for chunks in split_every_way(text, parts):
        shown, stop = run(["</query>", "</results>"], chunks)
        assert stop == "</query>", chunks
        assert "".join(shown) == "a query é", chunks


def test_partial_stop_is_held_back_until_decided() -> None:
    matcher = StopMatcher(["</query>"])
    assert matcher.feed("find cats </que") == ("find cats ", None)
    assert matcher.feed("ry>") == ("", "</query>")


def test_false_start_is_released_once_it_cannot_be_a_stop() -> None:
    matcher = StopMatcher(["</query>"])
    assert matcher.feed("see </que") == ("see ", None)
    assert matcher.feed("stion") == ("</question", None)
    assert matcher.flush() == ""


def test_false_start_followed_by_real_stop() -> None:
    shown, stop = run(["</query>"], ["a </", "b </qu", "ery>c"])
    assert stop == "</query>"
    assert shown[:2] == ["a ", "</b "]
    assert "".join(shown) == "a </b "


def test_flush_releases_a_dangling_prefix_at_end_of_stream() -> None:
    shown, stop = run(["</results>"], ["done </res"])
    assert stop is None
    assert shown == ["done ", "</res"]


def test_earliest_stop_wins_among_several() -> None:
    shown, stop = run(["</results>", "</query>"], ["x </query> y </results>"])
    assert stop == "</query>"
    assert "".join(shown) == "x "


def test_text_after_stop_is_discarded_including_later_feeds() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("abcENDdef") == ("abc", "END")
    assert matcher.feed("more") == ("", "END")
    assert matcher.flush() == ""
    assert matcher.stopped == "END"


def test_no_stops_passes_everything_through() -> None:
    matcher = StopMatcher([])
    assert matcher.feed("</query>") == ("</query>", None)


def test_multibyte_stop_sequence() -> None:
    shown, stop = run(["→ fin"], ["résumé →", " fi", "n!"])
    assert stop == "→ fin"
    assert "".join(shown) == "résumé "


def test_utf8_decoder_never_emits_half_a_character() -> None:
    data = "é→😀".encode()
    for cut_a in range(len(data) + 1):
        for cut_b in range(cut_a, len(data) + 1):
            decoder = Utf8Decoder()
            pieces = [decoder.decode(data[:cut_a]), decoder.decode(data[cut_a:cut_b])]
            pieces.append(decoder.decode(data[cut_b:]))
            pieces.append(decoder.flush())
            assert "\ufffd" not in "".join(pieces)
            assert "".join(pieces) == "é→😀"


def test_utf8_decoder_replaces_invalid_bytes_instead_of_failing() -> None:
    decoder = Utf8Decoder()
    assert decoder.decode(b"ok\x80") == "ok\ufffd"
    assert decoder.decode(b"\xe2\x86") == ""
    assert decoder.flush() == "\ufffd"


def test_decoder_feeding_matcher_across_token_boundaries() -> None:
    pieces = [b"caf", b"\xc3", b"\xa9 </q", b"uery", b">\n"]
    decoder = Utf8Decoder()
    matcher = StopMatcher(["</query>"])
    shown = ""
    stop = None
    for piece in pieces:
        text, stop = matcher.feed(decoder.decode(piece))
        shown += text
        if stop:
            break
    assert (shown, stop) == ("café ", "</query>")
