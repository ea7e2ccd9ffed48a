"""Merge several analyzers (or channels) of one SUT onto a common timebase, by timestamp.

Upstream power-dev pairs line k of analyzer 1 with line k of analyzer 2 (quirk Q6): one missed
sample shifts every later pair. Here the first stream's timestamps are the timebase and every
other stream contributes its sample nearest in time, if one lies within ``tolerance_s``;
otherwise that part is missing and the merged power is missing too (a partial sum is not the
SUT's power). Pure: values in, values out.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from mlpower.schema import SampleFlag


class Timed(Protocol):
    @property
    def t_utc_s(self) -> float: ...
    @property
    def power_w(self) -> float | None: ...
    @property
    def flags(self) -> int: ...


T = TypeVar("T", bound=Timed)


@dataclass(frozen=True)
class MergedRow(Generic[T]):
    t_utc_s: float
    parts: tuple[T | None, ...]
    power_w: float | None
    flags: int


def usable_power(sample: Timed | None) -> float | None:
    """The power of a sample that may be averaged: present, finite, neither overrange nor missing."""
    if sample is None or sample.power_w is None or sample.power_w != sample.power_w:
        return None
    if sample.flags & (SampleFlag.OVERRANGE | SampleFlag.MISSING):
        return None
    return sample.power_w


def _nearest(times: Sequence[float], t: float, tolerance_s: float) -> int | None:
    i = bisect.bisect_left(times, t)
    best: int | None = None
    for j in (i - 1, i):
        if 0 <= j < len(times) and abs(times[j] - t) <= tolerance_s:
            if best is None or abs(times[j] - t) < abs(times[best] - t):
                best = j
    return best


def merge_by_time(streams: Sequence[Sequence[T]], tolerance_s: float) -> list[MergedRow[T]]:
    """One row per sample of ``streams[0]``; each other stream matched by nearest timestamp."""
    if not streams:
        return []
    if tolerance_s < 0:
        raise ValueError("tolerance_s must be >= 0")
    others = [sorted(stream, key=lambda s: s.t_utc_s) for stream in streams[1:]]
    other_times = [[s.t_utc_s for s in stream] for stream in others]
    rows: list[MergedRow[T]] = []
    for base in sorted(streams[0], key=lambda s: s.t_utc_s):
        parts: list[T | None] = [base]
        for stream, times in zip(others, other_times, strict=True):
            k = _nearest(times, base.t_utc_s, tolerance_s)
            parts.append(None if k is None else stream[k])
        flags = 0
        for part in parts:
            flags |= SampleFlag.MISSING if part is None else part.flags
        powers = [usable_power(part) for part in parts]
        total = None if any(p is None for p in powers) else sum(p for p in powers if p is not None)
        if len(parts) > 1:
            flags |= SampleFlag.INTERPOLATED
        if total is None:
            flags |= SampleFlag.MISSING
        rows.append(MergedRow(base.t_utc_s, tuple(parts), total, int(flags)))
    return rows
