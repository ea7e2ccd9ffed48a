"""What a WT310E reads for a given true load: a small pure function of (true power, time, settings, RNG).

Numbers come from docs/wt310e.md section 2: ranges per crest factor, the 45-66 Hz accuracy
±(0.1 % of reading + 0.05 % of range) plus the power-factor term, overrange above 140 % of range,
the small-signal floor (0.5 % of range) that reads as zero, clipping above 333 % of range, 5-digit
resolution relative to range, and the auto-range rules (up above 130 % RMS or 300 % peak, down at
<= 30 % when the next lower range would hold the signal).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

VOLTAGE_RANGES_V: dict[str, tuple[float, ...]] = {
    "3": (15.0, 30.0, 60.0, 150.0, 300.0, 600.0),
    "6": (7.5, 15.0, 30.0, 75.0, 150.0, 300.0),
    "6A": (7.5, 15.0, 30.0, 75.0, 150.0, 300.0),
}
CURRENT_RANGES_A: dict[str, tuple[float, ...]] = {
    "3": (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0),
    "6": (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    "6A": (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
}
LOW_CURRENT_RANGE_LIMIT_A = 0.2  # the mA ranges that the low-range protection guards (doc 2.4)

READING_ACCURACY = 0.001  # 0.1 % of reading
RANGE_ACCURACY = 0.0005  # 0.05 % of range
PF_INFLUENCE = 0.001  # 0.1 % of S at lambda = 0, scaled by tan(phi)


@dataclass(frozen=True)
class CrestFactorRules:
    overrange: float  # RMS above this fraction of range reads as overrange
    range_up: float  # auto range goes up above this RMS fraction
    peak_range_up: float  # ... or above this peak fraction
    clip: float  # instantaneous samples above this fraction of range are clipped
    floor: float  # RMS at or below this fraction reads as zero
    range_error_factor: float  # CF6/6A doubles the range error


RULES: dict[str, CrestFactorRules] = {
    "3": CrestFactorRules(1.40, 1.30, 3.00, 3.33, 0.005, 1.0),
    "6": CrestFactorRules(1.40, 1.30, 6.00, 6.66, 0.01, 2.0),
    "6A": CrestFactorRules(2.80, 2.60, 6.00, 6.66, 0.01, 2.0),
}


@dataclass(frozen=True)
class Mains:
    """The supply and the load's electrical character; the true power comes from the load model."""

    voltage_v: float = 230.0
    voltage_noise_v: float = 0.4
    freq_hz: float = 50.0
    freq_noise_hz: float = 0.01
    power_factor: float = 0.95
    current_crest_factor: float = math.sqrt(2.0)  # a PFC supply draws a near-sine current


@dataclass(frozen=True)
class Ranges:
    voltage_range_v: float
    current_range_a: float
    crest_factor: str = "3"

    @property
    def power_range_w(self) -> float:
        return self.voltage_range_v * self.current_range_a

    @property
    def rules(self) -> CrestFactorRules:
        return RULES[self.crest_factor]


@dataclass(frozen=True)
class Signal:
    """The true RMS quantities at the meter's inputs during one update."""

    voltage_v: float
    current_a: float
    power_w: float
    power_factor: float
    freq_hz: float
    current_crest_factor: float

    @property
    def voltage_peak_v(self) -> float:
        return self.voltage_v * math.sqrt(2.0)

    @property
    def current_peak_a(self) -> float:
        return self.current_a * self.current_crest_factor


@dataclass(frozen=True)
class Reading:
    """One update of the meter. NaN is 'no data / error', +inf is overrange, as the meter reports them."""

    voltage_v: float
    current_a: float
    power_w: float
    apparent_va: float
    reactive_var: float
    power_factor: float
    phase_deg: float
    freq_u_hz: float
    freq_i_hz: float
    voltage_peak_v: float
    current_peak_a: float
    voltage_range_v: float
    current_range_a: float
    uncertainty_w: float
    voltage_overrange: bool = False
    current_overrange: bool = False
    voltage_peak_over: bool = False
    current_peak_over: bool = False
    below_floor: bool = False
    gap: bool = False  # taken during a range switch: no measurement

    @property
    def power_range_w(self) -> float:
        return self.voltage_range_v * self.current_range_a

    @property
    def overrange(self) -> bool:
        return self.voltage_overrange or self.current_overrange


@dataclass
class SignalErrors:
    """Per-quantity relative draws in [-1, 1]; kept apart so tests can pin them."""

    voltage: float = 0.0
    current: float = 0.0
    power: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def resolution(range_value: float) -> float:
    """5-digit display relative to range: 300 V -> 0.01 V, 0.5 A -> 10 uA, 150 W -> 0.01 W (doc 1.3)."""
    if range_value <= 0:
        return 1e-6
    return 10.0 ** (math.floor(math.log10(range_value * 1.4)) - 4)


def quantise(value: float, step: float) -> float:
    if not math.isfinite(value):
        return value
    return round(value / step) * step


def power_uncertainty_w(power_w: float, apparent_va: float, power_range_w: float, crest_factor: str = "3") -> float:
    """Datasheet 12-month uncertainty at 45-66 Hz, with the power-factor term (doc 2.2)."""
    range_term = RANGE_ACCURACY * RULES[crest_factor].range_error_factor * power_range_w
    pf = abs(power_w) / apparent_va if apparent_va > 0 else 1.0
    pf = min(pf, 1.0)
    tan_phi = math.sqrt(max(0.0, 1.0 - pf * pf)) / pf if pf > 0 else 0.0
    return READING_ACCURACY * abs(power_w) + range_term + tan_phi * PF_INFLUENCE * apparent_va


def true_signal(true_power_w: float, mains: Mains, rng: random.Random) -> Signal:
    """Mains voltage and frequency with noise; the current follows from power and power factor."""
    voltage_v = mains.voltage_v + rng.gauss(0.0, mains.voltage_noise_v)
    freq_hz = mains.freq_hz + rng.gauss(0.0, mains.freq_noise_hz)
    pf = mains.power_factor
    current_a = abs(true_power_w) / (voltage_v * pf) if voltage_v > 0 and pf > 0 else 0.0
    return Signal(voltage_v, current_a, true_power_w, pf, freq_hz, mains.current_crest_factor)


def _bounded_error(bound: float, step: float, rng: random.Random) -> float:
    # The spec is a ~3-sigma limit; a drawn error plus half a quantisation step must stay inside it,
    # so that every single reading lies within its own stated uncertainty.
    limit = max(0.0, bound - step / 2.0)
    return max(-limit, min(limit, rng.gauss(0.0, bound / 3.0)))


def measure(signal: Signal, ranges: Ranges, rng: random.Random) -> Reading:
    """Turn the true signal into what the meter reports on the given ranges."""
    rules = ranges.rules
    u_range, i_range, p_range = ranges.voltage_range_v, ranges.current_range_a, ranges.power_range_w
    u_step, i_step, p_step = resolution(u_range), resolution(i_range), resolution(p_range)

    # Instantaneous samples above the clip level are lost, so a peaky current is under-reported
    # (doc 3.2 fault 2); a first-order model scales the RMS by how much of the peak survives.
    clip_a = rules.clip * i_range
    clip_scale = min(1.0, clip_a / signal.current_peak_a) if signal.current_peak_a > 0 else 1.0
    u_true = signal.voltage_v
    i_true = signal.current_a * clip_scale
    p_true = signal.power_w * clip_scale

    u_bound = READING_ACCURACY * u_true + RANGE_ACCURACY * rules.range_error_factor * u_range
    i_bound = READING_ACCURACY * i_true + RANGE_ACCURACY * rules.range_error_factor * i_range
    s_true = u_true * i_true
    p_bound = power_uncertainty_w(p_true, s_true, p_range, ranges.crest_factor)

    u = quantise(u_true + _bounded_error(u_bound, u_step, rng), u_step)
    i = quantise(i_true + _bounded_error(i_bound, i_step, rng), i_step)
    p = quantise(p_true + _bounded_error(p_bound, p_step, rng), p_step)
    s = quantise(u * i, p_step)
    q = quantise(math.sqrt(max(0.0, s * s - p * p)), p_step)
    pf = max(-1.0, min(1.0, p / s)) if s > 0 else math.nan
    pf = round(pf, 4) if math.isfinite(pf) else pf
    phase = round(math.degrees(math.acos(abs(pf))), 2) if math.isfinite(pf) else math.nan
    freq = round(signal.freq_hz, 3)

    voltage_over = u_true > rules.overrange * u_range
    current_over = signal.current_a > rules.overrange * i_range
    voltage_peak_over = signal.voltage_peak_v > rules.clip * u_range
    current_peak_over = signal.current_peak_a > clip_a
    below_floor = i_true <= rules.floor * i_range or u_true <= rules.floor * u_range

    u_peak = quantise(min(signal.voltage_peak_v, rules.clip * u_range), u_step)
    i_peak = quantise(min(signal.current_peak_a, clip_a), i_step)
    if below_floor:
        # The meter reads I, S, Q (and so P) as zero and PF/phase as an error (doc 1.8, 2.4).
        if i_true <= rules.floor * i_range:
            i, i_peak = 0.0, 0.0
        if u_true <= rules.floor * u_range:
            u = 0.0
        p, s, q, pf, phase = 0.0, 0.0, 0.0, math.nan, math.nan
    if voltage_over:
        u = math.inf
    if current_over:
        i = math.inf
    if voltage_over or current_over:
        p, s, q, pf, phase = math.inf, math.inf, math.inf, math.nan, math.nan

    return Reading(
        voltage_v=u, current_a=i, power_w=p, apparent_va=s, reactive_var=q, power_factor=pf,
        phase_deg=phase, freq_u_hz=freq, freq_i_hz=freq if i > 0 else math.nan,
        voltage_peak_v=u_peak, current_peak_a=i_peak,
        voltage_range_v=u_range, current_range_a=i_range,
        uncertainty_w=p_bound if not (below_floor or voltage_over or current_over) else math.nan,
        voltage_overrange=voltage_over, current_overrange=current_over,
        voltage_peak_over=voltage_peak_over, current_peak_over=current_peak_over, below_floor=below_floor,
    )


def reading(true_power_w: float, ranges: Ranges, mains: Mains, rng: random.Random) -> Reading:
    """The whole physics in one call: true power in, one meter update out."""
    return measure(true_signal(true_power_w, mains, rng), ranges, rng)


def gap_reading(signal: Signal, ranges: Ranges, voltage_switching: bool, current_switching: bool) -> Reading:
    """An update lost to a range switch: the switching channel and everything derived from it read NaN."""
    nan = math.nan
    u = nan if voltage_switching else quantise(signal.voltage_v, resolution(ranges.voltage_range_v))
    i = nan if current_switching else quantise(signal.current_a, resolution(ranges.current_range_a))
    return Reading(
        voltage_v=u, current_a=i, power_w=nan, apparent_va=nan, reactive_var=nan, power_factor=nan,
        phase_deg=nan, freq_u_hz=round(signal.freq_hz, 3), freq_i_hz=nan, voltage_peak_v=nan, current_peak_a=nan,
        voltage_range_v=ranges.voltage_range_v, current_range_a=ranges.current_range_a, uncertainty_w=nan, gap=True,
    )


def auto_range(rms: float, peak: float, current: float, choices: tuple[float, ...], crest_factor: str) -> float:
    """The range auto ranging moves to from ``current`` for a signal of ``rms``/``peak`` (doc 2.5).

    Up one range above 130 % RMS; a peak overrange jumps straight to the range that holds the peak
    (the peak-over jump); down one range when the RMS is <= 30 % of this range and the next lower range
    would hold it below 125 % RMS and 300 % peak.
    """
    rules = RULES[crest_factor]
    index = choices.index(current) if current in choices else len(choices) - 1
    if peak > rules.peak_range_up * current:
        for candidate in choices[index:]:
            if peak <= rules.peak_range_up * candidate and rms <= rules.range_up * candidate:
                return candidate
        return choices[-1]
    if rms > rules.range_up * current:
        return choices[min(index + 1, len(choices) - 1)]
    if index > 0:
        lower = choices[index - 1]
        if rms <= 0.30 * current and rms <= 1.25 * lower and peak <= rules.peak_range_up * lower:
            return lower
    return current


def smallest_range_at_least(value: float, choices: tuple[float, ...]) -> float | None:
    """The hardware range PTD picks for a requested value: the smallest one >= it."""
    for candidate in choices:
        if candidate >= value * (1 - 1e-9):
            return candidate
    return None


def sigma_reading(readings: list[Reading]) -> Reading:
    """The Σ (sum) function of a multi-element meter over its elements (docs/wt310e.md §2.8):
    P, S and Q add up, U and I are the elements' means, λ = PΣ / SΣ; the frequencies are element
    1's; the uncertainty bound is the sum of the elements' bounds (their errors may be correlated).
    An element without data (NaN) or overrange (inf) carries through to the sum."""
    n = len(readings)
    p = sum(r.power_w for r in readings)
    s = sum(r.apparent_va for r in readings)
    q = sum(r.reactive_var for r in readings)
    pf = max(-1.0, min(1.0, p / s)) if math.isfinite(p) and math.isfinite(s) and s > 0 else math.nan
    pf = round(pf, 4) if math.isfinite(pf) else pf
    first = readings[0]
    return Reading(
        voltage_v=sum(r.voltage_v for r in readings) / n, current_a=sum(r.current_a for r in readings) / n,
        power_w=p, apparent_va=s, reactive_var=q, power_factor=pf,
        phase_deg=round(math.degrees(math.acos(abs(pf))), 2) if math.isfinite(pf) else math.nan,
        freq_u_hz=first.freq_u_hz, freq_i_hz=first.freq_i_hz,
        voltage_peak_v=max(r.voltage_peak_v for r in readings), current_peak_a=max(r.current_peak_a for r in readings),
        voltage_range_v=max(r.voltage_range_v for r in readings),
        current_range_a=max(r.current_range_a for r in readings),
        uncertainty_w=sum(r.uncertainty_w for r in readings),
        voltage_overrange=any(r.voltage_overrange for r in readings),
        current_overrange=any(r.current_overrange for r in readings),
        voltage_peak_over=any(r.voltage_peak_over for r in readings),
        current_peak_over=any(r.current_peak_over for r in readings),
        below_floor=all(r.below_floor for r in readings), gap=any(r.gap for r in readings),
    )
