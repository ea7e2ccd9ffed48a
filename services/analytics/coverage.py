"""How much of a window the samples cover (pure).

A sample taken at ``t`` is the analyzer's reading of the interval that ends at ``t``. So each
usable sample stands for the time since the sample before it (usable or not), and for at most
one sample interval ``Δ`` plus a tolerance ``τ = COVERAGE_TOLERANCE × Δ`` (timestamp jitter):

    d_i = | (t_{i-1}, t_i]  ∩  [t_i − Δ − τ, t_i]  ∩  [begin, end] |

Both window edges count: the head from ``begin`` to the first sample is covered only by that
sample's ``d_i``, and the tail up to ``end`` only by the first sample after ``end`` (it measured
the window's last interval). ``covered_s = Σ d_i``, ``coverage = covered_s / (end − begin)``.
Energy is ``Σ P_i · d_i``: the covered time only, never an average times the whole window. The
tail's power is the last usable sample inside the window's (the sample after ``end`` also saw
the load after LoadGen's window, which the checker leaves out too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from mlpower.samples import Samples

COVERAGE_TOLERANCE = 0.25  # τ as a fraction of the sample interval: jitter of a busy recorder's timestamps
INNER_GAP_LIMIT_S = 2.0  # the rules: no gap over 2 s between samples in the testing window
EVIDENCE_SPANS = 20  # at most this many uncovered spans or gaps listed in a finding
NEGLIGIBLE_S = 1e-5  # uncovered slivers shorter than this (float rounding, a live window's open end) are not listed


@dataclass(frozen=True)
class Span:
    begin_utc_s: float
    end_utc_s: float

    @property
    def seconds(self) -> float:
        return self.end_utc_s - self.begin_utc_s

    def evidence(self) -> dict[str, float]:
        return {"begin_utc_s": self.begin_utc_s, "end_utc_s": self.end_utc_s, "seconds": round(self.seconds, 6)}


@dataclass(frozen=True)
class Coverage:
    begin_utc_s: float
    end_utc_s: float
    interval_s: float
    tolerance_s: float
    covered_s: float
    energy_j: float | None  # Σ P_i·d_i (None when no time is covered)
    energy_trapezoid_j: float | None  # the same spans, power interpolated between adjacent samples
    uncovered: tuple[Span, ...]  # the window's time no usable sample stands for, in order
    inner_gaps: tuple[Span, ...]  # consecutive usable samples in the window more than INNER_GAP_LIMIT_S apart
    head_gap_s: float  # window begin -> first usable sample inside (the whole window if none)
    tail_gap_s: float  # last usable sample inside -> window end (the whole window if none)

    @property
    def window_s(self) -> float:
        return self.end_utc_s - self.begin_utc_s

    @property
    def ratio(self) -> float:
        return self.covered_s / self.window_s if self.window_s > 0 else 0.0

    @property
    def required_s(self) -> float:
        """What a complete record covers at least: the window less one sample interval at each edge."""
        return max(0.0, self.window_s - 2 * self.interval_s)

    @property
    def short(self) -> bool:
        """Less covered than a complete record covers at least."""
        return self.covered_s < self.required_s - NEGLIGIBLE_S

    @property
    def complete(self) -> bool:
        return not self.short and not self.inner_gaps

    def evidence(self) -> dict[str, Any]:
        longest = sorted(self.uncovered, key=lambda s: -s.seconds)[:EVIDENCE_SPANS]
        return {
            "window_begin_utc_s": self.begin_utc_s, "window_end_utc_s": self.end_utc_s,
            "window_s": round(self.window_s, 6), "covered_s": round(self.covered_s, 6),
            "coverage_ratio": round(self.ratio, 6), "required_ratio": round(self.required_s / self.window_s, 6)
            if self.window_s > 0 else 0.0,
            "sample_interval_s": self.interval_s, "tolerance_s": self.tolerance_s,
            "head_gap_s": round(self.head_gap_s, 6), "tail_gap_s": round(self.tail_gap_s, 6),
            "uncovered": [s.evidence() for s in sorted(longest, key=lambda s: s.begin_utc_s)],
            "uncovered_spans": len(self.uncovered),
            "inner_gaps": [g.evidence() for g in self.inner_gaps[:EVIDENCE_SPANS]],
            "inner_gap_count": len(self.inner_gaps),
        }


def coverage(samples: Samples, begin_utc_s: float, end_utc_s: float, interval_s: float,
             tolerance: float = COVERAGE_TOLERANCE, *, energy: bool = True) -> Coverage:
    """The coverage of ``[begin, end]`` by ``samples`` (sorted, as ``Samples`` keeps them).

    ``energy=False``: the coverage rule's question only (``energy_j`` and ``energy_trapezoid_j``
    are None), for live analytics, which asks it over the whole run on every page.
    Computed once per samples and arguments: the rules and the summary of one run ask alike."""
    arguments = (begin_utc_s, end_utc_s, interval_s, tolerance, energy)
    found: Coverage = samples.memoized(("coverage", *arguments), lambda: _coverage(samples, *arguments))
    return found


def _coverage(samples: Samples, begin_utc_s: float, end_utc_s: float, interval_s: float, tolerance: float,
              energy: bool) -> Coverage:
    tolerance_s = tolerance * interval_s
    t = samples.t_utc_s
    previous = np.concatenate(([-np.inf], t[:-1]))[:t.size]  # no samples: none before them either
    usable = samples.usable()
    lo = np.maximum(np.maximum(previous, t - (interval_s + tolerance_s)), begin_utc_s)
    hi = np.minimum(t, end_utc_s)
    stands = usable & (hi > lo)
    used_inside = usable & samples.inside(begin_utc_s, end_utc_s)
    lo, hi = lo[stands], hi[stands]
    d = hi - lo
    covered = float(d.sum())
    energy_j = trapezoid = None
    if d.size and energy:
        # The first sample after the window covers its end; LoadGen's load ends there, so its reading
        # mixes in what follows: the window's tail takes the last usable sample inside the window's power.
        power = samples.power_w.copy()
        held = stands & (t > end_utc_s)
        last_inside = np.flatnonzero(used_inside)
        if last_inside.size:
            power[held] = power[last_inside[-1]]
        energy_j = float(np.sum(power[stands] * d))
        trapezoid = _trapezoid_j(samples, power, stands, held, lo, hi, interval_s + tolerance_s)
    edges = np.concatenate(([begin_utc_s], hi))
    starts = np.concatenate((lo, [end_utc_s]))
    holes = np.flatnonzero(starts - edges > NEGLIGIBLE_S)
    uncovered = tuple(Span(float(edges[k]), float(starts[k])) for k in holes)
    u = t[used_inside]
    jumps = np.flatnonzero(np.diff(u) > INNER_GAP_LIMIT_S)
    gaps = tuple(Span(float(u[k]), float(u[k + 1])) for k in jumps)
    window = end_utc_s - begin_utc_s
    head = float(u[0] - begin_utc_s) if u.size else window
    tail = float(end_utc_s - u[-1]) if u.size else window
    return Coverage(begin_utc_s, end_utc_s, interval_s, tolerance_s, covered, energy_j, trapezoid, uncovered, gaps,
                    head, tail)


def _trapezoid_j(samples: Samples, power: np.ndarray, stands: np.ndarray, held: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, reach_s: float) -> float:
    """The trapezoid cross-check over the covered spans: where a span lies in the interval since a
    usable sample at most ``reach_s`` before, power is interpolated linearly between the two;
    elsewhere (and over the window's held tail) the sample's power is held."""
    i = np.flatnonzero(stands)
    j = np.maximum(i - 1, 0)
    t, p = samples.t_utc_s, power
    linked = (i > 0) & samples.usable()[j] & (t[i] - t[j] <= reach_s) & ~held[i]
    step = np.where(linked, t[i] - t[j], 1.0)
    slope = np.where(linked, (p[i] - np.where(linked, p[j], 0.0)) / step, 0.0)
    base = np.where(linked, p[j], p[i])
    origin = np.where(linked, t[j], t[i])
    mean = base + slope * (0.5 * (lo + hi) - origin)  # a line's mean over [lo, hi] is its value at the middle
    return float(np.sum(mean * (hi - lo)))
