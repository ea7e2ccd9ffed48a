"""Figs 5a/5b/5c: best efficiency per round, its running maximum, normalised to the first round.

The common pipeline is in ``trend_series``; the three figures differ only in which table they
read, how names are matched, which units count and how efficiency is formed (``TrendSpec``).
Paper mode pairs rows with upstream's 5-key merge (whose cross product picks the mismatched
fig 5a ResNet v4.1 point, paper-figures.md 3.3) and divides ``Tokens/s`` by the typed-in 292;
corrected mode pairs rows in file order, parses every number, spells names one way and divides
by nothing that is not in the data.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from mlpower.figures import parse
from mlpower.figures.errors import DataError
from mlpower.figures.figuredata import FigureData
from mlpower.figures.loader import Results
from mlpower.figures.pairing import (
    PERF_UNITS,
    POWER_UNITS,
    TINY_ENERGY,
    TINY_LATENCY,
    TOKENS_UNIT,
    Metric,
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

FIVE_KEYS = ("public_id", "model", "scenario", "version", "date")
Matcher = Callable[[str, str | None], bool]  # (legend label, model name) -> selected?


def _regex_contains(label: str, model: str | None) -> bool:
    """pandas ``str.contains(label.lower(), case=False)``: a regular expression ('.' is any character)."""
    return model is not None and re.search(label.lower(), model, re.IGNORECASE) is not None


def _literal_contains(label: str, model: str | None) -> bool:
    return model is not None and label.lower() in model.lower()


def _exact(label: str, model: str | None) -> bool:
    return model is not None and model == label.lower()


@dataclass(frozen=True)
class TrendSpec:
    figure: str
    table: str
    paper_names: dict[str, str]
    paper_prefilter: Matcher
    paper_match: Matcher
    corrected_match: Matcher
    perf_units: frozenset[str]
    power_units: frozenset[str]
    tiny: bool = False  # efficiency = 1 / energy per inference


def _prefilter_alternation(label: str, model: str | None) -> bool:
    """fig 5a's pre-filter: an alternation of the *escaped* lower-case names, case-insensitive."""
    return model is not None and re.search(re.escape(label.lower()), model, re.IGNORECASE) is not None


SPECS = {
    "fig5a": TrendSpec(
        "fig5a",
        "datacenter",
        {"rnnt": "rnn-t", "bert": "bert-99.0"},
        _prefilter_alternation,
        _regex_contains,
        _literal_contains,
        PERF_UNITS | {TOKENS_UNIT},
        POWER_UNITS,
    ),
    "fig5b": TrendSpec(
        "fig5b",
        "edge",
        {"rnnt": "rnn-t", "bert-99": "bert-99.0"},
        _exact,
        _exact,
        _exact,
        frozenset({"samples/s", "Samples/s"}),
        POWER_UNITS,
    ),
    "fig5c": TrendSpec(
        "fig5c",
        "tiny",
        {},
        _literal_contains,
        _literal_contains,
        _literal_contains,
        frozenset({TINY_LATENCY}),
        frozenset({TINY_ENERGY}),
        tiny=True,
    ),
}


Flaws = dict[tuple[str, str], str]  # a pair's rows -> the cause that makes it a pair no careful reading forms


def _paper_pairs(spec: TrendSpec, results: Results, legend: list[str], skipped: Skipped) -> tuple[list[Pair], Flaws]:
    frame = results.inference(spec.table)
    # fig 5c neither lower-cases nor renames: it matches substrings of the raw name.
    rename = (lambda name: name) if spec.tiny else paper_model_name(spec.paper_names)
    tokens_per_sample = typed_values()["fig5a"]["tokens_per_sample"] if spec.figure == "fig5a" else None
    perf: list[Metric] = []
    power: list[Metric] = []
    for m in metrics(frame, model=rename, value=lambda text, where: text):
        if not spec.tiny and (m.scenario or "").lower() != "offline":
            continue
        if not any(spec.paper_prefilter(label, m.model) for label in legend):
            continue
        if m.unit in spec.power_units and "http" in (m.text or "").lower():
            continue  # the edge URL rows (paper-figures.md 2.3)
        if m.unit not in spec.perf_units and m.unit not in spec.power_units:
            continue
        value: float | None
        if spec.figure == "fig5a":
            value = parse.strip_then_coerce(m.text)
            if value is None:
                skipped.add(m.ref, f"Result {m.text!r}: to_numeric gives NaN, which upstream's max passes over")
                continue
            if value is not None and m.unit is not None and "tokens/s" in m.unit.lower():
                value /= tokens_per_sample  # type: ignore[operator]
        elif spec.tiny and m.unit == TINY_ENERGY:
            value = parse.plain_number(m.text)
            if value is None:
                skipped.add(m.ref, f"Energy {m.text!r} is not a plain number (upstream's regex drops it)")
                continue
        else:
            value = parse.strict_float(m.text, m.ref)
        m = replace(m, value=value)
        (perf if m.unit in spec.perf_units else power).append(m)
    pairs = paper_join(perf, power, FIVE_KEYS)
    return pairs, pair_flaws(
        pairs, perf + power, lambda m: m.unit in spec.perf_units, lambda m: m.unit in spec.power_units
    )


def _corrected_pairs(
    spec: TrendSpec, results: Results, legend: list[str], skipped: Skipped
) -> tuple[list[Pair], Flaws]:
    frame = results.inference(spec.table)
    rename = (lambda name: name) if spec.tiny else corrected_model_name
    rows = []
    for m in metrics(frame, model=rename, value=lambda text, where: parse.corrected_number(text)):
        if not spec.tiny and (m.scenario or "").lower() != "offline":
            continue
        if m.unit not in spec.perf_units and m.unit not in spec.power_units:
            continue
        if m.value is None:
            skipped.add(m.ref, f"Result {m.text!r} is not a number")
            continue
        rows.append(m)
    pairs = corrected_pairs(
        rows,
        lambda m: m.unit in spec.perf_units,
        lambda m: m.unit in spec.power_units,
        skipped,
        bare_targets=spec.table == "datacenter",
    )
    return [p for p in pairs if any(spec.corrected_match(label, p.model) for label in legend)], {}


# Only generative benchmarks produce tokens; a ``Tokens/s`` label on anything else (4.1-0049's
# dlrm-v2 and 3d-unet rows) is the labelling error the data README documents, so it is samples/s.
GENERATIVE_PREFIXES = ("gptj", "llama2")


def _pair_causes(pair: Pair, flaws: Flaws) -> set[str]:
    """The declared causes (``corrections.CAUSES``) whose rule touched this pair's efficiency."""
    causes = {flaws[pair.rows]} if pair.rows in flaws else set()
    if (pair.perf.unit or "").lower() == TOKENS_UNIT.lower():
        causes.add("tokens-per-sample" if _throughput_kind(pair) == "tokens" else "mislabelled-tokens")
    return causes


def _throughput_kind(pair: Pair) -> str:
    unit = (pair.perf.unit or "").lower()
    if unit == TOKENS_UNIT.lower() and (pair.model or "").startswith(GENERATIVE_PREFIXES):
        return "tokens"
    return "samples"


def _efficiency(spec: TrendSpec, pair: Pair) -> float | None:
    if pair.power.value in (None, 0.0):
        return None
    if spec.tiny:
        return 1.0 / pair.power.value
    if pair.perf.value is None:
        return None
    return pair.perf.value / pair.power.value


def compute_trend(name: str, results: Results, mode: str) -> FigureData:
    spec = SPECS[name]
    legend: list[str] = typed_values()[name]["legend"]
    skipped = Skipped()
    pairs, flaws = (_paper_pairs if mode == "paper" else _corrected_pairs)(spec, results, legend, skipped)
    match = spec.paper_match if mode == "paper" else spec.corrected_match

    data = FigureData(name, mode, series={}, key_values={})
    # Tick positions: the earliest date of each round over the whole merged frame (paper-figures.md 3.3).
    version_dates: dict[str, str] = {}
    for pair in pairs:
        if pair.perf.version is not None and pair.perf.date is not None:
            iso = _iso(pair.perf.date, pair.perf.ref)
            version_dates[pair.perf.version] = min(version_dates.get(pair.perf.version, iso), iso)
    series_out: dict[str, dict[str, list]] = {}
    for label in legend:
        best: dict[str, tuple[float, Pair]] = {}
        selected = [pair for pair in pairs if match(label, pair.model)]
        if mode == "corrected" and not spec.tiny:
            selected = _one_throughput_kind(label, selected, skipped)
        for pair in selected:
            value = _efficiency(spec, pair)
            version = pair.perf.version
            if value is None or version is None:
                continue
            if version not in best or value > best[version][0]:
                best[version] = (value, pair)
        if not best:
            data.notes.append(f"{label}: no rows, series skipped")
            continue
        versions = sorted(best)
        running: list[tuple[float, Pair]] = []
        for version in versions:
            current = best[version]
            running.append(current if not running or current[0] > running[-1][0] else running[-1])
        first = running[0][0]
        normalised = [value / first for value, _ in running]
        # A running maximum depends on every round up to it, a normalised value also on the first.
        reached: set[str] = set()
        running_causes = []
        for version in versions:
            reached |= _pair_causes(best[version][1], flaws)
            running_causes.append(set(reached))
        series_out[label] = {
            "versions": versions,
            "dates": [version_dates[v] for v in versions],
            "normalized": normalised,
        }
        for version, (vmax, vpair), (rmax, rpair), norm, upto in zip(
            versions, (best[v] for v in versions), running, normalised, running_causes, strict=True
        ):
            key = f"{label}@{version}"
            rows = list(vpair.rows)
            if mode == "paper" and spec.figure == "fig5a" and (vpair.perf.unit or "").lower() == "tokens/s":
                rows.append(typed_ref("fig5a.tokens_per_sample"))
            data.key_values[f"{key}_version_max_efficiency"] = vmax
            data.key_values[f"{key}_running_max_efficiency"] = rmax
            data.key_values[f"{key}_normalized"] = norm
            data.point(f"{key}_version_max_efficiency", vmax, rows, _pair_causes(vpair, flaws))
            data.point(f"{key}_running_max_efficiency", rmax, list(rpair.rows), upto)
            data.point(f"{key}_normalized", norm, list(rpair.rows) + list(running[0][1].rows), upto | running_causes[0])
    data.series = {
        "legend": list(series_out),
        "series": series_out,
        "version_ticks": dict(sorted(version_dates.items())),
    }
    data.skipped = skipped.reasons
    return data


def _one_throughput_kind(label: str, pairs: list[Pair], skipped: Skipped) -> list[Pair]:
    """Corrected mode divides by no typed tokens-per-sample, so a series keeps the kind of its first round."""
    if not pairs:
        return pairs
    first_version = min(p.perf.version or "" for p in pairs)
    kind = _throughput_kind(next(p for p in pairs if (p.perf.version or "") == first_version))
    kept = []
    for pair in pairs:
        if _throughput_kind(pair) == kind:
            kept.append(pair)
        else:
            for ref in pair.rows:
                skipped.add(
                    ref,
                    f"{label}: throughput in {_throughput_kind(pair)}/s, the series is in {kind}/s; "
                    "the data has no tokens per sample to convert",
                )
    return kept


def _iso(date_text: str, where: str) -> str:
    """``m/d/YYYY`` (zero padding optional) -> ``YYYY-MM-DD``; anything else is a ``DataError`` at ``where``."""
    try:
        month, day, year = (int(part) for part in date_text.split("/"))
        return dt.date(year, month, day).isoformat()
    except ValueError:
        raise DataError(f"{where}: date {date_text!r} is not m/d/YYYY") from None


def compute_fig5a(results: Results, mode: str) -> FigureData:
    return compute_trend("fig5a", results, mode)


def compute_fig5b(results: Results, mode: str) -> FigureData:
    return compute_trend("fig5b", results, mode)


def compute_fig5c(results: Results, mode: str) -> FigureData:
    return compute_trend("fig5c", results, mode)
