"""UTC time helpers: every timestamp in mlpower is UTC seconds since the epoch (``t_utc_s``)."""

from __future__ import annotations

import datetime as dt
import time


def now_utc_s() -> float:
    return time.time()


def iso_utc(t_utc_s: float) -> str:
    """ISO 8601 with milliseconds and an explicit ``Z``."""
    return dt.datetime.fromtimestamp(t_utc_s, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_iso(text: str) -> float:
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()
