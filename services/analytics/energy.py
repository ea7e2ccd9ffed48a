"""Average power, energy and uncertainty over LoadGen's power window (pure).

The average follows the MLPerf submission checker (``get_power_metric``, power-dev-protocol.md
§6.2): the arithmetic mean of the samples whose time lies strictly inside (power_begin,
power_end) and whose power is > 0, with no time weighting. mlpower's only departure is that a
sample that is not usable (``mlpower.samples``: flagged OVERRANGE or MISSING) is excluded and
*counted* rather than averaged silently.

Energy is the integral of power over the time the samples cover (``coverage``): each usable
sample's power over the time it stands for. A window the samples do not cover whole reports the
energy of its covered part with the coverage beside it, never the average times the window.
The trapezoid rule over the same spans is the cross-check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from mlpower.samples import Samples

from .coverage import COVERAGE_TOLERANCE, Coverage, coverage
from .errors import WindowError

METHOD = (
    "MLPerf submission checker (get_power_metric): arithmetic mean of samples with power > 0 strictly inside "
    "LoadGen's (power_begin, power_end), no time weighting; OVERRANGE/MISSING samples excluded and counted; "
    "energy = sum of P*dt over the covered time only (each usable sample stands for the time since the sample "
    f"before it, at most one sample interval + {COVERAGE_TOLERANCE:.0%}; the first sample after power_end covers "
    "the window's end, at the power of the last sample inside), trapezoid over the same spans as cross-check, "
    "coverage = covered time / window; "
    "uncertainty = mean per-sample uncertainty (fully correlated instrument error) combined in quadrature "
    "with the standard error of the mean"
)


@dataclass(frozen=True)
class WindowResult:
    begin_utc_s: float
    end_utc_s: float
    window_s: float
    samples_in_window: int
    flagged_in_window: int
    avg_power_w: float | None
    avg_power_uncertainty_w: float | None
    instrument_uncertainty_w: float | None
    sampling_uncertainty_w: float | None
    coverage: Coverage
    max_relative_uncertainty: float | None

    @property
    def used(self) -> int:
        return self.samples_in_window - self.flagged_in_window

    @property
    def energy_j(self) -> float | None:
        return self.coverage.energy_j

    @property
    def energy_trapezoid_j(self) -> float | None:
        return self.coverage.energy_trapezoid_j


def analyze_window(samples: Samples, begin_utc_s: float, end_utc_s: float, interval_s: float) -> WindowResult:
    """Computed once per samples and window: the rules (samples_in_window...) and the summary ask alike."""
    found: WindowResult = samples.memoized(("analyze_window", begin_utc_s, end_utc_s, interval_s),
                                           lambda: _analyze_window(samples, begin_utc_s, end_utc_s, interval_s))
    return found


def _analyze_window(samples: Samples, begin_utc_s: float, end_utc_s: float, interval_s: float) -> WindowResult:
    if not (math.isfinite(begin_utc_s) and math.isfinite(end_utc_s)) or end_utc_s <= begin_utc_s:
        raise WindowError(f"power window is empty or reversed: power_begin {begin_utc_s}, power_end {end_utc_s}")
    window_s = end_utc_s - begin_utc_s
    in_window = samples.inside(begin_utc_s, end_utc_s)
    used = in_window & samples.usable()
    n_in, n_used = int(in_window.sum()), int(used.sum())
    covered = coverage(samples, begin_utc_s, end_utc_s, interval_s)
    if n_used == 0:
        return WindowResult(begin_utc_s, end_utc_s, window_s, n_in, n_in, None, None, None, None, covered, None)
    p, u = samples.power_w[used], samples.uncertainty_w[used]
    avg = float(p.mean())
    sampling = float(p.std(ddof=1) / math.sqrt(n_used)) if n_used > 1 else None
    # Unknown per-sample uncertainty for any used sample makes the stated uncertainty unknown too.
    instrument = float(u.mean()) if bool(np.all(np.isfinite(u))) else None
    combined = None if instrument is None else math.hypot(instrument, sampling or 0.0)
    max_rel = float(np.max(u / p)) if instrument is not None else None
    return WindowResult(begin_utc_s, end_utc_s, window_s, n_in, n_in - n_used, avg, combined, instrument, sampling,
                        covered, max_rel)


def mean_power_w(samples: Samples, begin_utc_s: float, end_utc_s: float) -> tuple[float | None, int]:
    """Mean of usable samples strictly inside an interval (the idle phase), and how many were used."""
    used = samples.inside(begin_utc_s, end_utc_s) & samples.usable()
    n = int(used.sum())
    return (float(samples.power_w[used].mean()) if n else None), n
