"""How a SUT's load divides over its power supplies, and which of them a meter's elements see.

A server with several PSUs shares its load among them: ``shares`` (one per PSU, normalised to a
sum of 1) and an ``imbalance`` that moves ``imbalance / n`` of the total from the last PSU to
the first (n PSUs): ``--split 0.5,0.5 --imbalance 0.05`` gives 52.5 % and 47.5 %. A share of 0 is
a dead (or unplugged) PSU. The total is kept exactly, whatever the imbalance.

One simulated meter measures some of these PSUs, one per element, in element order (``psus``,
1-based): a WT333E on PSUs 1-3, or two WT310Es on PSU 1 and PSU 2 of one SUT, each a simulator of
its own with the same load and split. Pure: numbers in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mlpower.analyzer_sim.errors import LoadSpecError

MAX_PSUS = 16


@dataclass(frozen=True)
class PsuSplit:
    shares: tuple[float, ...] = (1.0,)
    imbalance: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= len(self.shares) <= MAX_PSUS:
            raise LoadSpecError(f"a split needs 1 to {MAX_PSUS} shares, got {len(self.shares)}")
        if any(not math.isfinite(s) or s < 0 for s in self.shares) or sum(self.shares) <= 0:
            raise LoadSpecError("split shares must be finite, >= 0 and not all 0")
        if not math.isfinite(self.imbalance) or self.imbalance < 0:
            raise LoadSpecError("the imbalance must be a finite number >= 0")
        if min(self._shifted()) < -1e-12:
            raise LoadSpecError(f"an imbalance of {self.imbalance:g} leaves the last PSU a negative share")

    @property
    def psu_count(self) -> int:
        return len(self.shares)

    def effective_shares(self) -> tuple[float, ...]:
        """Each PSU's fraction of the total, imbalance applied; they add up to 1."""
        return tuple(max(0.0, s) for s in self._shifted())  # only rounding noise is clipped

    def _shifted(self) -> list[float]:
        total = sum(self.shares)
        shares = [s / total for s in self.shares]
        if len(shares) > 1 and self.imbalance:
            moved = self.imbalance / len(shares)
            shares[0] += moved
            shares[-1] -= moved
        return shares

    def psu_powers_w(self, total_w: float) -> tuple[float, ...]:
        return tuple(total_w * s for s in self.effective_shares())


def equal_split(psus: int) -> PsuSplit:
    return PsuSplit(tuple(1.0 for _ in range(psus)))


def parse_shares(text: str) -> tuple[float, ...]:
    """``0.5,0.5`` -> (0.5, 0.5); LoadSpecError for anything else."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise LoadSpecError("a split is comma-separated numbers, e.g. 0.5,0.5") from None
    return values


def parse_psus(text: str) -> tuple[int, ...]:
    """``3,4`` -> (3, 4): the PSUs (1-based) the meter's elements measure, in element order."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise LoadSpecError("psus are comma-separated PSU numbers from 1, e.g. 3,4") from None
    return values


@dataclass(frozen=True)
class ElementFeed:
    """What feeds each element of one meter: the split, and the PSU behind each element."""

    split: PsuSplit
    psus: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.psus:
            raise LoadSpecError("a meter measures at least one PSU")
        bad = [p for p in self.psus if not 1 <= p <= self.split.psu_count]
        if bad:
            raise LoadSpecError(f"PSU {bad[0]} is not in a split of {self.split.psu_count}")
        if len(set(self.psus)) != len(self.psus):
            raise LoadSpecError("each element measures a different PSU")

    def element_powers_w(self, total_w: float) -> tuple[float, ...]:
        psu_w = self.split.psu_powers_w(total_w)
        return tuple(psu_w[p - 1] for p in self.psus)


def element_feed(elements: int, shares: Sequence[float] | None = None, imbalance: float = 0.0,
                 psus: Sequence[int] | None = None) -> ElementFeed:
    """The feed of a meter with ``elements`` elements: without shares, the load is split equally
    over its own elements; without psus, element k measures PSU k."""
    split = PsuSplit(tuple(shares), imbalance) if shares else PsuSplit(equal_split(elements).shares, imbalance)
    chosen = tuple(psus) if psus else tuple(range(1, elements + 1))
    if len(chosen) != elements:
        raise LoadSpecError(f"a meter with {elements} element(s) measures {elements} PSU(s), got {list(chosen)}")
    return ElementFeed(split, chosen)
