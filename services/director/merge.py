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


def _nearest(stream: Sequence[T], t: float, tolerance_s: float) -> T | None:
    """The sample of a time-sorted stream nearest to ``t``, if one lies within ``tolerance_s``."""
    i = bisect.bisect_left(stream, t, key=lambda s: s.t_utc_s)
    best: T | None = None
    for j in (i - 1, i):
        if 0 <= j < len(stream) and abs(stream[j].t_utc_s - t) <= tolerance_s:
            if best is None or abs(stream[j].t_utc_s - t) < abs(best.t_utc_s - t):
                best = stream[j]
    return best


def merge_row(base: T, others: Sequence[Sequence[T]], tolerance_s: float) -> MergedRow[T]:
    """The row of one sample of the first stream: each other (time-sorted) stream's nearest sample
    within the tolerance, and the sum of their powers, missing when any part is missing or flagged."""
    parts: list[T | None] = [base] + [_nearest(stream, base.t_utc_s, tolerance_s) for stream in others]
    flags = 0
    for part in parts:
        flags |= SampleFlag.MISSING if part is None else part.flags
    powers = [usable_power(part) for part in parts]
    total = None if any(p is None for p in powers) else sum(p for p in powers if p is not None)
    if len(parts) > 1:
        flags |= SampleFlag.INTERPOLATED
    if total is None:
        flags |= SampleFlag.MISSING
    return MergedRow(base.t_utc_s, tuple(parts), total, int(flags))


def merge_by_time(streams: Sequence[Sequence[T]], tolerance_s: float) -> list[MergedRow[T]]:
    """One row per sample of ``streams[0]``; each other stream matched by nearest timestamp."""
    if not streams:
        return []
    if tolerance_s < 0:
        raise ValueError("tolerance_s must be >= 0")
    others = [sorted(stream, key=lambda s: s.t_utc_s) for stream in streams[1:]]
    return [merge_row(base, others, tolerance_s) for base in sorted(streams[0], key=lambda s: s.t_utc_s)]
