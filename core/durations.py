"""How long something takes or has left, as people read it (CLI and desktop alike)."""

from __future__ import annotations


def clock(seconds: float | None, unknown: str = "–") -> str:
    """``1:05``, or ``2h 03m`` past an hour; ``unknown`` for a missing or impossible value."""
    if seconds is None or seconds != seconds or seconds < 0:
        return unknown
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}:{secs:02d}"


def took(seconds: float) -> str:
    """``42 s``, ``23 min 31 s``, ``1 h 05 min``: how long something took."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def loss_text(loss: object) -> str:
    """A loss as people read it: three decimals (``0.026``, ``1.347``), two significant
    digits below 0.01 (``0.0012``), or ``–`` for none."""
    if isinstance(loss, bool) or not isinstance(loss, int | float) or loss != loss:
        return "–"
    return f"{loss:.3f}" if abs(loss) >= 0.01 else f"{loss:.2g}"


def time_left(seconds: float | None) -> str:
    """``about 42 s left`` / ``about 3 min 05 s left``, for a progress line."""
    if seconds is None:
        return "estimating time left…"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"about {whole} s left"
    return f"about {whole // 60} min {whole % 60:02d} s left"
