"""The run summary: one pure function of a run view (its stream, its tree, or both).

Every figure says where it comes from: power from the stream's source (analyzer, PTDaemon,
NVML...) or ``spl.txt``, performance from LoadGen. A figure that cannot be known is ``None``
(the rules say why), never a guessed number. Energy covers the measured time only, with the
coverage beside it.
"""

from __future__ import annotations

from mlpower.runview import RunView, describe_source
from mlpower.schema import ChannelSummary, RunSummary

from . import efficiency as eff
from .energy import METHOD, WindowResult, analyze_window, mean_power_w
from .errors import WindowError


def testing_window_result(view: RunView) -> WindowResult | None:
    """Average, energy and coverage over LoadGen's testing window, when the view has both."""
    window, source = view.loadgen_window("testing"), view.samples("testing")
    if window is None or source is None:
        return None
    try:
        return analyze_window(source.samples, window.begin_utc_s, window.end_utc_s, source.interval_s)
    except WindowError:
        return None  # an empty or reversed window: the rules name it


def summarize(view: RunView) -> RunSummary:
    window = testing_window_result(view)
    logs = view.loadgen_logs("testing")
    scenario = view.scenario
    perf = eff.performance(scenario, logs.detail.values if logs.detail else {}, logs.summary or {}) \
        if logs.detail or logs.summary else eff.Performance(None, "", "loadgen: no logs")
    avg = window.avg_power_w if window else None
    efficiency = eff.efficiency(scenario, avg, window.window_s if window else None, perf)
    idle_power = None
    stream = view.stream()
    idle = view.idle_window()
    if idle is not None and stream is not None:
        idle_power, _ = mean_power_w(stream.samples, *idle)
    covered = window.coverage if window else None
    return RunSummary(
        run_id=view.run_id,
        source=f"power: {view.power_source()}; performance: {perf.source}",
        method=METHOD,
        scenario=scenario,
        window_s=window.window_s if window else None,
        avg_power_w=avg,
        avg_power_uncertainty_w=window.avg_power_uncertainty_w if window else None,
        energy_j=window.energy_j if window else None,
        energy_trapezoid_j=window.energy_trapezoid_j if window else None,
        covered_s=covered.covered_s if covered else None,
        coverage_ratio=covered.ratio if covered else None,
        idle_power_w=idle_power,
        net_avg_power_w=avg - idle_power if avg is not None and idle_power is not None else None,
        performance=perf.value,
        performance_unit=perf.unit,
        efficiency=efficiency.value,
        efficiency_unit=efficiency.unit,
        samples_in_window=window.samples_in_window if window else 0,
        flagged_samples_in_window=window.flagged_in_window if window else 0,
        compliant_durations=view.compliant_durations,
        channels=channel_summaries(view),
    )


def channel_summaries(view: RunView) -> tuple[ChannelSummary, ...]:
    """Per channel: average, uncertainty, energy and coverage over the same LoadGen window as the total."""
    window = view.loadgen_window("testing")
    if window is None:
        return ()
    results = []
    for source in view.channel_samples():
        try:
            results.append((source, analyze_window(source.samples, window.begin_utc_s, window.end_utc_s,
                                                   source.interval_s)))
        except WindowError:
            return ()
    total = sum(r.avg_power_w for _, r in results if r.avg_power_w is not None)
    return tuple(ChannelSummary(
        name=source.where.removeprefix("stream "), source=_describe(view, source.where.removeprefix("stream ")),
        avg_power_w=r.avg_power_w, avg_power_uncertainty_w=r.avg_power_uncertainty_w, energy_j=r.energy_j,
        coverage_ratio=r.coverage.ratio, samples_in_window=r.samples_in_window,
        flagged_samples_in_window=r.flagged_in_window,
        share=r.avg_power_w / total if r.avg_power_w is not None and total > 0 else None) for source, r in results)


def _describe(view: RunView, stream: str) -> str:
    descriptor = view.descriptors.get(stream)
    return describe_source(descriptor.source) if descriptor is not None else f"stream {stream}"
