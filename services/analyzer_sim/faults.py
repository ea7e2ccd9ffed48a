"""Fault switches the transports and the instrument consult; each one can be turned on and off.

| fault | symptom (wt310e.md 3.2) |
| --- | --- |
| ``drop_connection`` | open connections are closed and new ones closed at once (Ethernet/RS-232 drop) |
| ``stall_s`` | every reply is held back this long (a slow or hung meter; the client times out) |
| ``burst`` | the next N updates read NAN (``nan``) or overrange INF (``overrange``) |
| ``clock_drift_ppm`` / ``clock_offset_s`` | the instrument's clock runs off the host's (PTD timestamps) |
| ``error_code`` | every command also pushes this code into the error queue |
| ``disconnected`` | USB-style disappearance: the port refuses connections, the pty goes away; on |
|  | return the meter restarts with its power-on settings |
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

BurstKind = Literal["nan", "overrange"]


@dataclass
class FaultState:
    drop_connection: bool = False
    stall_s: float = 0.0
    burst_kind: BurstKind = "nan"
    burst_updates_left: int = 0
    clock_drift_ppm: float = 0.0
    clock_offset_s: float = 0.0
    error_code: int = 0
    disconnected: bool = False


class Faults:
    """Thread-safe fault switches; ``on_change`` lets the transports react (close sockets, reopen a pty)."""

    def __init__(self, on_injected: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._state = FaultState()
        self._listeners: list[Callable[[str, FaultState], None]] = []
        self._on_injected = on_injected or (lambda name: None)

    def subscribe(self, listener: Callable[[str, FaultState], None]) -> None:
        self._listeners.append(listener)

    def snapshot(self) -> FaultState:
        with self._lock:
            return FaultState(**asdict(self._state))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.snapshot())

    def _changed(self, name: str, turned_on: bool) -> None:
        if turned_on:
            self._on_injected(name)
        state = self.snapshot()
        for listener in list(self._listeners):
            listener(name, state)

    # ---- switches
    def drop_connection(self, on: bool = True) -> None:
        with self._lock:
            self._state.drop_connection = on
        self._changed("drop_connection", on)

    def stall(self, seconds: float) -> None:
        with self._lock:
            self._state.stall_s = max(0.0, seconds)
        self._changed("stall", seconds > 0)

    def burst(self, kind: BurstKind = "nan", updates: int = 5) -> None:
        if kind not in ("nan", "overrange"):
            raise ValueError(f"burst kind must be nan or overrange, not {kind!r}")
        with self._lock:
            self._state.burst_kind, self._state.burst_updates_left = kind, max(0, updates)
        self._changed("burst", updates > 0)

    def clock_drift(self, drift_ppm: float = 0.0, offset_s: float = 0.0) -> None:
        with self._lock:
            self._state.clock_drift_ppm, self._state.clock_offset_s = drift_ppm, offset_s
        self._changed("clock_drift", drift_ppm != 0 or offset_s != 0)

    def error_queue(self, code: int = 0) -> None:
        with self._lock:
            self._state.error_code = code
        self._changed("error_queue", code != 0)

    def disconnect(self, on: bool = True) -> None:
        with self._lock:
            self._state.disconnected = on
        self._changed("disconnect", on)

    def clear(self) -> None:
        with self._lock:
            self._state = FaultState()
        self._changed("clear", False)

    # ---- consumption
    def take_burst(self) -> BurstKind | None:
        """Called once per meter update: the kind of bad data this update carries, if any."""
        with self._lock:
            if self._state.burst_updates_left <= 0:
                return None
            self._state.burst_updates_left -= 1
            return self._state.burst_kind
