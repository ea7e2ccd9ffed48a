"""UTC time helpers: every timestamp in mlpower is UTC seconds since the epoch (``t_utc_s``).

Code that stamps, schedules or sleeps takes a ``Clock`` (``SYSTEM_CLOCK`` unless told), so a test
can hand it ``mlpower.testing.FakeClock`` and run a ten-second analyzer sleep in no time.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol


def now_utc_s() -> float:
    return time.time()


class Clock(Protocol):
    def now_utc_s(self) -> float:
        """Wall-clock UTC seconds since the epoch: what timestamps say."""
        ...

    def monotonic_s(self) -> float:
        """Seconds that never go back: what schedules and durations use."""
        ...

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Sleep up to ``timeout_s``, cut short when ``event`` is set; True when it was set."""
        ...


class SystemClock:
    def now_utc_s(self) -> float:
        return time.time()

    def monotonic_s(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return event.wait(max(0.0, timeout_s))


SYSTEM_CLOCK: Clock = SystemClock()


def iso_utc(t_utc_s: float) -> str:
    """ISO 8601 with milliseconds and an explicit ``Z``."""
    return dt.datetime.fromtimestamp(t_utc_s, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_iso(text: str) -> float:
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()
