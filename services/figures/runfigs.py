"""Figures of one analyzed run: its power trace, and its efficiency among the public results.

Input is a run's ``documents.jsonl`` (replayed with ``mlpower.runstream.read_documents``) or a
samples Parquet file with the sample columns (``t_utc_s``, ``power_w``, ..., optionally
``mode``). The trace figure shows power over time coloured by measurement mode (ranging,
testing), the phase marks, the LoadGen window (``power_begin``/``power_end`` from LoadGen), the
uncertainty band, the current range in use and the flagged samples. The placement figure puts
the run's efficiency among the public MLPerf Power results of the same benchmark and scenario
(corrected pairing of the public tables).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from mlpower.figures import parse
from mlpower.figures.errors import DataError
from mlpower.figures.figuredata import FigureData
from mlpower.figures.loader import Results
from mlpower.figures.pairing import (
    PERF_UNITS,
    POWER_UNITS,
    TOKENS_UNIT,
    Skipped,
    corrected_model_name,
    corrected_pairs,
    metrics,
)
from mlpower.figures.runpaths import ANALYSIS_FILE, BadRunId, check_run_id
from mlpower.schema import RunSummary, SampleFlag

TRACE_LOOK = {
    "figsize": (12, 5),
    "font_size": 14,
    "mode_colors": {"ranging": "tab:orange", "testing": "tab:blue", None: "tab:grey"},
    "window_color": "gold",
    "window_alpha": 0.25,
    "band_alpha": 0.3,
    "range_color": "tab:green",
    "flag_color": "red",
    "x_label": "Time since run start (s)",
    "y_label": "Power (W)",
    "y2_label": "Current range (A)",
    "sample_marker_size": 2,
    "legend_sample_marker_size": 8,
    "legend_columns": 4,
}
PLACEMENT_LOOK = {
    "figsize": (10, 4),
    "font_size": 14,
    "public_color": "lightblue",
    "run_color": "red",
    "bins": 20,
    "y_label": "Public results",
}
# Public efficiency per run efficiency unit: how a public pair's numbers become that unit.
PUBLIC_PERF_UNITS = PERF_UNITS | {TOKENS_UNIT}
PUBLIC_EFFICIENCY = {"samples/J": "perf_per_power", "J/token": "power_per_perf"}


@dataclass
class RunTrace:
    run_id: str
    benchmark: str = ""
    scenario: str = ""
    t0_utc_s: float = 0.0
    samples: pl.DataFrame = field(default_factory=pl.DataFrame)
    marks: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""


def load_documents(path: Path) -> RunTrace:
    from mlpower.errors import InputError
    from mlpower.runview import RunView

    try:
        view = RunView.read_documents(Path(path))
    except InputError as exc:
        raise DataError(str(exc)) from exc
    if view.start is None:
        raise DataError(f"{path}: no run.start document")
    if not view.has_samples:
        raise DataError(f"{path}: the run has no sample pages")
    marks = [{"name": m.name, "mode": m.mode, "t_utc_s": m.t_utc_s, "source": m.source} for m in view.marks]
    samples = pl.DataFrame(view.sample_columns(), infer_schema_length=None)
    start, status = view.start, view.stop.status if view.stop else ""
    return RunTrace(start.run_id, start.benchmark, start.scenario, start.t_utc_s, samples, marks, status)


def load_samples_parquet(path: Path, *, run_id: str = "", benchmark: str = "", scenario: str = "") -> RunTrace:
    try:
        samples = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"{path}: not a readable samples Parquet file: {exc}") from exc
    missing = {"t_utc_s", "power_w"} - set(samples.columns)
    if missing:
        raise DataError(f"{path}: lacks column(s) {', '.join(sorted(missing))}")
    t0 = float(samples["t_utc_s"].min()) if samples.height else 0.0  # type: ignore[arg-type]
    return RunTrace(run_id or Path(path).stem, benchmark, scenario, t0, samples)


def trace_figure(trace: RunTrace, look: dict[str, Any] = TRACE_LOOK) -> Any:
    """Power against time with modes, phases, the LoadGen window, uncertainty, ranges and flags.

    The legend (below the plot, off the data) names every line, band and marker drawn, those on
    the current-range axis too."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from mlpower.figures import draw  # noqa: F401 - selects the Agg backend

    figure = Figure(figsize=look["figsize"], layout="constrained")
    ax = figure.add_subplot()
    s = trace.samples
    t = (s["t_utc_s"] - trace.t0_utc_s).to_numpy()
    power = s["power_w"].cast(pl.Float64).to_numpy()
    modes = s["mode"].to_list() if "mode" in s.columns else [None] * s.height
    proxies = {}  # the samples' legend markers, larger than the samples themselves
    for mode in dict.fromkeys(modes):
        mask = [m == mode for m in modes]
        color, label = look["mode_colors"].get(mode, "black"), f"{mode or 'unlabelled'} samples"
        ax.plot(t[mask], power[mask], ".", markersize=look["sample_marker_size"], color=color, label=label)
        proxies[label] = Line2D(
            [], [], marker=".", linestyle="", color=color, markersize=look["legend_sample_marker_size"], label=label
        )
    if "uncertainty_w" in s.columns:
        u = s["uncertainty_w"].cast(pl.Float64).fill_null(0.0).to_numpy()
        ax.fill_between(t, power - u, power + u, alpha=look["band_alpha"], color="grey", label="uncertainty")
    if "flags" in s.columns:
        bad = (s["flags"].cast(pl.Int64).to_numpy() & int(SampleFlag.OVERRANGE | SampleFlag.MISSING)) != 0
        if bad.any():
            ax.plot(t[bad], power[bad], "x", color=look["flag_color"], label="flagged (overrange/missing)")
    for begin, end, label in _windows(trace.marks, "power_begin", "power_end", source="loadgen"):
        ax.axvspan(
            begin - trace.t0_utc_s,
            end - trace.t0_utc_s,
            color=look["window_color"],
            alpha=look["window_alpha"],
            label=label,
        )
    for mode in ("ranging", "testing"):
        for begin, _end, _label in _windows(trace.marks, f"{mode}_begin", f"{mode}_end"):
            ax.axvline(
                begin - trace.t0_utc_s, color=look["mode_colors"][mode], linestyle="--", label=f"{mode} phase begins"
            )
    handles = list(ax.get_legend_handles_labels()[0])
    if "current_range_a" in s.columns:
        twin = ax.twinx()
        twin.step(
            t,
            s["current_range_a"].cast(pl.Float64).to_numpy(),
            where="post",
            color=look["range_color"],
            label="current range",
        )
        twin.set_ylabel(look["y2_label"])
        handles += twin.get_legend_handles_labels()[0]
    ax.set_xlabel(look["x_label"])
    ax.set_ylabel(look["y_label"])
    ax.set_title(f"{trace.run_id} {trace.benchmark} {trace.scenario}".strip())
    unique = {str(h.get_label()): proxies.get(str(h.get_label())) or h for h in handles}  # one entry per label
    figure.legend(
        handles=list(unique.values()), loc="outside lower center", ncol=look["legend_columns"], fontsize="small"
    )
    return figure


def _windows(
    marks: list[dict[str, Any]], begin: str, end: str, source: str | None = None
) -> list[tuple[float, float, str]]:
    out = []
    opened: dict[Any, float] = {}
    for mark in sorted(marks, key=lambda m: m["t_utc_s"]):
        if source is not None and mark["source"] != source:
            continue
        if mark["name"] == begin:
            opened[mark["mode"]] = mark["t_utc_s"]
        elif mark["name"] == end and mark["mode"] in opened:
            out.append((opened.pop(mark["mode"]), mark["t_utc_s"], f"LoadGen window ({mark['mode'] or 'run'})"))
    return out


def public_efficiencies(results: Results, benchmark: str, scenario: str, efficiency_unit: str) -> FigureData:
    """The public results' efficiencies for one benchmark and scenario, with their rows."""
    data = FigureData("placement", "corrected", series={}, key_values={})
    how = PUBLIC_EFFICIENCY.get(efficiency_unit)
    if how is None:
        data.notes.append(f"no public counterpart for efficiency in {efficiency_unit or 'unknown units'}")
        return data
    wanted = corrected_model_name(benchmark) or ""
    skipped = Skipped()
    values: list[float] = []
    for table in ("datacenter", "edge"):
        rows = [
            m
            for m in metrics(
                results.inference(table),
                model=corrected_model_name,
                value=lambda text, where: parse.corrected_number(text),
            )
            if (m.scenario or "").replace(" ", "").lower() == scenario.replace(" ", "").lower() and m.value is not None
        ]
        pairs = corrected_pairs(
            rows,
            lambda m: m.unit in PUBLIC_PERF_UNITS,
            lambda m: m.unit in POWER_UNITS,
            skipped,
            bare_targets=table == "datacenter",
        )
        for pair in pairs:
            name = pair.model or ""
            if not (name == wanted or (wanted.startswith(name) and name)):
                continue
            if (pair.perf.unit == TOKENS_UNIT) != (efficiency_unit == "J/token"):
                continue
            perf, power = pair.perf.value, pair.power.value
            if not perf or not power:
                continue
            value = perf / power if how == "perf_per_power" else power / perf
            data.point(f"{pair.perf.public_id}:{pair.perf.line}", value, list(pair.rows))
            values.append(value)
    data.series = {"values": values, "benchmark": wanted, "scenario": scenario, "unit": efficiency_unit}
    data.key_values = {"n_public": len(values)}
    return data


def placement_figure(
    public: FigureData, run_efficiency: float, run_label: str, look: dict[str, Any] = PLACEMENT_LOOK
) -> Any:
    from matplotlib.figure import Figure
    from mlpower.figures import draw  # noqa: F401 - selects the Agg backend

    figure = Figure(figsize=look["figsize"], layout="constrained")
    ax = figure.add_subplot()
    values = public.series.get("values", [])
    if values:
        ax.hist(values, bins=look["bins"], color=look["public_color"], label=f"public results (n={len(values)})")
    ax.axvline(run_efficiency, color=look["run_color"], label=run_label)
    unit = public.series.get("unit", "")
    ax.set_xlabel(f"Energy efficiency ({unit})")
    ax.set_ylabel(look["y_label"])
    ax.set_title(f"{public.series.get('benchmark', '')} {public.series.get('scenario', '')}".strip())
    figure.legend(loc="outside right upper")  # beside the histogram, never on its bars
    return figure


def _save(figure: Any, out_dir: Path, stem: str) -> list[Path]:
    from mlpower.figures.render import save_figure

    return save_figure(figure, out_dir, stem)


def read_run_summary(path: Path) -> RunSummary:
    """The RunSummary in a run's analysis file (``compliance.json``); errors name the file, never its content."""
    from pydantic import ValidationError

    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the run's analysis ({exc.strerror or type(exc).__name__})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not JSON") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    summary = document.get("summary") if isinstance(document, dict) else None
    if not isinstance(summary, dict):
        raise DataError(f"{path}: holds no run summary (a 'summary' object)")
    try:
        return RunSummary.model_validate(summary)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise DataError(f"{path}: summary.{where}: {first['msg']}") from None


def render_run_figures(
    documents_path: Path,
    out_dir: Path,
    *,
    summary: RunSummary | None = None,
    analysis: Path | None = None,
    data_dir: Path | None = None,
    results: Results | None = None,
) -> dict[str, Any]:
    """Write ``<run>_trace.{png,svg}`` and, with an efficiency, ``<run>_placement.{png,svg,json}``.

    ``documents_path`` is a ``documents.jsonl`` or a samples ``.parquet`` file. The efficiency is
    the run's own: ``summary`` when the caller has it (a RunAnalyzed event), else the summary in
    ``analysis`` (default: ``compliance.json`` beside the documents). Returns what was written
    and, when a figure could not be made, why.
    """
    from mlpower.figures.render import style_context

    path = Path(documents_path)
    trace = load_samples_parquet(path) if path.suffix == ".parquet" else load_documents(path)
    try:
        check_run_id(trace.run_id)  # it names the files written below
    except BadRunId as exc:
        raise DataError(f"{path}: run id {trace.run_id!r} cannot name a file: {exc}") from None
    source = "the caller"
    if summary is None:
        analysis_path = Path(analysis) if analysis is not None else path.parent / ANALYSIS_FILE
        if analysis is not None or analysis_path.is_file():
            summary = read_run_summary(analysis_path)
            if summary.run_id != trace.run_id:
                raise DataError(f"{analysis_path}: the analysis of run {summary.run_id!r}, not of {trace.run_id!r}")
            source = str(analysis_path)
    if summary is not None and summary.scenario and not trace.scenario:
        trace.scenario = summary.scenario
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {"run_id": trace.run_id, "files": [], "notes": []}
    with style_context(TRACE_LOOK["font_size"]):
        written["files"] += [str(p) for p in _save(trace_figure(trace), out_dir, f"{trace.run_id}_trace")]
    if summary is None:
        written["notes"].append(f"no {ANALYSIS_FILE} beside the documents and no efficiency given: no placement figure")
        return written
    if summary.efficiency is None:
        written["notes"].append(f"the run's summary ({source}) has no efficiency: no placement figure")
        return written
    written["efficiency"] = {"value": summary.efficiency, "unit": summary.efficiency_unit, "from": source}
    if not trace.benchmark:
        written["notes"].append("the run names no benchmark: no placement figure")
        return written
    if results is None:
        from mlpower.figures.loader import load_results
        from mlpower.settings import DEFAULT_DATA_DIR

        results = load_results(Path(data_dir or DEFAULT_DATA_DIR))
    public = public_efficiencies(results, trace.benchmark, summary.scenario or trace.scenario, summary.efficiency_unit)
    public.key_values["run_efficiency"] = summary.efficiency
    public.notes.append(
        f"run efficiency {summary.efficiency:g} {summary.efficiency_unit} from {source} ({summary.method})"
    )
    values = public.series.get("values", [])
    public.key_values["share_of_public_below_run"] = (
        sum(v < summary.efficiency for v in values) / len(values) if values else None
    )
    (out_dir / f"{trace.run_id}_placement.json").write_text(json.dumps(public.to_json(), indent=1) + "\n")
    with style_context(PLACEMENT_LOOK["font_size"]):
        figure = placement_figure(public, summary.efficiency, f"run {trace.run_id}")
        written["files"] += [str(p) for p in _save(figure, out_dir, f"{trace.run_id}_placement")]
    written["files"].append(str(out_dir / f"{trace.run_id}_placement.json"))
    written["notes"] += public.notes
    return written
