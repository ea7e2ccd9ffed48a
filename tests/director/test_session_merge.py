"""Several analyzers merged by timestamp, never by line index."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from mlpower.director.merge import merge_by_time
from mlpower.schema import SampleFlag


@dataclass(frozen=True)
class S:
    t_utc_s: float
    power_w: float | None
    flags: int = 0


def test_a_missed_sample_does_not_shift_later_pairs() -> None:
    a = [S(0.0, 100), S(1.0, 101), S(2.0, 102), S(3.0, 103)]
    b = [S(0.05, 10), S(2.04, 12), S(3.02, 13)]  # b missed its t=1 sample
    rows = merge_by_time([a, b], tolerance_s=0.5)
    assert [r.power_w for r in rows] == [110, None, 114, 116]
    assert rows[1].flags & SampleFlag.MISSING and rows[1].parts[1] is None
    assert all(r.flags & SampleFlag.INTERPOLATED for r in rows)


def test_nearest_in_time_wins_and_flagged_parts_are_not_summed() -> None:
    a = [S(10.0, 1), S(11.0, 2)]
    b = [S(9.6, 50), S(10.1, 60), S(10.9, 70, int(SampleFlag.OVERRANGE))]
    rows = merge_by_time([a, b], tolerance_s=0.45)
    assert rows[0].power_w == 61
    assert rows[1].power_w is None and rows[1].flags & SampleFlag.OVERRANGE


def test_one_stream_is_itself_and_bad_tolerance_is_refused() -> None:
    a = [S(1.0, 5), S(0.0, 4)]
    assert [r.power_w for r in merge_by_time([a], 0.1)] == [4, 5]
    assert merge_by_time([], 0.1) == []
    with pytest.raises(ValueError):
        merge_by_time([a], -1)
