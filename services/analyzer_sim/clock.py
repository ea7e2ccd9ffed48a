"""Clocks: the real one (with an optional injected drift) and a virtual one for fast, reproducible tests."""

from __future__ import annotations

import threading
import time


class RealClock:
    """Wall-clock UTC seconds; ``drift_ppm`` and ``offset_s`` let a fault make the instrument's clock wrong."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drift_ppm = 0.0
        self._offset_s = 0.0
        self._anchor_s = time.time()

    def set_error(self, drift_ppm: float = 0.0, offset_s: float = 0.0) -> None:
        with self._lock:
            self._anchor_s = time.time()
            self._drift_ppm, self._offset_s = drift_ppm, offset_s

    def _offset_now(self, real_s: float) -> float:
        return self._offset_s + (real_s - self._anchor_s) * self._drift_ppm * 1e-6

    def now(self) -> float:
        real_s = time.time()
        with self._lock:
            return real_s + self._offset_now(real_s)

    def error_s(self) -> float:
        """How far this clock is from the host's right now."""
        with self._lock:
            return self._offset_now(time.time())

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None:
        if seconds <= 0:
            return
        if stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)


class VirtualClock:
    """Time moves only when someone sleeps on it or advances it: deterministic replies for tests."""

    def __init__(self, start_s: float = 1_800_000_000.0) -> None:
        self._t = start_s
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += max(0.0, seconds)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None:
        self.advance(seconds)

    def set_error(self, drift_ppm: float = 0.0, offset_s: float = 0.0) -> None:
        self.advance(offset_s)

    def error_s(self) -> float:
        return 0.0
