"""Average power, energy and uncertainty over LoadGen's power window (pure).

The average follows the MLPerf submission checker (``get_power_metric``, power-dev-protocol.md
§6.2): the arithmetic mean of the samples whose time lies strictly inside (power_begin,
power_end) and whose power is > 0, with no time weighting. mlpower's only departure is that a
sample flagged OVERRANGE or MISSING is excluded and *counted* rather than averaged silently.

Energy is the window's integral of power, computed two ways that must agree: a sum of P·dt
(each usable sample's power held since the previous usable sample, the first from the window
start, the last held to the window end, so the dt cover the window exactly) and the trapezoid
rule over the same points, as a cross-check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlpower.schema import SampleFlag

from .errors import WindowError

EXCLUDED_FLAGS = int(SampleFlag.OVERRANGE | SampleFlag.MISSING)

METHOD = (
    "MLPerf submission checker (get_power_metric): arithmetic mean of samples with power > 0 strictly inside "
    "LoadGen's (power_begin, power_end), no time weighting; OVERRANGE/MISSING samples excluded and counted; "
    "energy = sum of P*dt over the window (trapezoid as cross-check); uncertainty = mean per-sample "
    "uncertainty (fully correlated instrument error) combined in quadrature with the standard error of the mean"
)


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


@dataclass(frozen=True)
class Samples:
    """One stream's samples as arrays; ``NaN`` is a missing value."""

    t_utc_s: np.ndarray
    power_w: np.ndarray
    uncertainty_w: np.ndarray
    flags: np.ndarray

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence[Any]]) -> Samples:
        n = len(columns["t_utc_s"])
        uncertainty = columns.get("uncertainty_w")
        flags = columns.get("flags")
        samples = cls(
            t_utc_s=_floats(columns["t_utc_s"]),
            power_w=_floats(columns["power_w"]),
            uncertainty_w=_floats(uncertainty) if uncertainty is not None else np.full(n, math.nan),
            flags=np.array(flags if flags is not None else [0] * n, dtype=np.int64),
        )
        order = np.argsort(samples.t_utc_s, kind="stable")
        return cls(samples.t_utc_s[order], samples.power_w[order], samples.uncertainty_w[order], samples.flags[order])

    def __len__(self) -> int:
        return int(self.t_utc_s.size)

    def usable(self) -> np.ndarray:
        """The mask of samples the average may use (the checker's Watts > 0, and not flagged)."""
        finite = np.isfinite(self.power_w)
        return finite & (np.where(finite, self.power_w, 0.0) > 0) & ((self.flags & EXCLUDED_FLAGS) == 0)


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
    energy_j: float | None
    energy_trapezoid_j: float | None
    max_relative_uncertainty: float | None

    @property
    def used(self) -> int:
        return self.samples_in_window - self.flagged_in_window


def inside(samples: Samples, begin_utc_s: float, end_utc_s: float) -> np.ndarray:
    """Strictly inside the window, as the checker selects ``spl.txt`` lines."""
    return (samples.t_utc_s > begin_utc_s) & (samples.t_utc_s < end_utc_s)


def analyze_window(samples: Samples, begin_utc_s: float, end_utc_s: float) -> WindowResult:
    if not (math.isfinite(begin_utc_s) and math.isfinite(end_utc_s)) or end_utc_s <= begin_utc_s:
        raise WindowError(f"power window is empty or reversed: power_begin {begin_utc_s}, power_end {end_utc_s}")
    window_s = end_utc_s - begin_utc_s
    in_window = inside(samples, begin_utc_s, end_utc_s)
    used = in_window & samples.usable()
    n_in, n_used = int(in_window.sum()), int(used.sum())
    if n_used == 0:
        return WindowResult(begin_utc_s, end_utc_s, window_s, n_in, n_in, None, None, None, None, None, None, None)
    t, p, u = samples.t_utc_s[used], samples.power_w[used], samples.uncertainty_w[used]
    avg = float(p.mean())
    sampling = float(p.std(ddof=1) / math.sqrt(n_used)) if n_used > 1 else None
    # Unknown per-sample uncertainty for any used sample makes the stated uncertainty unknown too.
    instrument = float(u.mean()) if bool(np.all(np.isfinite(u))) else None
    if instrument is None:
        combined = None
    else:
        combined = math.hypot(instrument, sampling or 0.0)
    max_rel = float(np.max(u / p)) if instrument is not None else None
    return WindowResult(
        begin_utc_s, end_utc_s, window_s, n_in, n_in - n_used, avg, combined, instrument, sampling,
        energy_sum_j(t, p, begin_utc_s, end_utc_s), energy_trapezoid_j(t, p, begin_utc_s, end_utc_s), max_rel,
    )


def energy_sum_j(t_utc_s: np.ndarray, power_w: np.ndarray, begin_utc_s: float, end_utc_s: float) -> float:
    """Sum of P·dt: each sample's power since the previous one (the first since the window start),
    the last sample's power held to the window end, so that the dt add up to the window."""
    previous = np.concatenate(([begin_utc_s], t_utc_s[:-1]))
    dt = t_utc_s - previous
    return float(np.sum(power_w * dt) + power_w[-1] * (end_utc_s - t_utc_s[-1]))


def energy_trapezoid_j(t_utc_s: np.ndarray, power_w: np.ndarray, begin_utc_s: float, end_utc_s: float) -> float:
    """The trapezoid rule over the samples, extended flat to both window edges."""
    t = np.concatenate(([begin_utc_s], t_utc_s, [end_utc_s]))
    p = np.concatenate(([power_w[0]], power_w, [power_w[-1]]))
    return float(np.sum((p[1:] + p[:-1]) * 0.5 * np.diff(t)))


def mean_power_w(samples: Samples, begin_utc_s: float, end_utc_s: float) -> tuple[float | None, int]:
    """Mean of usable samples strictly inside an interval (the idle phase), and how many were used."""
    used = inside(samples, begin_utc_s, end_utc_s) & samples.usable()
    n = int(used.sum())
    return (float(samples.power_w[used].mean()) if n else None), n
