"""Fig 2: minimum and maximum system power per scale (Tiny, Edge, Datacenter, Training).

Paper mode keeps each scale's own upstream parsing (paper-figures.md 3.2): tiny energies only
when they are plain numbers, datacenter power without removing thousands separators (so those
rows vanish) and the typed-in datacenter maximum; edge takes all Offline power rows without a
join. Corrected mode parses every number, pairs tiny and training rows by file order and uses
no typed value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mlpower.figures import parse
from mlpower.figures.errors import DataError
from mlpower.figures.figuredata import FigureData
from mlpower.figures.loader import Results
from mlpower.figures.pairing import (
    POWER_UNITS,
    TINY_ENERGY,
    TINY_LATENCY,
    TRAINING_ENERGY,
    TRAINING_TIME,
    Metric,
    Pair,
    Skipped,
    metrics,
    pair_in_file_order,
    paper_join,
)
from mlpower.figures.typed import typed_ref, typed_values

SCALES = ("Tiny", "Edge", "Datacenter", "Training")
FIVE_KEYS = ("public_id", "model_raw", "scenario", "version", "date")

Candidate = tuple[float, tuple[str, ...]]  # a power value in W and the rows it comes from


def _offline(metric: Metric) -> bool:
    return (metric.scenario or "").lower() == "offline"


def _strict(text: str | None, where: str) -> float:
    return parse.strict_float(text, where)


def _tiny(results: Results, mode: str, skipped: Skipped) -> list[Candidate]:
    models = set(typed_values()["fig2"]["tiny_models"])
    frame = results.tiny
    if mode == "paper":
        rows = metrics(frame, value=lambda text, where: text)  # parse per kind below
        perf = [_with(m, _strict(m.text, m.ref)) for m in rows if m.model_raw in models and m.unit == TINY_LATENCY]
        power = []
        for m in rows:
            if m.model_raw in models and m.unit == TINY_ENERGY:
                value = parse.plain_number(m.text)
                if value is None:
                    skipped.add(m.ref, f"Energy {m.text!r} is not a plain number (upstream's regex drops it)")
                else:
                    power.append(_with(m, value))
        pairs = paper_join(perf, power, FIVE_KEYS)
    else:
        rows = [
            m for m in metrics(frame, value=lambda text, where: parse.corrected_number(text)) if m.model_raw in models
        ]
        for m in rows:
            if m.unit in (TINY_LATENCY, TINY_ENERGY) and m.value is None:
                skipped.add(m.ref, f"Result {m.text!r} is not a number")
        usable = [m for m in rows if m.value is not None]
        pairs = pair_in_file_order(usable, lambda m: m.unit == TINY_LATENCY, lambda m: m.unit == TINY_ENERGY, skipped)
    # energy [uJ] / latency [ms] = mW, hence the 1000.
    return [(_value(p.power) / (1000.0 * _value(p.perf)), p.rows) for p in pairs]


def _edge(results: Results, mode: str, skipped: Skipped) -> list[Candidate]:
    rule = parse.coerce_like_pandas if mode == "paper" else parse.corrected_number
    out: list[Candidate] = []
    for m in metrics(results.edge, value=lambda text, where: rule(text)):
        if not (_offline(m) and m.unit in POWER_UNITS) or "http" in (m.text or "").lower():
            continue
        if m.value is None:
            if mode == "paper":
                # Upstream has no dropna here: a NaN would make numpy's min/max NaN. Refuse rather than plot it.
                raise DataError(f"{m.ref}: power {m.text!r} does not parse, upstream's edge min/max would be NaN")
            skipped.add(m.ref, f"Result {m.text!r} is not a number")
            continue
        out.append((m.value, (m.ref,)))
    return out


def _datacenter(results: Results, mode: str, skipped: Skipped) -> list[Candidate]:
    rule = parse.coerce_like_pandas if mode == "paper" else parse.corrected_number
    out: list[Candidate] = []
    for m in metrics(results.datacenter, value=lambda text, where: rule(text)):
        if not (_offline(m) and m.unit in POWER_UNITS):
            continue
        if m.value is None:
            why = (
                "to_numeric without removing ',' gives NaN; upstream's dropna drops it"
                if mode == "paper"
                else "not a number"
            )
            skipped.add(m.ref, f"Result {m.text!r}: {why}")
            continue
        out.append((m.value, (m.ref,)))
    return out


def _training(results: Results, mode: str, skipped: Skipped) -> list[Candidate]:
    rows = metrics(
        results.training,
        value_column="Avg. Result at System Name",
        value=lambda text, where: (parse.strict_float if mode == "paper" else parse.required_number)(text, where)
        if text else None,
    )
    energy = [m for m in rows if m.unit == TRAINING_ENERGY]
    time = [m for m in rows if m.unit == TRAINING_TIME]
    if mode == "paper":
        pairs = paper_join(energy, time, ("public_id", "model_raw"))
        # paper_join puts the left side in ``perf``: here that is the energy row.
        values = [(_value(p.perf) * 1000.0 / (60.0 * _value(p.power)), p.rows) for p in pairs]
    else:
        ordered = pair_in_file_order(
            rows,
            lambda m: m.unit == TRAINING_TIME,
            lambda m: m.unit == TRAINING_ENERGY,
            skipped,
            key=("public_id", "model_raw"),
        )
        values = [(_value(p.power) * 1000.0 / (60.0 * _value(p.perf)), (p.power.ref, p.perf.ref)) for p in ordered]
    return values


def _with(metric: Metric, value: float) -> Metric:
    from dataclasses import replace

    return replace(metric, value=value)


def _value(metric: Metric) -> float:
    assert metric.value is not None, metric.ref  # callers only pass parsed rows
    return metric.value


SCALE_READERS: dict[str, Callable[[Results, str, Skipped], list[Candidate]]] = {
    "Tiny": _tiny,
    "Edge": _edge,
    "Datacenter": _datacenter,
    "Training": _training,
}


def _extreme(candidates: Sequence[Candidate], pick: Callable[..., Any], scale: str) -> Candidate:
    if not candidates:
        raise DataError(f"fig2: no {scale} power values in the data")
    best = pick(value for value, _ in candidates)
    return next(c for c in candidates if c[0] == best)  # the first row holding it, as numpy's argmin/argmax


def compute_fig2(results: Results, mode: str) -> FigureData:
    skipped = Skipped()
    typed = typed_values()["fig2"]
    data = FigureData("fig2", mode, series={}, key_values={})
    mins: dict[str, float] = {}
    maxes: dict[str, float] = {}
    for scale in SCALES:
        candidates = SCALE_READERS[scale](results, mode, skipped)
        low, high = _extreme(candidates, min, scale), _extreme(candidates, max, scale)
        high_value, high_rows = high
        if mode == "paper" and scale == "Datacenter" and high_value < typed["datacenter_max_override_threshold_W"]:
            data.notes.append(
                f"Datacenter max {high_value} W replaced by the typed-in "
                f"{typed['datacenter_max_override_W']} W (a Server row the Offline filter excludes)"
            )
            high_value, high_rows = typed["datacenter_max_override_W"], (typed_ref("fig2.datacenter_max_override_W"),)
        mins[scale], maxes[scale] = low[0], high_value
        overridden = high_rows == (typed_ref("fig2.datacenter_max_override_W"),)
        data.point(f"{scale}_min_W", low[0], low[1])
        data.point(f"{scale}_max_W", high_value, high_rows, ("fig2-typed-max",) if overridden else ())
        data.key_values[f"{scale}_min_W"] = low[0]
        data.key_values[f"{scale}_max_W"] = high_value
    data.series = {
        "scales": list(SCALES),
        "Minimum Power": [mins[s] for s in SCALES],
        "Maximum Power": [maxes[s] for s in SCALES],
    }
    data.skipped = skipped.reasons
    return data


__all__ = ["compute_fig2", "SCALES", "Pair"]
