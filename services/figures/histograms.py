"""Figs 8 and 10: histograms of efficiency differences (BERT accuracy targets; same hardware across rounds).

Paper mode follows paper-figures.md 3.6 and 3.8 to the letter, including fig 10's renaming of the
v3.0 bare ``bert`` to ``bert-99.9``, its integer versions (so only "next major" rounds pair, in all
cross combinations, counting duplicated rows repeatedly) and its typed-in -50 % cut. Corrected
mode pairs rows in file order without duplicates, resolves the v3.0 bare names to their accuracy
target, pairs consecutive rounds of the same system, cuts nothing for its size, and excludes the
pairs across a benchmark definition change (``corrections.BENCHMARK_CHANGES``), each listed with
its reason. Every plotted value carries the causes (``corrections.CAUSES``) that make it differ.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from statistics import mean, median
from typing import Any

import numpy as np
from mlpower.figures import parse
from mlpower.figures.corrections import change_between, round_key
from mlpower.figures.errors import DataError
from mlpower.figures.figuredata import FigureData
from mlpower.figures.loader import Results
from mlpower.figures.pairing import (
    PERF_UNITS,
    POWER_UNITS,
    TWO_TARGET_BARE_NAMES,
    Pair,
    Skipped,
    corrected_model_name,
    corrected_pairs,
    metrics,
    pair_flaws,
    paper_join,
    paper_model_name,
)
from mlpower.figures.typed import typed_ref, typed_values

BERT_TARGETS = ("bert-99.0", "bert-99.9")


def histogram_key_values(values: Sequence[float], bins: int, figure: str) -> dict[str, Any]:
    """matplotlib's ``hist(values, bins=n)``: n equal-width bins from the smallest to the largest value."""
    if not values:  # tables without one usable pair (truncated, corrupted): say so instead of min() failing
        raise DataError(f"{figure}: nothing to plot: no value is left after parsing and pairing the tables")
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins)
    return {
        "histogram_counts": [int(c) for c in counts],
        "histogram_edges": [float(e) for e in edges],
        "n_values": len(values),
        "min": float(min(values)),
        "max": float(max(values)),
        "mean": float(mean(values)),
        "median": float(median(values)),
    }


Flaws = dict[tuple[str, str], str]


def _offline_pairs(
    results: Results, mode: str, paper_names: dict[str, str], skipped: Skipped, *, integer_versions: bool = False
) -> tuple[list[Pair], Flaws]:
    """Datacenter Offline perf/power pairs under each mode's pairing and parsing rules, and (paper
    mode) which of them no careful reading would form (``pairing.pair_flaws``)."""
    rename = paper_model_name(paper_names) if mode == "paper" else corrected_model_name
    rows = []
    for m in metrics(results.datacenter, model=rename, value=lambda text, where: text):
        if (m.scenario or "").lower() != "offline" or (m.unit not in PERF_UNITS and m.unit not in POWER_UNITS):
            continue
        if mode == "paper":
            value = parse.strict_float(m.text, m.ref)
        else:
            value = parse.corrected_number(m.text)
            if value is None:
                skipped.add(m.ref, f"Result {m.text!r} is not a number")
                continue
        rows.append(replace(m, value=value, round=m.version))
    if mode == "paper":
        if integer_versions:
            rows = [replace(m, version=_major(m.version)) for m in rows]
        perf = [m for m in rows if m.unit in PERF_UNITS]
        power = [m for m in rows if m.unit in POWER_UNITS]
        pairs = paper_join(perf, power, ("public_id", "model", "scenario", "version", "date"))
        return pairs, pair_flaws(pairs, rows, lambda m: m.unit in PERF_UNITS, lambda m: m.unit in POWER_UNITS)
    pairs = corrected_pairs(
        rows, lambda m: m.unit in PERF_UNITS, lambda m: m.unit in POWER_UNITS, skipped, bare_targets=True
    )
    return pairs, {}


def _major(version: str | None) -> str | None:
    """fig 10: the first integer of the version string (``v2.1`` -> ``2``)."""
    found = re.search(r"\d+", version or "")
    return found.group(0) if found else None


def _efficiency(pair: Pair) -> float:
    return pair.perf.value / pair.power.value


def _bare(pair: Pair) -> bool:
    """Named by a datacenter v3.0 bare name that covers both accuracy targets."""
    return (pair.perf.model_raw or "").lower() in TWO_TARGET_BARE_NAMES


def _flaws_of(flaws: Flaws, *pairs: Pair) -> set[str]:
    return {flaws[p.rows] for p in pairs if p.rows in flaws}


def compute_fig8(results: Results, mode: str) -> FigureData:
    skipped = Skipped()
    pairs, flaws = _offline_pairs(results, mode, {"bert": "bert-99.0", "bert99.9": "bert-99.9"}, skipped)
    # Pivot (submission, round) x target with max; corrected mode also separates systems under one ID.
    table: dict[tuple[Any, ...], dict[str, tuple[float, Pair]]] = {}
    for pair in pairs:
        if pair.model not in BERT_TARGETS:
            continue
        system = pair.perf.system if mode == "corrected" else None
        cell = table.setdefault((pair.perf.public_id, pair.perf.version, system), {})
        value = _efficiency(pair)
        if pair.model not in cell or value > cell[pair.model][0]:
            cell[pair.model] = (value, pair)
    data = FigureData("fig8", mode, series={}, key_values={})
    systems_per_id: dict[tuple[Any, Any], int] = {}
    for public_id, version, _system in table:
        systems_per_id[(public_id, version)] = systems_per_id.get((public_id, version), 0) + 1
    values = []
    for (public_id, version, system), cell in table.items():
        if len(cell) < 2:
            continue
        (e0, p0), (e9, p9) = cell["bert-99.0"], cell["bert-99.9"]
        value = (e0 - e9) / e9 * 100.0
        key = f"{public_id}@{version}"
        if systems_per_id[(public_id, version)] > 1:
            key += f"/{system}"
        causes = _flaws_of(flaws, p0, p9)
        if _bare(p0) or _bare(p9):
            causes.add("v30-bare-names")
        data.point(key, value, list(p0.rows) + list(p9.rows), causes)
        values.append(value)
    bins = typed_values()["fig8"]["bins"]
    data.key_values = histogram_key_values(values, bins, "fig8")
    data.series = {"values": values, "bins": bins}
    data.skipped = skipped.reasons
    return data


def compute_fig10(results: Results, mode: str) -> FigureData:
    """Efficiency change of one system from one round to a later one (see the module docstring).

    Corrected mode excludes, and lists with the change, every pair across a benchmark definition
    change of ``corrections.BENCHMARK_CHANGES``; it drops nothing for its size."""
    skipped = Skipped()
    paper = mode == "paper"
    renames = {"rnnt": "rnn-t", "bert": "bert-99.9"}
    pairs, flaws = _offline_pairs(results, mode, renames, skipped, integer_versions=paper)
    threshold = typed_values()["fig10"]["min_delta_percent"]
    rounds = sorted({p.perf.round for p in pairs if p.perf.round is not None}, key=round_key)

    def next_round(a: Pair, b: Pair) -> bool:
        return rounds.index(b.perf.round) == rounds.index(a.perf.round) + 1

    def follows(a: Pair, b: Pair) -> bool:
        if paper:  # integer versions: the next major round ("+ 0.1" can never hold)
            return int(b.perf.version) == int(a.perf.version) + 1
        return next_round(a, b)

    paper_name = paper_model_name(renames)

    def causes_of(a: Pair, b: Pair, delta: float) -> set[str]:
        """Which declared rules make this value one mode plots and the other does not."""
        if paper:
            causes = _flaws_of(flaws, a, b)
            if not next_round(a, b):
                causes.add("fig10-major-versions")
            if _bare(a) or _bare(b):
                causes.add("v30-bare-names")
            return causes
        causes = set()
        if _major(a.perf.round) == _major(b.perf.round):
            causes.add("fig10-major-versions")  # a step within a major version, which paper mode never pairs
        if _bare(a) or _bare(b):
            causes.add("v30-bare-names")
        elif paper_name(a.perf.model_raw) != paper_name(b.perf.model_raw):
            causes.add("name-spellings")
        if delta < threshold:
            causes.add("fig10-cut")
        return causes

    # Groups by nested equality filters: rows with a missing key never belong to one.
    groups: dict[tuple[Any, ...], list[Pair]] = {}
    for pair in pairs:
        group = (pair.perf.organization, pair.power.accelerator, _count(pair.perf.total_accelerators))
        if any(part is None for part in group):
            continue
        groups.setdefault(group, []).append(pair)
    data = FigureData("fig10", mode, series={}, key_values={})
    values = []
    changes: dict[str, int] = {}
    for group, members in groups.items():
        for a in members:
            for b in members:
                if a is b or a.model != b.model or not follows(a, b):
                    continue
                delta = (_efficiency(b) - _efficiency(a)) / _efficiency(a) * 100.0
                rows = list(a.rows) + list(b.rows)
                key = (
                    f"{a.model}|{group[0]}|{group[1]}|{group[2]:g}|{a.perf.public_id}({a.perf.line},{a.power.line})"
                    f"->{b.perf.public_id}({b.perf.line},{b.power.line})"
                )
                if paper and delta < threshold:
                    data.exclude(
                        key,
                        delta,
                        rows + [typed_ref("fig10.min_delta_percent")],
                        "fig10-cut",
                        f"{delta:.1f} % is below the typed-in {threshold} %",
                    )
                    continue
                change = None if paper else change_between(a.model, a.perf.round, b.perf.round)
                if change is not None:
                    data.exclude(
                        key,
                        delta,
                        rows,
                        "benchmark-change",
                        f"{a.perf.round} -> {b.perf.round} straddles {change.describe()}",
                    )
                    changes[change.describe()] = changes.get(change.describe(), 0) + 1
                    continue
                data.point(key, delta, rows, causes_of(a, b, delta))
                values.append(delta)
    if paper and data.excluded:
        data.notes.append(f"{len(data.excluded)} deltas below the typed-in {threshold} % dropped")
    for change, count in changes.items():
        data.notes.append(f"{count} pairs across a benchmark definition change excluded ({change})")
    bins = typed_values()["fig10"]["bins"]  # both modes: a bin count is how to draw, not a value drawn
    data.key_values = histogram_key_values(values, bins, "fig10")
    # Not plotted upstream; despite its name it is the share of deltas >= 50 (paper-figures.md 3.8).
    data.series = {
        "values": values,
        "bins": bins,
        "share_of_deltas_at_least_50_percent": sum(v >= 50 for v in values) / len(values),
    }
    data.skipped = skipped.reasons
    return data


def _count(text: str | None) -> float | None:
    """``Total Accelerators`` as pandas reads it (a float), so ``4`` and ``4.0`` are one group."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None
