"""The SUT's merged stream: the sum of its channels on a common timebase, built live.

Channels report samples on their own threads. A merged row for the first channel's sample at
``t`` is final once every other channel has a sample later than ``t + tolerance`` (nothing still
to come can be nearer), so rows are emitted as the phase goes on; ``close`` emits the rest with
what arrived. The rows are those of ``merge.merge_by_time`` over the same samples (the missing-part
rule included: a row with a channel missing or flagged has no power).

The sum's uncertainty is the sum of the channels' uncertainties: each is a datasheet limit (not a
standard deviation), and limits of errors that may be correlated (elements of one meter share
its calibration) add. The relative uncertainty of the sum is then a power-weighted mean of the
channels', so a sum of channels within 1 % is within 1 %.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from .merge import MergedRow, merge_row
from .sources import Reading


def sum_reading(row: MergedRow[Reading]) -> Reading:
    """The merged row as a sample of the SUT: power and uncertainty summed; per-channel quantities
    (volts, amps, PF, ranges) have no sum and stay ``None``."""
    uncertainty: float | None = None
    if row.power_w is not None:
        parts = [p.uncertainty_w if p is not None else None for p in row.parts]
        if all(u is not None and math.isfinite(u) for u in parts):
            uncertainty = float(sum(u for u in parts if u is not None))
    return Reading(t_utc_s=row.t_utc_s, power_w=row.power_w, voltage_v=None, current_a=None, power_factor=None,
                   voltage_range_v=None, current_range_a=None, uncertainty_w=uncertainty, flags=row.flags)


class SumStream:
    """Collects every channel's samples of one phase and emits the merged rows once they are final."""

    def __init__(self, channels: int, tolerance_s: float, on_row: Callable[[MergedRow[Reading], Reading], None]
                 ) -> None:
        if channels < 2:
            raise ValueError("a sum needs at least two channels")
        self.tolerance_s = tolerance_s
        self._samples: list[list[Reading]] = [[] for _ in range(channels)]
        self._emitted = 0  # rows emitted so far = samples of channel 0 merged
        self._on_row = on_row
        self._lock = threading.Lock()
        self.rows: list[MergedRow[Reading]] = []
        self.readings: list[Reading] = []

    def add(self, channel: int, reading: Reading) -> None:
        with self._lock:
            self._samples[channel].append(reading)
            self._emit(final=False)

    def close(self) -> list[Reading]:
        """Emit every row not emitted yet (with the samples that arrived); the merged readings."""
        with self._lock:
            self._emit(final=True)
            return list(self.readings)

    def _emit(self, *, final: bool) -> None:
        base = self._samples[0]
        others = self._samples[1:]
        while self._emitted < len(base):
            sample = base[self._emitted]
            if not final and not all(o and o[-1].t_utc_s > sample.t_utc_s + self.tolerance_s for o in others):
                return
            row = merge_row(sample, others, self.tolerance_s)
            merged = sum_reading(row)
            self.rows.append(row)
            self.readings.append(merged)
            self._emitted += 1
            self._on_row(row, merged)

