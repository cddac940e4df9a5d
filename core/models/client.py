"""The hub client the app uses: the endpoint from ``HF_ENDPOINT`` (else huggingface.co), the
cache from ``HF_HUB_CACHE`` (else the standard one), both read at each call so a changed
environment counts, and the access token from the OS keyring (else ``HF_TOKEN``), passed
explicitly on each call."""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import CotragError
from core.models.hub import HubClient
from core.models.token import get_token


def hub_client() -> HubClient:
    try:
        token = get_token()
    except CotragError:  # no usable keyring: anonymous, public repositories only
        token = None
    cache = os.environ.get("HF_HUB_CACHE")
    return HubClient(
        endpoint=os.environ.get("HF_ENDPOINT") or None,
        token=token,
        cache_dir=Path(cache).expanduser() if cache else None,
    )
