"""Per-sample uncertainty of active power from the WT310E datasheet (wt310e.md §2.2). Pure.

For a sample with power P, apparent power S = U x I, power factor lambda = cos phi, on ranges
U_rng and I_rng (power range PR = U_rng x I_rng), the 12-month accuracy at 45-66 Hz is

    u(P) = P x [ a_rdg + a_rng x PR / S + tan(phi) x a_pf ]

with a_rdg = 0.1 %, a_rng = 0.05 % (doubled at crest factor 6 or 6A) and a_pf = 0.1 % (the error
at lambda = 0, as a fraction of S). Written without the singularity at lambda = 0 (P = lambda S,
P tan phi = S sin phi):

    u(P) = a_rdg |P| + a_rng PR |lambda| + a_pf S sqrt(1 - lambda^2)

Worked example (PD-#273): 247.9 V, 0.199 A, 23.9 W, lambda 0.484 on 300 V / 0.5 A gives 0.43 %
of reading. PTDaemon's own (proprietary) figure is about 1.5x larger; ``margin`` scales the
result for those who want PTD-like numbers. The result is ``None`` when it cannot be evaluated
(no ranges, as with auto range in PTD; no power; S = 0), never a guessed number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LIMIT_RELATIVE = 0.01
"""MLPerf: at most 1.00 % per sample in the testing window."""


@dataclass(frozen=True)
class Accuracy:
    reading: float  # fraction of the reading
    range: float  # fraction of the power range
    pf_at_zero: float  # fraction of S, the power-factor influence at lambda = 0


# Active-power accuracy by frequency band (wt310e.md §2.2). Above 1 kHz the manual adds
# frequency-dependent reading terms; those bands are not offered here.
DC = Accuracy(0.001, 0.002, 0.0)  # no power-factor term at DC
LOW = Accuracy(0.003, 0.002, 0.001)  # 0.1 Hz <= f < 45 Hz
LINE = Accuracy(0.001, 0.0005, 0.001)  # 45 Hz <= f <= 66 Hz: the MLPerf case
HIGH = Accuracy(0.002, 0.002, 0.001)  # 66 Hz < f <= 1 kHz


def accuracy_for(frequency_hz: float) -> Accuracy:
    """The datasheet accuracy of the band holding ``frequency_hz`` (0 = DC)."""
    f = frequency_hz
    if f == 0:
        return DC
    if 0.1 <= f < 45.0:
        return LOW
    if 45.0 <= f <= 66.0:
        return LINE
    if 66.0 < f <= 1000.0:
        return HIGH
    raise ValueError(f"no WT310E power accuracy offered for {f} Hz (0 = DC, or 0.1 Hz .. 1 kHz)")


def _ok(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def sample_uncertainty_w(
    power_w: float | None,
    voltage_v: float | None,
    current_a: float | None,
    power_factor: float | None,
    voltage_range_v: float | None,
    current_range_a: float | None,
    *,
    crest_factor: str | int = 3,
    frequency_hz: float = 50.0,
    margin: float = 1.0,
) -> float | None:
    """Absolute uncertainty of ``power_w`` in watts, or ``None`` when it cannot be evaluated.

    ``power_factor`` may be ``None``: it is then taken as P / (U I). ``voltage_v``/``current_a``
    may be ``None`` if the power factor is known: S is then |P| / |lambda|.
    """
    if not (_ok(power_w) and _ok(voltage_range_v) and _ok(current_range_a)):
        return None
    assert power_w is not None and voltage_range_v is not None and current_range_a is not None
    if voltage_range_v <= 0 or current_range_a <= 0 or margin <= 0:
        return None
    acc = accuracy_for(frequency_hz)
    range_term = acc.range * (2.0 if str(crest_factor).upper() in ("6", "6A") else 1.0)
    p = abs(power_w)
    s: float | None = abs(voltage_v * current_a) if _ok(voltage_v) and _ok(current_a) else None  # type: ignore[operator]
    lam: float | None = abs(power_factor) if _ok(power_factor) else None  # type: ignore[arg-type]
    if lam is None:
        if s is None or s <= 0:
            return None
        lam = p / s
    if s is None:
        if lam <= 0:
            return None
        s = p / lam
    if s <= 0:
        return 0.0 if p == 0 else None
    lam = min(lam, 1.0)
    pr = voltage_range_v * current_range_a
    u = acc.reading * p + range_term * pr * lam + acc.pf_at_zero * s * math.sqrt(1.0 - lam * lam)
    return u * margin


def relative_uncertainty(uncertainty_w: float | None, power_w: float | None) -> float | None:
    """u / |P| as a fraction (0.0043 = 0.43 %); ``None`` when either is missing or P = 0."""
    if not (_ok(uncertainty_w) and _ok(power_w)) or power_w == 0:
        return None
    return uncertainty_w / abs(power_w)  # type: ignore[operator, arg-type]


def within_limit(uncertainty_w: float | None, power_w: float | None, limit: float = LIMIT_RELATIVE) -> bool | None:
    """Whether the sample meets the MLPerf 1 % limit; ``None`` when unknown."""
    rel = relative_uncertainty(uncertainty_w, power_w)
    return None if rel is None else rel <= limit
