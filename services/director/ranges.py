"""WT310E-family ranges, and the testing ranges an MLPerf ranging run implies. Pure.

Rule (mlperf-power-rules.md §2.2, power-dev-protocol.md §3.6, wt310e.md §2.7): after the ranging
run (auto ranges), the testing run uses fixed ranges with

* voltage range = the largest voltage seen in ranging;
* current range = 1.1 x the largest current seen in ranging;

each rounded up to the smallest hardware range that is at least that value, which is what
PTDaemon does with the numbers power-dev sends (``SR,V,209.67`` -> 300 V, ``SR,A,0.9125`` -> 1 A).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

from mlpower.director.errors import RangeError

CURRENT_MARGIN = 1.1
"""Testing current range = CURRENT_MARGIN x the largest ranging current (since June 2023)."""

# Crest factor 3 / 6 lists (wt310e.md §1.6). "6A" uses the CF6 lists.
VOLTAGE_RANGES_V: dict[str, tuple[float, ...]] = {
    "3": (15.0, 30.0, 60.0, 150.0, 300.0, 600.0),
    "6": (7.5, 15.0, 30.0, 75.0, 150.0, 300.0),
}
CURRENT_RANGES_A: dict[tuple[str, str], tuple[float, ...]] = {
    ("WT310E", "3"): (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0),
    ("WT310E", "6"): (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    ("WT310EH", "3"): (1.0, 2.0, 5.0, 10.0, 20.0, 40.0),
    ("WT310EH", "6"): (0.5, 1.0, 2.5, 5.0, 10.0, 20.0),
    ("WT33XE", "3"): (0.5, 1.0, 2.0, 5.0, 10.0, 20.0),
    ("WT33XE", "6"): (0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
}

OVERRANGE_RATIO = {"3": 1.4, "6": 1.4, "6A": 2.8}
"""RMS above this multiple of the range reads as overrange (wt310e.md §2.4)."""

_REL_TOL = 1e-9


def _cf_key(crest_factor: str | int | float) -> str:
    text = str(crest_factor).upper().removesuffix(".0")
    if text in ("3",):
        return "3"
    if text in ("6", "6A"):
        return "6"
    raise RangeError(f"unknown crest factor {crest_factor!r}; expected 3, 6 or 6A")


def _model_key(model: str) -> str:
    m = model.upper().replace("YOKOGAWA", "").strip(" ,")
    if m.startswith("WT310EH") or m.startswith("WT310HC"):
        return "WT310EH"
    if m.startswith("WT332") or m.startswith("WT333") or m.startswith("WT330"):
        return "WT33XE"
    return "WT310E"  # WT310, WT310E and anything unknown: the 1-element 20 A meter


def voltage_ranges(crest_factor: str | int = 3) -> tuple[float, ...]:
    return VOLTAGE_RANGES_V[_cf_key(crest_factor)]


def current_ranges(model: str = "WT310E", crest_factor: str | int = 3) -> tuple[float, ...]:
    return CURRENT_RANGES_A[(_model_key(model), _cf_key(crest_factor))]


def round_up(value: float, ranges: Iterable[float], what: str = "value") -> float:
    """The smallest range >= ``value``; a value above the largest range raises ``RangeError``."""
    if value is None or not math.isfinite(value) or value <= 0:
        raise RangeError(f"cannot choose a {what} range for {value!r}: need a positive finite number")
    options = sorted(ranges)
    for r in options:
        if value <= r * (1 + _REL_TOL):
            return r
    raise RangeError(f"{what} {value:g} is above the largest range {options[-1]:g}")


def valid_voltage_range(value: float, crest_factor: str | int = 3) -> float:
    """Round a requested voltage range up to a hardware range."""
    return round_up(value, voltage_ranges(crest_factor), "voltage")


def valid_current_range(value: float, model: str = "WT310E", crest_factor: str | int = 3) -> float:
    """Round a requested current range up to a hardware range."""
    return round_up(value, current_ranges(model, crest_factor), "current")


def is_exact_range(value: float, ranges: Iterable[float]) -> bool:
    return any(math.isclose(value, r, rel_tol=_REL_TOL) for r in ranges)


class _HasVI(Protocol):
    @property
    def voltage_v(self) -> float | None: ...

    @property
    def current_a(self) -> float | None: ...


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def ranging_maxima(readings: Iterable[_HasVI]) -> tuple[float, float]:
    """Largest |voltage| and |current| among the readings that carry a value.

    Readings without a value (missing, overrange: ``None``) are skipped. Magnitudes are used so
    that reversed current wiring (negative readings) still sizes the range. No usable voltage or
    current at all raises ``RangeError``.
    """
    max_v = max_a = -math.inf
    n_v = n_a = 0
    for r in readings:
        if _finite(r.voltage_v):
            max_v = max(max_v, abs(r.voltage_v))  # type: ignore[arg-type]
            n_v += 1
        if _finite(r.current_a):
            max_a = max(max_a, abs(r.current_a))  # type: ignore[arg-type]
            n_a += 1
    if n_v == 0 or n_a == 0:
        raise RangeError(
            f"no ranging samples with a value ({n_v} with voltage, {n_a} with current): testing ranges undefined"
        )
    return max_v, max_a


def testing_ranges(
    readings: Iterable[_HasVI],
    *,
    model: str = "WT310E",
    crest_factor: str | int = 3,
    current_margin: float = CURRENT_MARGIN,
) -> tuple[float, float]:
    """(voltage_range_v, current_range_a) for the testing run, from the ranging readings.

    voltage = max voltage seen; current = ``current_margin`` (1.1) x max current seen; both
    rounded up to a valid range of the model at the crest factor. A maximum that is zero (no
    signal) gets the smallest range; one above the largest range raises ``RangeError``.
    """
    max_v, max_a = ranging_maxima(readings)
    v_options = voltage_ranges(crest_factor)
    a_options = current_ranges(model, crest_factor)
    v = valid_voltage_range(max_v, crest_factor) if max_v > 0 else v_options[0]
    a = valid_current_range(max_a * current_margin, model, crest_factor) if max_a > 0 else a_options[0]
    return v, a


def power_range_w(voltage_range_v: float, current_range_a: float) -> float:
    """Power range of a 1P2W element = voltage range x current range (wt310e.md §2.1)."""
    return voltage_range_v * current_range_a


def is_overrange(value: float | None, range_value: float | None, crest_factor: str | int = 3) -> bool:
    """True when an RMS value exceeds the overrange limit of its range (140 % at CF3/CF6)."""
    if not _finite(value) or not _finite(range_value) or not range_value:
        return False
    ratio = OVERRANGE_RATIO.get(str(crest_factor).upper(), 1.4)
    return abs(value) > ratio * range_value  # type: ignore[arg-type]
