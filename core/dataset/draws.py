"""Draws fixed by a key and the dataset's seed: which split a document's examples go to,
and a share in [0, 1) for an example (the same documents and seed draw the same, wherever
the dataset is made)."""

from __future__ import annotations

import hashlib


def keyed_share(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by the key and the seed."""
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(source: str, seed: int, share: float) -> str:
    """Deterministic by document: no document has examples in both splits."""
    digest = hashlib.sha256(f"{seed}:{source}".encode()).digest()
    return "validation" if int.from_bytes(digest[:8], "big") / 2**64 < share else "train"
