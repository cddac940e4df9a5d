"""Names a user gives to datasets, runs and models: each is also a folder name."""

from __future__ import annotations

import re

from core.errors import CotragError

_NAME_RE = re.compile(r"^[\w][\w .-]{0,63}$", re.UNICODE)


def check_name(name: str, what: str) -> None:
    """A name that is also a folder name on every platform (datasets, runs, models)."""
    if not _NAME_RE.match(name) or name.strip() != name or name.endswith(".part"):
        raise CotragError(
            f"{name!r} is not a usable {what} name: use letters, digits, spaces, '.', "
            "'_' or '-' (at most 64)."
        )
