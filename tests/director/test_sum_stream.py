"""The SUT's merged stream built live equals the merge of the whole phase, whatever the arrival order."""

from __future__ import annotations

import random

import pytest
from mlpower.director.merge import merge_by_time
from mlpower.director.sources import Reading
from mlpower.director.sum_stream import SumStream, sum_reading
from mlpower.schema import SampleFlag


def reading(t: float, watts: float | None, uncertainty: float | None = 0.5, flags: int = 0) -> Reading:
    return Reading(t, watts, 230.0, None, None, 300.0, 1.0, uncertainty, flags)


def test_rows_are_emitted_once_final_and_equal_the_batch_merge() -> None:
    rng = random.Random(3)
    streams = [[reading(k + 0.01 * c + rng.uniform(-0.05, 0.05), 100.0 + c) for k in range(40)] for c in range(3)]
    del streams[2][17]  # a channel missed a sample: that row has no sum
    streams[1][5] = reading(streams[1][5].t_utc_s, None, None, int(SampleFlag.OVERRANGE))
    emitted: list[float] = []
    total = SumStream(3, 0.5, lambda row, merged: emitted.append(merged.t_utc_s))
    arrivals = [(c, r) for c, stream in enumerate(streams) for r in stream]
    # threads deliver a little late, in any interleaving; each channel's own samples stay in time order
    arrivals.sort(key=lambda item: item[1].t_utc_s + rng.uniform(0, 0.3))
    for c in range(3):
        mine = iter(sorted((r for ch, r in arrivals if ch == c), key=lambda r: r.t_utc_s))
        arrivals = [(ch, next(mine)) if ch == c else (ch, r) for ch, r in arrivals]
    for channel, r in arrivals:
        total.add(channel, r)
    live = len(emitted)
    readings = total.close()
    assert 30 < live < 40  # most rows were final before the end; the last ones wait for close
    batch = [sum_reading(row) for row in merge_by_time(streams, 0.5)]
    assert readings == batch
    by_time = {r.t_utc_s: r for r in readings}
    missing = by_time[streams[0][17].t_utc_s]
    assert missing.power_w is None and missing.flags & SampleFlag.MISSING and missing.uncertainty_w is None
    flagged = by_time[streams[0][5].t_utc_s]
    assert flagged.power_w is None and flagged.flags & SampleFlag.OVERRANGE
    clean = by_time[streams[0][0].t_utc_s]
    assert clean.power_w == pytest.approx(303.0) and clean.uncertainty_w == pytest.approx(1.5)
    assert clean.flags & SampleFlag.INTERPOLATED and clean.voltage_v is None
