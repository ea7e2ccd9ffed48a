"""Rows as metrics, model-name normalisation, and the two ways of pairing performance with power.

* ``paper_join``: upstream's inner ``pandas.merge`` on key columns. Keys that occur more than once
  on both sides become a cross product (one system's throughput with another's power), and
  missing keys match each other, exactly as pandas does (paper-figures.md 2.1).
* ``pair_in_file_order``: a performance row and its power row are adjacent in the file (either
  order), so corrected mode pairs each metric row with its neighbour of the other kind and the
  same key, drops exact duplicate pairs, and records why any row was left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl
from mlpower.figures.loader import FILE_COLUMN, LINE_COLUMN, row_ref

# Unit spellings (data README, paper-figures.md 2.3): vocabulary of the tables, not plotted values.
PERF_UNITS = frozenset({"queries/s", "samples/s", "Samples/s", "Queries/s"})
TOKENS_UNIT = "Tokens/s"
POWER_UNITS = frozenset({"System Power (W)", "Power (W)", "System Power", "Watts"})
TINY_LATENCY = "Latency in ms"
TINY_ENERGY = "Energy in uJ"
TRAINING_ENERGY = "kJ"
TRAINING_TIME = "Latency (In minutes)"

# Datacenter v3.0 names that cover both accuracy targets; in the data the first pair of a
# submission is the 99 % run and the second the 99.9 % run (data README, "Inconsistent names").
TWO_TARGET_BARE_NAMES = frozenset({"bert", "dlrm", "3d-unet"})


@dataclass(frozen=True)
class Metric:
    """One row of a results table: one metric of one run, with where it came from."""

    public_id: str | None
    model_raw: str | None
    model: str | None
    scenario: str | None
    version: str | None
    date: str | None
    unit: str | None
    text: str | None
    value: float | None
    ref: str
    line: int
    organization: str | None = None
    system: str | None = None
    accelerator: str | None = None
    total_accelerators: str | None = None
    round: str | None = None  # the version as written, where a figure compares a coarser one (fig 10)


@dataclass(frozen=True)
class Pair:
    perf: Metric
    power: Metric

    @property
    def rows(self) -> tuple[str, str]:
        return (self.perf.ref, self.power.ref)

    @property
    def model(self) -> str | None:
        return self.perf.model


@dataclass
class Skipped:
    """Rows a computation left out, each with its reason (shown in the figure's JSON and the audit)."""

    reasons: list[dict[str, str]] = field(default_factory=list)

    def add(self, ref: str, reason: str) -> None:
        self.reasons.append({"row": ref, "reason": reason})


def metrics(
    frame: pl.DataFrame,
    *,
    value_column: str = "Result",
    unit_column: str = "Units",
    model: Callable[[str | None], str | None] = lambda name: name,
    value: Callable[[str | None, str], float | None] = lambda text, where: None,
) -> list[Metric]:
    """The rows of ``frame`` as metrics, in file order; ``value`` is the figure's parsing rule."""
    out = []
    for row in _rows_in_file_order(frame):
        ref = row_ref(row[FILE_COLUMN], row[LINE_COLUMN])
        text = row.get(value_column)
        out.append(
            Metric(
                public_id=row.get("Public ID"),
                model_raw=row.get("Model MLC"),
                model=model(row.get("Model MLC")),
                scenario=row.get("Scenario"),
                version=row.get("version"),
                date=row.get("date"),
                unit=row.get(unit_column),
                text=text,
                value=value(text, ref),
                ref=ref,
                line=row[LINE_COLUMN],
                organization=row.get("Organization"),
                system=row.get("SystemName") or row.get("System Name"),
                accelerator=row.get("accelerator_model_name"),
                total_accelerators=row.get("Total Accelerators"),
            )
        )
    return out


_ROWS: dict[int, tuple[pl.DataFrame, list[dict[str, Any]]]] = {}
_ROWS_KEPT = 8  # a build reads five tables; a few more for tests that load their own copies


def _rows_in_file_order(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as dicts, sorted by line, made once per frame: each figure reads the same
    tables several times (fig 9 once per submission), and turning rows into dicts dominated."""
    cached = _ROWS.get(id(frame))
    if cached is not None and cached[0] is frame:
        return cached[1]
    rows = list(frame.sort(LINE_COLUMN).iter_rows(named=True))
    if len(_ROWS) >= _ROWS_KEPT:
        _ROWS.pop(next(iter(_ROWS)))
    _ROWS[id(frame)] = (frame, rows)  # the frame is kept, so its id cannot be reused while cached
    return rows


# --------------------------------------------------------------------------- model names


def paper_model_name(mapping: dict[str, str]) -> Callable[[str | None], str | None]:
    """``str.lower()`` then ``Series.replace(mapping)``: whole cells are replaced, never substrings."""

    def rename(name: str | None) -> str | None:
        if name is None:
            return None
        lowered = name.lower()
        return mapping.get(lowered, lowered)

    return rename


_TRAILING_99 = re.compile(r"-99$")


def corrected_model_name(name: str | None) -> str | None:
    """One spelling per benchmark: lower case, ``rnnt`` -> ``rnn-t``, ``-99`` -> ``-99.0``."""
    if name is None:
        return None
    lowered = name.lower()
    lowered = {"rnnt": "rnn-t", "bert99.9": "bert-99.9"}.get(lowered, lowered)
    return _TRAILING_99.sub("-99.0", lowered)


# --------------------------------------------------------------------------- pairing


def paper_join(perf: Sequence[Metric], power: Sequence[Metric], keys: Sequence[str]) -> list[Pair]:
    """Inner merge like pandas: left order, then right order within a key; ``None`` keys match."""
    by_key: dict[tuple[Any, ...], list[Metric]] = {}
    for metric in power:
        by_key.setdefault(tuple(getattr(metric, k) for k in keys), []).append(metric)
    return [Pair(p, q) for p in perf for q in by_key.get(tuple(getattr(p, k) for k in keys), [])]


PAIR_KEY = ("public_id", "model_raw", "scenario", "version", "date")


def pair_in_file_order(
    rows: Iterable[Metric],
    is_perf: Callable[[Metric], bool],
    is_power: Callable[[Metric], bool],
    skipped: Skipped,
    key: Sequence[str] = PAIR_KEY,
) -> list[Pair]:
    """Pair each metric row with the adjacent row of the other kind that has the same key.

    Rows of neither kind (other scenarios' latency rows, metadata rows) are passed over. A row
    whose neighbour is not its partner is left out with the reason recorded, never guessed.
    """
    pairs: list[Pair] = []
    pending: Metric | None = None
    for row in rows:
        perf, power = is_perf(row), is_power(row)
        if not (perf or power):
            continue
        if pending is not None:
            same_key = all(getattr(pending, k) == getattr(row, k) for k in key)
            if same_key and is_perf(pending) != perf:
                pairs.append(Pair(pending, row) if perf is False else Pair(row, pending))
                pending = None
                continue
            skipped.add(pending.ref, "no adjacent partner row with the same key")
        pending = row
    if pending is not None:
        skipped.add(pending.ref, "no adjacent partner row with the same key")
    return pairs


def without_exact_duplicates(pairs: Iterable[Pair], skipped: Skipped) -> list[Pair]:
    """Drop a pair whose key, system and both values repeat an earlier pair (duplicated blocks).

    The key uses the resolved model name: in datacenter v3.0 the two accuracy targets of 3D-UNet
    and DLRM often have identical results under one bare name, and they are two runs, not one.
    """
    seen: dict[tuple[Any, ...], Pair] = {}
    kept = []
    for pair in pairs:
        identity = (
            pair.perf.public_id,
            pair.model,  # resolved: two targets with identical results are two runs
            pair.perf.scenario,
            pair.perf.version,
            pair.perf.system,
            pair.perf.text,
            pair.power.text,
        )
        if identity in seen:
            first = seen[identity]
            for ref in pair.rows:
                skipped.add(ref, f"exact duplicate of {first.perf.ref} / {first.power.ref}")
            continue
        seen[identity] = pair
        kept.append(pair)
    return kept


def resolve_bare_targets(pairs: Iterable[Pair], skipped: Skipped) -> list[Pair]:
    """Datacenter v3.0 ``BERT``/``DLRM``/``3D-UNet``: the 1st pair of a submission is -99.0, the 2nd -99.9."""
    seen: dict[tuple[Any, ...], int] = {}
    out = []
    for pair in pairs:
        if pair.model not in TWO_TARGET_BARE_NAMES:
            out.append(pair)
            continue
        key = (pair.perf.public_id, pair.model, pair.perf.scenario, pair.perf.version)
        index = seen.get(key, 0)
        seen[key] = index + 1
        if index > 1:
            for ref in pair.rows:
                skipped.add(ref, f"third pair under the bare name {pair.perf.model_raw!r}: accuracy target unknown")
            continue
        target = f"{pair.model}-{('99.0', '99.9')[index]}"
        out.append(Pair(replace(pair.perf, model=target), replace(pair.power, model=target)))
    return out


def corrected_pairs(
    rows: Iterable[Metric],
    is_perf: Callable[[Metric], bool],
    is_power: Callable[[Metric], bool],
    skipped: Skipped,
    *,
    bare_targets: bool,
) -> list[Pair]:
    """Corrected mode's pairing: file order, then the v3.0 bare names resolved, then duplicates dropped."""
    pairs = pair_in_file_order(rows, is_perf, is_power, skipped)
    if bare_targets:
        pairs = resolve_bare_targets(pairs, skipped)
    return without_exact_duplicates(pairs, skipped)


def pair_flaws(
    pairs: Iterable[Pair], rows: Iterable[Metric], is_perf: Callable[[Metric], bool], is_power: Callable[[Metric], bool]
) -> dict[tuple[str, str], str]:
    """Which of paper mode's ``pairs`` no careful reading of ``rows`` would form, and why.

    A pair that is not a file-order pair is a ``cross-join`` (one run's throughput with another
    run's power); a file-order pair that repeats an earlier one is ``duplicate-rows``. The ids are
    the audit's causes (``corrections.CAUSES``).
    """
    ordered = sorted(rows, key=lambda m: m.line)
    genuine = pair_in_file_order(ordered, is_perf, is_power, Skipped())
    genuine_rows = {p.rows for p in genuine}
    kept = {p.rows for p in without_exact_duplicates(genuine, Skipped())}
    flaws = {}
    for pair in pairs:
        if pair.rows not in genuine_rows:
            flaws[pair.rows] = "cross-join"
        elif pair.rows not in kept:
            flaws[pair.rows] = "duplicate-rows"
    return flaws
