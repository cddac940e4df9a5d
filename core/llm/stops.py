"""Stop sequences and UTF-8 decoding over a token stream.

Tokens arrive as byte pieces that may split a character or a stop sequence in
two. Both helpers here hold back the unfinished part, so the screen never shows
half a character or the first half of ``</query>`` that is then taken back.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class StopMatcher:
    """Finds the first stop sequence in streamed text, holding back partial matches.

    ``feed`` returns the text that is safe to show now and, once a stop sequence
    has completed, that sequence. Text after the stop is discarded, and so is
    anything fed after it.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(dict.fromkeys(s for s in stops if s))
        self._held = ""
        self._stopped: str | None = None

    @property
    def stopped(self) -> str | None:
        """The stop sequence that completed, or None."""
        return self._stopped

    def feed(self, text: str) -> tuple[str, str | None]:
        if self._stopped is not None:
            return "", self._stopped
        buf = self._held + text
        hit = self._earliest_stop(buf)
        if hit is not None:
            index, stop = hit
            self._held = ""
            self._stopped = stop
            return buf[:index], stop
        keep = self._partial_suffix_len(buf)
        self._held = buf[len(buf) - keep :]
        return buf[: len(buf) - keep], None

    def flush(self) -> str:
        """At the end of the stream: the held-back text was not a stop after all."""
        if self._stopped is not None:
            return ""
        held, self._held = self._held, ""
        return held

    def _earliest_stop(self, buf: str) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for stop in self._stops:
            index = buf.find(stop)
            # On a tie the shorter stop completed first in the stream.
            if index >= 0 and (
                best is None or index < best[0] or (index == best[0] and len(stop) < len(best[1]))
            ):
                best = (index, stop)
        return best

    def _partial_suffix_len(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that begins some stop sequence."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buf)), longest, -1):
                if buf.endswith(stop[:size]):
                    longest = size
                    break
        return longest


class Utf8Decoder:
    """Decodes token byte pieces, keeping an unfinished multi-byte character for later.

    Invalid bytes become U+FFFD instead of raising: a model can emit a lone
    continuation byte, and a stream must not die on it.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def decode(self, data: bytes) -> str:
        return str(self._decoder.decode(data, final=False))

    def flush(self) -> str:
        """End of stream: an unfinished character becomes U+FFFD."""
        return str(self._decoder.decode(b"", final=True))
