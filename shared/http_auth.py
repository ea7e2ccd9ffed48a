"""The bearer-token guard every service's control endpoints share.

    control = [Depends(bearer_guard(settings.api_token))]
    @app.post("/runs", dependencies=control) ...

With an empty token the guard lets everything through (a local lab without a token configured);
otherwise the request needs ``Authorization: Bearer <token>``, else 401 with ``WWW-Authenticate``.
The comparison is constant-time and made on bytes: ``hmac.compare_digest`` refuses non-ASCII
``str`` with a TypeError, which a hostile header would otherwise turn into a 500.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException


def bearer_guard(token: str) -> Callable[..., None]:
    """A FastAPI dependency that refuses requests without the right bearer token (when one is set)."""
    expected = f"Bearer {token}".encode()

    def guard(authorization: Annotated[str | None, Header()] = None) -> None:
        if not token:
            return
        given = (authorization or "").encode("utf-8", errors="replace")
        if not hmac.compare_digest(given, expected):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return guard
