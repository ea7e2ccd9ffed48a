"""Secrets: what counts as a placeholder (refused wherever a secret is read) and how new ones are made.

A placeholder is a value someone was meant to replace: ``change-me...`` from an example file,
``<token>``, ``xxxx``, a bare ``secret`` or ``password``. A service refuses to start with one (its
settings say which variable), and ``mlpower lab up`` replaces a missing one with a fresh random
secret instead of using it.
"""

from __future__ import annotations

import re
import secrets

_PLACEHOLDER_PARTS = re.compile(r"change[-_ ]?me|replace[-_ ]?me|placeholder|your[-_ ](token|password|secret)",
                                re.IGNORECASE)
_PLACEHOLDER_WHOLE = re.compile(r"<[^>]*>|x{3,}|\*+|\.{3,}|secret|password|passwd|token|changeit|default|todo",
                                re.IGNORECASE)

PLACEHOLDER_HINT = ("is a placeholder, not a secret: set a real one, e.g. "
                    "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")


def is_placeholder(value: str) -> bool:
    text = value.strip()
    return bool(_PLACEHOLDER_PARTS.search(text) or _PLACEHOLDER_WHOLE.fullmatch(text))


def new_secret() -> str:
    """32 random bytes, URL-safe (43 characters): fit for a bearer token and a broker password."""
    return secrets.token_urlsafe(32)
