"""An in-memory analyzer double for the director's unit tests (integration tests use the simulator)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mlpower.director.errors import AnalyzerLost, RangeError
from mlpower.director.sources import Reading
from mlpower.schema import SampleFlag, SourceInfo


class FakeSource:
    """Produces ``power_fn(n)`` watts at 230 V; records every call; can be made to vanish."""

    def __init__(self, power_fn: Callable[[int], float | None] = lambda n: 100.0 + n, *, volts: float = 230.0,
                 min_interval_s: float = 0.1, model: str = "WT310E", kind: str = "wt310e",
                 overrange_at: frozenset[int] = frozenset()) -> None:
        self.info = SourceInfo(kind=kind, model=model, address="fake://1", tier="informative")
        self.min_interval_s = min_interval_s
        self.power_fn, self.volts, self.overrange_at = power_fn, volts, overrange_at
        self.calls: list[tuple] = []
        self.n = 0
        self.ranges: tuple[float | None, float | None] = (None, None)
        self.lost = threading.Event()
        self.refuse_ranges = False
        self.is_open = False

    def open(self) -> None:
        self.calls.append(("open",))
        self.is_open = True

    def identify(self) -> str:
        self.calls.append(("identify",))
        return "YOKOGAWA,WT310E,C2PH13047V,F1.03"

    def set_ranges(self, voltage_range_v: float | None, current_range_a: float | None) -> None:
        self.calls.append(("set_ranges", voltage_range_v, current_range_a))
        if self.refuse_ranges and voltage_range_v is not None:
            raise RangeError(f"no such range {voltage_range_v}")
        self.ranges = (voltage_range_v, current_range_a)

    def start(self, mark: str) -> None:
        self.calls.append(("start", mark))

    def read_sample(self) -> Reading:
        if self.lost.is_set():
            raise AnalyzerLost("connection closed by the analyzer")
        n, self.n = self.n, self.n + 1
        power = self.power_fn(n)
        flags = 0 if self.ranges[0] is not None else int(SampleFlag.AUTO_RANGE)
        if power is None:
            return Reading(time.time(), None, self.volts, None, None, self.ranges[0], self.ranges[1], None,
                           flags | SampleFlag.MISSING)
        if n in self.overrange_at:
            flags |= SampleFlag.OVERRANGE
        amps = power / self.volts
        uncertainty = None if self.ranges[0] is None else 0.001 * power + 0.05
        return Reading(time.time(), power, self.volts, amps, 1.0, self.ranges[0], self.ranges[1], uncertainty, flags)

    def stop(self) -> None:
        self.calls.append(("stop",))

    def close(self) -> None:
        self.calls.append(("close",))
        self.is_open = False
