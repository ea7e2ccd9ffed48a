"""Samples, defined once: the column names of a sample, what makes a sample *usable*, and one
stream's samples as arrays.

A usable sample is one whose power may enter an average or an energy: a finite power above
0 W (the MLPerf submission checker's ``Watts > 0``; PTDaemon writes -1 for "not available") that
carries neither ``OVERRANGE`` nor ``MISSING``. Every other sample is kept, shown and counted as
flagged, never averaged silently.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .schema import SAMPLE_COLUMNS, SampleFlag, SamplePage

SAMPLE_COLUMN_NAMES: tuple[str, ...] = tuple(column.name for column in SAMPLE_COLUMNS)
"""Every sample's columns, in order: ``t_utc_s``, the measured values, ``flags``."""

VALUE_COLUMNS: tuple[str, ...] = tuple(c.name for c in SAMPLE_COLUMNS if c.name not in ("t_utc_s", "flags"))
"""The measured values of a sample (``None`` when the analyzer gave none)."""

EXCLUDED_FLAGS = int(SampleFlag.OVERRANGE | SampleFlag.MISSING)
"""A sample carrying any of these bits is not usable, whatever its power reads."""


def usable_mask(power_w: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """The usable samples of arrays of power (NaN = missing) and flags: the one definition."""
    power = np.asarray(power_w, dtype=np.float64)
    finite = np.isfinite(power)
    return finite & (np.where(finite, power, 0.0) > 0) & ((np.asarray(flags, dtype=np.int64) & EXCLUDED_FLAGS) == 0)


def is_usable(power_w: float | None, flags: int) -> bool:
    """One sample (``None`` power = missing): the same definition as ``usable_mask``."""
    value = math.nan if power_w is None else float(power_w)
    return bool(usable_mask(np.array([value]), np.array([int(flags)]))[0])


def _floats(values: Sequence[Any]) -> np.ndarray:
    # numpy reads None as NaN itself: no Python loop per sample
    return np.array(values, dtype=np.float64)


@dataclass(frozen=True)
class Samples:
    """One stream's samples as arrays, sorted by time; ``NaN`` is a missing value."""

    t_utc_s: np.ndarray
    power_w: np.ndarray
    uncertainty_w: np.ndarray
    flags: np.ndarray

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence[Any]]) -> Samples:
        n = len(columns["t_utc_s"])
        uncertainty = columns.get("uncertainty_w")
        flags = columns.get("flags")
        return cls(
            t_utc_s=_floats(columns["t_utc_s"]),
            power_w=_floats(columns["power_w"]),
            uncertainty_w=_floats(uncertainty) if uncertainty is not None else np.full(n, math.nan),
            flags=np.array(flags if flags is not None else [0] * n, dtype=np.int64),
        ).sorted()

    @classmethod
    def of_page(cls, page: SamplePage) -> Samples:
        """One page's samples, in the page's order (``concat`` sorts)."""
        return cls(_floats(page.t_utc_s), _floats(page.power_w), _floats(page.uncertainty_w),
                   np.array(page.flags, dtype=np.int64))

    @classmethod
    def concat(cls, parts: Iterable[Samples]) -> Samples:
        parts = list(parts)
        if not parts:
            return cls(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
        if len(parts) == 1:
            return parts[0].sorted()
        return cls(*(np.concatenate([getattr(p, name) for p in parts])
                     for name in ("t_utc_s", "power_w", "uncertainty_w", "flags"))).sorted()

    @classmethod
    def from_pages(cls, pages: Iterable[SamplePage]) -> Samples:
        """Many pages at once: each column joined at C speed, then one array per column (sorted)."""
        pages = list(pages)
        if len(pages) == 1:
            return cls.of_page(pages[0]).sorted()
        t: list[float] = []
        power: list[float | None] = []
        uncertainty: list[float | None] = []
        flags: list[int] = []
        for page in pages:  # one pass, four extends a page (a third cheaper than a chain per column)
            t += page.t_utc_s
            power += page.power_w
            uncertainty += page.uncertainty_w
            flags += page.flags
        return cls(_floats(t), _floats(power), _floats(uncertainty), np.array(flags, dtype=np.int64)).sorted()

    def sorted(self) -> Samples:
        t = self.t_utc_s
        if t.size < 2 or bool(np.all(t[1:] >= t[:-1])):
            return self  # pages arrive in time order: the usual case costs one comparison, not a sort
        order = np.argsort(t, kind="stable")
        return Samples(self.t_utc_s[order], self.power_w[order], self.uncertainty_w[order], self.flags[order])

    def __len__(self) -> int:
        return int(self.t_utc_s.size)

    @functools.cached_property
    def memo(self) -> dict[tuple[Any, ...], Any]:
        """Results computed from these (immutable) samples, kept with them: several rules and the
        summary of one run ask for the same coverage of the same window."""
        return {}

    def memoized(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """``compute()`` once per key for these samples (``RunView`` keeps its derived facts alike)."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    @functools.cached_property
    def _usable(self) -> np.ndarray:
        return usable_mask(self.power_w, self.flags)

    def usable(self) -> np.ndarray:
        """The mask of usable samples (see the module's definition); computed once per ``Samples``."""
        return self._usable

    def inside(self, begin_utc_s: float, end_utc_s: float) -> np.ndarray:
        """Strictly inside an interval, as the MLPerf checker selects ``spl.txt`` lines. Computed once
        per interval (the rules and the summary of a run all ask for its window's) and read-only."""
        found: np.ndarray = self.memoized(("inside", begin_utc_s, end_utc_s),
                                          lambda: _read_only((self.t_utc_s > begin_utc_s) & (self.t_utc_s < end_utc_s)))
        return found


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False  # shared by every caller of the memo: none may change it
    return array
