"""The Hugging Face access token, kept in the OS keyring and nowhere else.

A token reads gated and private repositories as the user, so it is never written
to a file by us (``huggingface_hub`` would put it in ``~/.cache/huggingface/token``
in clear). Where no keyring works (a headless Linux box without Secret Service),
``HF_TOKEN`` in the environment is the way, and :func:`set_token` says so.
"""

from __future__ import annotations

import logging
import os

from core.errors import TokenStoreUnavailable

SERVICE = "cotrag-studio"
USER = "huggingface"
ENV_VAR = "HF_TOKEN"

log = logging.getLogger(__name__)

_NO_KEYRING = (
    "No usable keyring to keep the hub token in: set the HF_TOKEN environment variable, "
    "or install a keyring backend (e.g. gnome-keyring or KWallet on Linux)."
)


def get_token() -> str | None:
    """The saved token, else ``HF_TOKEN``, else None (anonymous: public repositories only)."""
    import keyring
    from keyring.errors import KeyringError

    try:
        token = keyring.get_password(SERVICE, USER)
    except KeyringError as e:
        # A locked or missing keyring must not stop the app: the env var still works.
        log.info("keyring not readable (%s); falling back to %s", e, ENV_VAR)
        token = None
    if token:
        return token
    return os.environ.get(ENV_VAR, "").strip() or None


def set_token(token: str) -> None:
    """Save ``token`` in the OS keyring, replacing any saved before."""
    import keyring
    from keyring.errors import KeyringError

    token = token.strip()
    if not token:
        raise ValueError("The token is empty: paste the one from your hub settings page.")
    _require_backend()
    try:
        keyring.set_password(SERVICE, USER, token)
    except KeyringError as e:
        raise TokenStoreUnavailable(f"{_NO_KEYRING} (The keyring said: {e})") from e


def clear_token() -> None:
    """Forget the saved token; nothing to do when none is saved."""
    import keyring
    from keyring.errors import KeyringError, PasswordDeleteError

    _require_backend()
    try:
        keyring.delete_password(SERVICE, USER)
    except PasswordDeleteError:
        pass
    except KeyringError as e:
        raise TokenStoreUnavailable(f"{_NO_KEYRING} (The keyring said: {e})") from e


def _require_backend() -> None:
    """Refuse early when keyring fell back to its ``fail`` backend (it raises on every call)."""
    import keyring
    from keyring.backends import fail

    if isinstance(keyring.get_keyring(), fail.Keyring):
        raise TokenStoreUnavailable(_NO_KEYRING)
