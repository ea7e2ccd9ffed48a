"""The bearer-token guard every service's control endpoints share.

    control = [Depends(bearer_guard(settings.api_token))]
    @app.post("/runs", dependencies=control) ...

With an empty token the guard lets everything through (a local lab without a token configured);
otherwise the request needs ``Authorization: Bearer <token>``, else 401 with ``WWW-Authenticate``.
The scheme name is matched without regard to case and may be followed by several spaces (RFC 7235
section 2.1: ``auth-scheme 1*SP token68``). The token comparison is constant-time and made on bytes:
``hmac.compare_digest`` refuses non-ASCII ``str`` with a TypeError, which a hostile header would
otherwise turn into a 500.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException

SCHEME = "bearer"


def presented_token(authorization: str | None) -> bytes | None:
    """The credentials of a ``Bearer`` Authorization header (any case of the scheme), else None."""
    scheme, space, credentials = (authorization or "").partition(" ")
    if not space or scheme.lower() != SCHEME:
        return None
    return credentials.lstrip(" ").encode("utf-8", errors="replace")


def bearer_guard(token: str) -> Callable[..., None]:
    """A FastAPI dependency that refuses requests without the right bearer token (when one is set)."""
    expected = token.encode()

    def guard(authorization: Annotated[str | None, Header()] = None) -> None:
        if not token:
            return
        given = presented_token(authorization)
        # compare_digest also when the scheme is wrong, so the answer takes the same time
        if not hmac.compare_digest(given if given is not None else b"", expected) or given is None:
            raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return guard
