"""The run summary: one pure function of a run's documents, and the same from an output tree.

Every figure says where it comes from: power from the stream's source (analyzer, PTDaemon,
NVML...), performance from LoadGen. Problems that make a figure unknown become findings and
``None`` values, never a guessed number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mlpower.runstream import pages_to_columns, read_documents
from mlpower.schema import (
    Finding,
    PhaseMark,
    RunDocument,
    RunStart,
    RunStop,
    RunSummary,
    SampleFlag,
    SamplePage,
    SourceInfo,
    StreamDescriptor,
)

from . import efficiency as eff
from .energy import METHOD, Samples, WindowResult, analyze_window, mean_power_w
from .errors import AnalyticsError, WindowError
from .loadgen import DetailLog, require_window
from .run_tree import RunTree, read_tree

_POWER_SOURCE_PREFERENCE = ("ptdaemon", "wt310e", "simulator", "merged", "nvml", "rapl")


def describe_source(source: SourceInfo) -> str:
    parts = [source.kind, source.model, f"s/n {source.serial}" if source.serial else ""]
    return " ".join(p for p in parts if p) + f" ({source.tier})"


@dataclass
class RunDocuments:
    """A run's documents sorted out; duplicates (same seq) dropped."""

    start: RunStart | None = None
    descriptors: dict[str, StreamDescriptor] = field(default_factory=dict)
    pages: dict[str, list[SamplePage]] = field(default_factory=dict)
    marks: list[PhaseMark] = field(default_factory=list)
    stop: RunStop | None = None

    @classmethod
    def of(cls, documents: Iterable[RunDocument]) -> RunDocuments:
        run = cls()
        seen: set[int] = set()
        for document in sorted(documents, key=lambda d: d.seq):
            if document.seq in seen:
                continue
            seen.add(document.seq)
            if isinstance(document, RunStart):
                run.start = document
            elif isinstance(document, StreamDescriptor):
                run.descriptors[document.stream] = document
            elif isinstance(document, SamplePage):
                run.pages.setdefault(document.stream, []).append(document)
            elif isinstance(document, PhaseMark):
                run.marks.append(document)
            elif isinstance(document, RunStop):
                run.stop = document
        return run

    @property
    def run_id(self) -> str:
        for doc in (self.start, self.stop):
            if doc is not None:
                return doc.run_id
        return ""

    def power_stream(self) -> str | None:
        """The stream the published figures come from: the most authoritative source with samples."""
        streams = [s for s in self.pages if self.pages[s]]
        if not streams:
            return None

        def rank(stream: str) -> tuple[int, int]:
            descriptor = self.descriptors.get(stream)
            if descriptor is None:
                return (len(_POWER_SOURCE_PREFERENCE), 1)
            official = 0 if descriptor.source.tier == "official" else 1
            kind = descriptor.source.kind
            return (official, _POWER_SOURCE_PREFERENCE.index(kind) if kind in _POWER_SOURCE_PREFERENCE else 99)

        return min(streams, key=rank)

    def samples(self, stream: str) -> Samples:
        return Samples.from_columns(pages_to_columns(sorted(self.pages[stream], key=lambda p: p.page)))

    def window(self, mode: str = "testing") -> tuple[float, float] | None:
        """LoadGen's power window of ``mode`` (marks with source loadgen; the last complete pair)."""
        def last(name: str) -> PhaseMark | None:
            found = [m for m in self.marks if m.name == name and m.source == "loadgen" and m.mode in (mode, None)]
            return found[-1] if found else None

        begin, end = last("power_begin"), last("power_end")
        return (begin.t_utc_s, end.t_utc_s) if begin and end else None

    def idle(self) -> tuple[float, float] | None:
        begins = [m for m in self.marks if m.name == "idle_begin"]
        ends = [m for m in self.marks if m.name == "idle_end"]
        return (begins[-1].t_utc_s, ends[-1].t_utc_s) if begins and ends else None


@dataclass(frozen=True)
class Analysis:
    summary: RunSummary
    findings: tuple[Finding, ...] = ()


def _finding(rule: str, message: str, **evidence: Any) -> Finding:
    return Finding(rule=rule, severity="error", status="fail", message=message, evidence=evidence)


def build_summary(
    run_id: str, *, scenario: str, window: WindowResult | None, power_source: str, perf: eff.Performance | None,
    idle_power_w: float | None = None, compliant_durations: bool = True,
) -> RunSummary:
    perf = perf or eff.Performance(None, "", "loadgen: no logs")
    avg = window.avg_power_w if window else None
    efficiency = eff.efficiency(scenario, avg, window.window_s if window else None, perf)
    return RunSummary(
        run_id=run_id,
        source=f"power: {power_source}; performance: {perf.source}",
        method=METHOD,
        scenario=scenario,
        window_s=window.window_s if window else None,
        avg_power_w=avg,
        avg_power_uncertainty_w=window.avg_power_uncertainty_w if window else None,
        energy_j=window.energy_j if window else None,
        energy_trapezoid_j=window.energy_trapezoid_j if window else None,
        idle_power_w=idle_power_w,
        net_avg_power_w=avg - idle_power_w if avg is not None and idle_power_w is not None else None,
        performance=perf.value,
        performance_unit=perf.unit,
        efficiency=efficiency.value,
        efficiency_unit=efficiency.unit,
        samples_in_window=window.samples_in_window if window else 0,
        flagged_samples_in_window=window.flagged_in_window if window else 0,
        compliant_durations=compliant_durations,
    )


def window_findings(window: WindowResult | None, where: str) -> list[Finding]:
    """What a window result must not hide: no usable sample, flagged samples in the window."""
    if window is None:
        return []
    findings = []
    if window.avg_power_w is None:
        findings.append(_finding("samples_in_window", f"no usable sample strictly inside the power window ({where})",
                                 samples_in_window=window.samples_in_window, flagged=window.flagged_in_window))
    elif window.flagged_in_window:
        findings.append(Finding(
            rule="flagged_samples", severity="warning", status="fail",
            message=f"{window.flagged_in_window} of {window.samples_in_window} samples in the window are "
                    f"OVERRANGE/MISSING/non-positive and were left out of the average ({where})",
            evidence={"flagged": window.flagged_in_window, "samples_in_window": window.samples_in_window}))
    return findings


def analyze_documents(
    documents: Iterable[RunDocument], *, detail: DetailLog | None = None, summary: dict[str, str] | None = None,
) -> Analysis:
    """Summary and the findings that explain its unknowns; never raises for bad run content."""
    run = RunDocuments.of(documents)
    start = run.start
    scenario = (start.scenario if start else "") or (detail.scenario if detail else "")
    findings: list[Finding] = []
    stream = run.power_stream()
    descriptor = run.descriptors.get(stream) if stream else None
    power_source = describe_source(descriptor.source) if descriptor else (stream or "no samples")
    window_bounds = run.window("testing")
    if window_bounds is None and detail is not None and detail.window_s is not None:
        # power-dev mode: LoadGen's markers reach the director only through the client's detail log
        window_bounds = (detail.power_begin_utc_s, detail.power_end_utc_s)  # type: ignore[assignment]
    window = None
    if stream is None:
        findings.append(_finding("samples_in_window", f"run {run.run_id} has no sample pages"))
    elif window_bounds is None:
        findings.append(_finding("loadgen_window", f"run {run.run_id} has no power_begin/power_end marks from "
                                                   "LoadGen: no power window, no average"))
    else:
        try:
            window = analyze_window(run.samples(stream), *window_bounds)
        except WindowError as exc:
            findings.append(_finding("loadgen_window", str(exc), power_begin_utc_s=window_bounds[0],
                                     power_end_utc_s=window_bounds[1]))
    findings += window_findings(window, f"stream {stream}")
    idle_power = None
    idle = run.idle()
    if idle is not None and stream is not None:
        idle_power, _ = mean_power_w(run.samples(stream), *idle)
    perf = eff.performance(scenario, detail.values if detail else {}, summary or {}) if detail or summary else None
    result = build_summary(
        run.run_id, scenario=scenario, window=window, power_source=power_source, perf=perf,
        idle_power_w=idle_power, compliant_durations=start.compliant_durations if start else True,
    )
    return Analysis(result, tuple(findings))


def summarize_documents(documents: Iterable[RunDocument] | Path, **loadgen: Any) -> RunSummary:
    """The strict form: a run without a usable power window raises instead of returning ``None`` figures."""
    docs = read_documents(documents) if isinstance(documents, Path) else documents
    analysis = analyze_documents(docs, **loadgen)
    errors = [f for f in analysis.findings if f.severity == "error"]
    if errors:
        raise WindowError("; ".join(f.message for f in errors))
    return analysis.summary


def power_source_of_tree(tree: RunTree) -> str:
    if tree.server is not None:
        for message in tree.server.get("ptd_messages") or ():
            if str(message.get("cmd", "")).startswith("Identify"):
                return f"ptdaemon {str(message.get('reply', '')).split(',')[0]} (run_1/spl.txt)"
    if tree.documents:
        run = RunDocuments.of(tree.documents)
        stream = run.power_stream()
        if stream in run.descriptors:
            return f"{describe_source(run.descriptors[stream].source)} (run_1/spl.txt)"
    return "run_1/spl.txt"


def analyze_tree(tree: RunTree) -> Analysis:
    """The same computation from an output tree: run_1/spl.txt within run_1's LoadGen window."""
    testing = tree.testing
    findings: list[Finding] = []
    window = None
    if testing.spl is None or testing.detail is None:
        for relative in ("run_1/spl.txt", "run_1/mlperf_log_detail.txt"):
            if relative in testing.errors:
                findings.append(_finding("files_readable", testing.errors[relative], file=relative))
    else:
        try:
            window = analyze_window(testing.spl.samples, *require_window(testing.detail))
        except AnalyticsError as exc:
            findings.append(_finding("loadgen_window", str(exc), file="run_1/mlperf_log_detail.txt"))
        findings += window_findings(window, testing.spl.path)
    run_id = tree.root.name
    start = None
    if tree.documents:
        run = RunDocuments.of(tree.documents)
        start, run_id = run.start, run.run_id or run_id
    scenario = (testing.detail.scenario if testing.detail else "") or (start.scenario if start else "")
    perf = eff.performance(scenario, testing.detail.values if testing.detail else {}, testing.summary or {})
    result = build_summary(run_id, scenario=scenario, window=window, power_source=power_source_of_tree(tree),
                           perf=perf, compliant_durations=(start.compliant_durations if start else True)
                           and tree.compliant_durations)
    return Analysis(result, tuple(findings))


def summarize_tree(path: Path) -> RunSummary:
    """Strict: raises naming the file when the window or the samples cannot give an average."""
    analysis = analyze_tree(read_tree(path))
    errors = [f for f in analysis.findings if f.severity == "error"]
    if errors:
        raise WindowError("; ".join(f.message for f in errors))
    return analysis.summary


def stream_findings(documents: Iterable[RunDocument], *, detail: DetailLog | None = None,
                    uncertainty_limit: float = 0.01) -> list[Finding]:
    """The limits a run stream alone can show, with the rule ids of the compliance table: samples
    in the window, per-sample uncertainty, overrange, and the 1 Hz sampling interval."""
    run = RunDocuments.of(documents)
    stream = run.power_stream()
    bounds = run.window("testing")
    if bounds is None and detail is not None and detail.window_s is not None:
        bounds = (detail.power_begin_utc_s, detail.power_end_utc_s)  # type: ignore[assignment]
    if stream is None or bounds is None:
        return []  # analyze_documents already reports the missing samples or window
    samples = run.samples(stream)
    where = {"stream": stream, "power_begin_utc_s": bounds[0], "power_end_utc_s": bounds[1]}
    in_window = (samples.t_utc_s > bounds[0]) & (samples.t_utc_s < bounds[1])
    usable = in_window & samples.usable()
    findings = []

    def make(rule: str, ok: bool, message: str, **evidence: Any) -> Finding:
        return Finding(rule=rule, severity="error", status="pass" if ok else "fail", message=message,
                       evidence={**where, **evidence})

    findings.append(make("samples_in_window", bool(usable.any()), f"{int(usable.sum())} usable samples in the "
                         "testing window", samples=int(usable.sum()), flagged=int(in_window.sum() - usable.sum())))
    relative = samples.uncertainty_w[usable] / samples.power_w[usable]
    if relative.size:
        unknown = int((~np.isfinite(relative)).sum())
        worst = float(np.nanmax(relative)) if unknown < relative.size else None
        ok = unknown == 0 and worst is not None and worst <= uncertainty_limit
        findings.append(make("uncertainty", ok, f"worst per-sample uncertainty {worst:.3%}" if worst is not None
                             else "no sample with a known uncertainty", max_relative=worst, unknown=unknown))
    overrange = int(((samples.flags & int(SampleFlag.OVERRANGE)) != 0)[in_window].sum())
    findings.append(make("overrange", overrange == 0, f"{overrange} overrange sample(s) in the testing window",
                         count=overrange))
    descriptor = run.descriptors.get(stream)
    if descriptor is not None:
        interval = descriptor.sample_interval_s
        findings.append(make("sample_interval", abs(interval - 1.0) <= 0.1,
                             f"stream sampled every {interval:g} s (the rule is 1 sample per second)",
                             sample_interval_s=interval))
    return findings


def duration_finding(summary: RunSummary, min_duration_s: float) -> Finding | None:
    """The 600 s minimum on a stream's window. A run that declared non-compliant durations
    (``run.start.compliant_durations`` false: a demo or debug run) gets a warning, not an error."""
    if summary.window_s is None:
        return None
    if summary.window_s >= min_duration_s:
        return Finding(rule="min_duration", severity="error", status="pass",
                       message=f"testing window {summary.window_s:.1f} s", evidence={"window_s": summary.window_s})
    declared = not summary.compliant_durations
    return Finding(rule="min_duration", severity="warning" if declared else "error", status="fail",
                   message=f"testing window {summary.window_s:.1f} s is shorter than {min_duration_s:.0f} s"
                           + (" (the run declared non-compliant durations)" if declared else ""),
                   evidence={"window_s": summary.window_s, "min_duration_s": min_duration_s})
