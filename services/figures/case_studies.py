"""Figs 1, 6, 7, 9, 11a and 11b: the figures whose published numbers were typed into upstream's scripts.

Paper mode plots the typed values from ``typed_values.json`` (and fig 1 the performance table as
stored). Corrected mode derives what the public tables can give for the same submissions (the
selections are listed in ``typed_values.json`` under ``corrected``) and leaves out what they
cannot (fig 6's compute/interconnect split, fig 7's MAC counts, all of fig 11b), saying so in
the figure's notes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mlpower.figures import parse
from mlpower.figures.errors import DataError
from mlpower.figures.figuredata import FigureData
from mlpower.figures.loader import LINE_COLUMN, PERFORMANCE, Results, row_ref
from mlpower.figures.pairing import (
    PERF_UNITS,
    POWER_UNITS,
    TINY_ENERGY,
    TINY_LATENCY,
    TOKENS_UNIT,
    TRAINING_ENERGY,
    TRAINING_TIME,
    Pair,
    Skipped,
    corrected_model_name,
    corrected_pairs,
    metrics,
    pair_in_file_order,
)
from mlpower.figures.trends import _iso
from mlpower.figures.typed import typed_ref, typed_values

# --------------------------------------------------------------------------- fig 1


def compute_fig1(results: Results, mode: str) -> FigureData:
    """Values as stored; both modes agree (the version -> date ticks are labels, not data)."""
    frame = results.performance
    date_columns = [c for c in frame.columns if c not in ("Dates", "_file", "_line")]
    dates = [_iso(c, row_ref(PERFORMANCE, 1)) for c in date_columns]
    data = FigureData("fig1", mode, series={}, key_values={})
    for row in frame.iter_rows(named=True):
        label = row["Dates"]
        values: list[float | None] = []
        for column, date in zip(date_columns, dates, strict=True):
            text = row[column]
            value = None if text in (None, "") else parse.corrected_number(text)
            if text not in (None, "") and value is None:
                raise DataError(
                    f"{row_ref(PERFORMANCE, row[LINE_COLUMN])}: {label} on {column}: {text!r} is not a number"
                )
            values.append(value)
            if value is not None:
                data.point(f"{label}.{date}", value, [row_ref(PERFORMANCE, row[LINE_COLUMN])])
        data.key_values[label] = dict(zip(dates, values, strict=True))
    data.series = {
        "dates": dates,
        "labels": [r for r in frame["Dates"]],
        "version_dates": typed_values()["fig1"]["version_dates"],
    }
    return data


# --------------------------------------------------------------------------- fig 6


def compute_fig6(results: Results, mode: str) -> FigureData:
    typed = typed_values()["fig6"]
    data = FigureData("fig6", mode, series={}, key_values={})
    if mode == "paper":
        labels = [str(n) for n in typed["accelerators"]]
        series = {
            "Compute Energy": typed["compute_energy_MJ"],
            "Interconnect Energy": typed["interconnect_energy_MJ"],
            "Time to Train": typed["time_to_train_min"],
        }
        sources = {
            "Compute Energy": "compute_energy_MJ",
            "Interconnect Energy": "interconnect_energy_MJ",
            "Time to Train": "time_to_train_min",
        }
        for label, values in series.items():
            causes = () if label == "Time to Train" else ("fig6-typed-split",)
            for accelerators, value in zip(labels, values, strict=True):
                data.point(f"{label}.{accelerators}", value, [typed_ref(f"fig6.{sources[label]}")], causes)
    else:
        wanted = typed["corrected"]
        rows = metrics(
            results.training,
            value_column="Avg. Result at System Name",
            value=lambda text, where: parse.required_number(text, where) if text else None,
        )
        skipped = Skipped()
        pairs = pair_in_file_order(
            [m for m in rows if m.model_raw == wanted["benchmark"] and m.public_id in wanted["submissions"]],
            lambda m: m.unit == TRAINING_TIME,
            lambda m: m.unit == TRAINING_ENERGY,
            skipped,
            key=("public_id", "model_raw"),
        )
        by_id = {p.perf.public_id: p for p in pairs}
        missing = [s for s in wanted["submissions"] if s not in by_id]
        if missing:
            raise DataError(
                f"fig6: {', '.join(missing)} have no {wanted['benchmark']} energy/time pair in the training table"
            )
        ordered = [by_id[s] for s in wanted["submissions"]]
        labels = [f"{_count_label(p.perf.total_accelerators)}" for p in ordered]
        series = {
            "Total Energy": [p.power.value / 1000.0 for p in ordered],
            "Time to Train": [p.perf.value for p in ordered],
        }
        for accelerators, pair in zip(labels, ordered, strict=True):
            data.point(
                f"Total Energy.{accelerators}", pair.power.value / 1000.0, [pair.power.ref], ("fig6-typed-split",)
            )
            data.point(f"Time to Train.{accelerators}", pair.perf.value, [pair.perf.ref])
        data.notes.append("the compute/interconnect split is not in the public data; total energy only")
        data.skipped = skipped.reasons
    data.key_values = {label: dict(zip(labels, values, strict=True)) for label, values in series.items()}
    data.series = {"accelerators": labels, "bars": [k for k in series if k != "Time to Train"], "values": series}
    return data


def _count_label(text: str | None) -> str:
    try:
        return f"{float(text or ''):g}"
    except ValueError:
        return text or "?"


# --------------------------------------------------------------------------- fig 7


def _offline_pairs(results: Results, table: str, public_id: str, skipped: Skipped) -> list[Pair]:
    frame = results.inference(table)
    rows = []
    for m in metrics(frame, model=corrected_model_name, value=lambda text, where: parse.corrected_number(text)):
        if m.public_id != public_id or m.value is None:
            continue
        rows.append(m)
    if table == "tiny":
        return pair_in_file_order(rows, lambda m: m.unit == TINY_LATENCY, lambda m: m.unit == TINY_ENERGY, skipped)
    rows = [m for m in rows if (m.scenario or "").lower() == "offline"]
    return corrected_pairs(
        rows,
        lambda m: m.unit in PERF_UNITS or m.unit == TOKENS_UNIT,
        lambda m: m.unit in POWER_UNITS,
        skipped,
        bare_targets=table == "datacenter",
    )


FIG7_TYPED_CAUSES = {"datacenter": "fig7-typed-rounded", "tiny": "fig7-typed-tiny"}
PER_TOKEN_GROUP = "Datacenter (J/token)"


def compute_fig7(results: Results, mode: str) -> FigureData:
    """Energy per inference of each workload, and (paper mode) its typed MAC count.

    Paper mode plots the typed values, Llama2 as a Server J/token times a typed 292 on the J/sample
    axis. Corrected mode derives every value from the rows and keeps a workload measured in
    tokens/s in J/token, a group of its own that the figure draws on its own labelled axis."""
    typed = typed_values()["fig7"]
    data = FigureData("fig7", mode, series={}, key_values={})
    groups: dict[str, dict[str, float]] = {}
    per_token: dict[str, float] = {}
    macs: dict[str, float] = {}
    if mode == "paper":
        for group in ("datacenter", "tiny"):
            values = {}
            for workload, entry in typed[group].items():
                value = entry["j_per_sample"] * entry.get("j_per_sample_multiplier", 1)
                values[workload] = value
                macs[workload] = entry["macs"]
                cause = "fig7-llama2-per-token" if "j_per_sample_multiplier" in entry else FIG7_TYPED_CAUSES[group]
                data.point(f"{group.capitalize()}.{workload}", value, [typed_ref(f"fig7.{group}.{workload}")], (cause,))
                data.point(
                    f"MAC Operations.{workload}",
                    entry["macs"],
                    [typed_ref(f"fig7.{group}.{workload}.macs")],
                    ("fig7-typed-macs",),
                )
            groups[group] = values
    else:
        selection = typed["corrected"]
        skipped = Skipped()
        dc = {p.model: p for p in _offline_pairs(results, "datacenter", selection["datacenter_submission"], skipped)}
        tiny = {p.perf.model_raw: p for p in _offline_pairs(results, "tiny", selection["tiny_submission"], skipped)}
        groups = {"datacenter": {}, "tiny": {}}
        for workload, model in selection["datacenter_models"].items():
            pair = dc.get(model)
            if pair is None:
                data.notes.append(f"{workload}: no Offline {model} pair in {selection['datacenter_submission']}")
                continue
            value = pair.power.value / pair.perf.value  # W / (samples/s) = J/sample  # type: ignore[operator]
            if pair.perf.unit == TOKENS_UNIT:
                # W / (tokens/s) = J/token; no table gives tokens per sample, so it stays per token.
                data.notes.append(f"{workload}: J per token, on its own axis (the data has no tokens per sample)")
                per_token[workload] = value
                data.point(f"{PER_TOKEN_GROUP}.{workload}", value, list(pair.rows), ("fig7-llama2-per-token",))
                continue
            groups["datacenter"][workload] = value
            data.point(f"Datacenter.{workload}", value, list(pair.rows))
        for workload, model in selection["tiny_models"].items():
            pair = tiny.get(model)
            if pair is None:
                data.notes.append(f"{workload}: no {model} pair in {selection['tiny_submission']}")
                continue
            value = pair.power.value * 1e-6  # uJ -> J  # type: ignore[operator]
            groups["tiny"][workload] = value
            data.point(f"Tiny.{workload}", value, list(pair.rows))
        data.notes.append("MAC counts are not in the public data; the MAC line is left out")
        data.skipped = skipped.reasons
    ordered = {g: dict(sorted(v.items(), key=lambda item: item[1], reverse=True)) for g, v in groups.items()}
    order = list(ordered["datacenter"]) + list(ordered["tiny"])
    data.key_values = {"Datacenter": ordered["datacenter"], "Tiny": ordered["tiny"]}
    if per_token:
        data.key_values[PER_TOKEN_GROUP] = per_token
    if macs:
        data.key_values["MAC Operations"] = {w: macs[w] for w in order}
    data.series = {
        "order": order,
        "groups": ordered,
        "per_token": per_token,
        "macs": [macs[w] for w in order] if macs else [],
        "categories": typed["categories"],
    }
    return data


# --------------------------------------------------------------------------- fig 9


def compute_fig9(results: Results, mode: str) -> FigureData:
    typed = typed_values()["fig9"]
    data = FigureData("fig9", mode, series={}, key_values={})
    if mode == "paper":
        versions = typed["versions"]
        low, high = typed["bert_99_0"], typed["bert_99_9"]
        for version, a, b in zip(versions, low, high, strict=True):
            data.point(f"BERT-99.0.{version}", a, [typed_ref("fig9.bert_99_0")], ("fig9-typed-ratios",))
            data.point(f"BERT-99.9.{version}", b, [typed_ref("fig9.bert_99_9")], ("fig9-typed-ratios",))
    else:
        skipped = Skipped()
        versions, low, high = [], [], []
        for public_id in typed["corrected"]["submissions"]:
            pairs = {p.model: p for p in _offline_pairs(results, "datacenter", public_id, skipped)}
            p0, p9 = pairs.get("bert-99.0"), pairs.get("bert-99.9")
            if p0 is None or p9 is None:
                data.notes.append(f"{public_id}: lacks an Offline BERT-99.0 or BERT-99.9 pair; left out")
                continue
            e0 = p0.perf.value / p0.power.value
            e9 = p9.perf.value / p9.power.value
            version = p0.perf.version or public_id
            versions.append(version)
            low.append(1.0)
            high.append(e9 / e0)
            data.point(f"BERT-99.0.{version}", 1.0, list(p0.rows))
            data.point(f"BERT-99.9.{version}", e9 / e0, list(p0.rows) + list(p9.rows))
        data.skipped = skipped.reasons
    data.key_values = {
        "BERT-99.0": dict(zip(versions, low, strict=True)),
        "BERT-99.9": dict(zip(versions, high, strict=True)),
    }
    data.series = {"versions": list(versions), "BERT-99.0": list(low), "BERT-99.9": list(high)}
    return data


# --------------------------------------------------------------------------- figs 11a and 11b

RATIO_LABELS = {"efficiency": "Energy Efficiency", "performance": "Performance", "power": "Power"}


def _typed_ratios(name: str, data: FigureData, cause: str) -> tuple[list[str], dict[str, list[float]]]:
    typed = typed_values()[name]
    versions = typed["versions"]
    series = {RATIO_LABELS[k]: typed[k] for k in RATIO_LABELS}
    for source, label in RATIO_LABELS.items():
        for version, value in zip(versions, typed[source], strict=True):
            data.point(f"{label}.{version}", value, [typed_ref(f"{name}.{source}")], (cause,))
    return versions, series


def compute_fig11a(results: Results, mode: str) -> FigureData:
    data = FigureData("fig11a", mode, series={}, key_values={})
    if mode == "paper":
        versions, series = _typed_ratios("fig11a", data, "fig11a-typed-ratios")
    else:
        selection = typed_values()["fig11a"]["corrected"]
        skipped = Skipped()
        chosen = []
        for public_id in selection["submissions"]:
            pairs = [p for p in _offline_pairs(results, "edge", public_id, skipped) if p.model == selection["model"]]
            if len(pairs) != 1:
                raise DataError(f"fig11a: {public_id} has {len(pairs)} Offline {selection['model']} pairs, expected 1")
            chosen.append(pairs[0])
        base = chosen[0]
        versions = [p.perf.version or p.perf.public_id or "?" for p in chosen]
        perf = [p.perf.value / base.perf.value for p in chosen]
        power = [p.power.value / base.power.value for p in chosen]
        efficiency = [a / b for a, b in zip(perf, power, strict=True)]
        series = {"Energy Efficiency": efficiency, "Performance": perf, "Power": power}
        for label, values in series.items():
            for version, value, pair in zip(versions, values, chosen, strict=True):
                data.point(f"{label}.{version}", value, list(pair.rows) + list(base.rows))
        data.skipped = skipped.reasons
    data.key_values = {label: dict(zip(versions, values, strict=True)) for label, values in series.items()}
    data.series = {"versions": list(versions), "values": series, "x_label": "Software Version"}
    return data


def compute_fig11b(results: Results, mode: str) -> FigureData:
    data = FigureData("fig11b", mode, series={}, key_values={})
    if mode == "paper":
        versions, series = _typed_ratios("fig11b", data, "fig11b-proprietary")
    else:
        versions, series = [], {label: [] for label in RATIO_LABELS.values()}
        data.notes.append("the TPU numbers are proprietary and in no public table: nothing to plot in corrected mode")
    data.key_values = {label: dict(zip(versions, values, strict=True)) for label, values in series.items()}
    data.series = {"versions": list(versions), "values": series, "x_label": "Hardware Version"}
    return data


__all__ = [
    "compute_fig1",
    "compute_fig6",
    "compute_fig7",
    "compute_fig9",
    "compute_fig11a",
    "compute_fig11b",
    "replace",
    "Any",
]
