"""The checks of the samples and of LoadGen's result over a run view: the MLPerf power rules'
limits (1 Hz, 1 % uncertainty, no overrange, 600 s), coverage of the window, readable inputs,
and the client-server clock offset. Each returns a ``Finding`` with evidence."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
from mlpower.runview import KIND_NAMES, RunView, SampleSource, Window
from mlpower.schema import Finding, SampleFlag

from .coverage import coverage as coverage_of
from .energy import analyze_window
from .findings import (
    CheckOptions,
    Verdicts,
    judged_window,
    loadgen_window,
    required_json,
    required_samples,
    window_evidence,
)

CLOCK_OFFSET_LIMIT_S = 0.4  # PD-TS: client-server clock difference <= 400 ms
UNCERTAINTY_LIMIT = 0.01  # PD-CHK / SPEC: 1.00 % per sample in the testing window
SAMPLE_INTERVAL_S = 1.0  # Go,1000,0,<mark>: one sample per second
SAMPLE_INTERVAL_TOLERANCE_S = 0.1
_AGENT_OFFSET = re.compile(r"clock offset to director ([+-]?\d+(?:\.\d+)?) ms")
_OFFSET_S = re.compile(r"clock_offset_s=([+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?)")


def files_readable(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    # Missing files are results_checksum's business; this rule is about files that are there but damaged.
    tree = view.tree
    if tree is None:
        return v.passed("the run stream reads cleanly (no output tree in this view)")
    problems: list[str] = [e for e in tree.errors.values() if not e.endswith(": missing")]
    for mode in tree.modes.values():
        problems += [e for e in mode.errors.values() if not e.endswith(": missing")]
        problems += list(mode.spl.problems if mode.spl else ())
        problems += list(mode.detail.problems if mode.detail else ())
    if problems:
        return v.failed(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                        problems=problems[:20])
    return v.passed("every file that is present reads cleanly")


def loadgen_valid(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    logs = view.loadgen_logs("testing")
    if logs.detail is None and logs.summary is None and view.tree is None:
        return v.not_applicable(f"LoadGen's logs are not in the run stream ({logs.where})")
    if logs.detail is None and logs.summary is None and "not readable here" in logs.where:
        return v.not_applicable(logs.where)
    validity = (logs.detail.values.get("result_validity") if logs.detail else None) or \
        (logs.summary or {}).get("Result is")
    if validity is None:
        where = view.tree.error_for("run_1/mlperf_log_summary.txt") if view.tree else logs.where
        return v.failed(f"{where}: no LoadGen result validity")
    if str(validity).upper() != "VALID":
        return v.failed(f"LoadGen result is {validity}", file=logs.detail.path if logs.detail else logs.where,
                        reason=logs.detail.values.get("result_invalid_reason") if logs.detail else None)
    return v.passed("LoadGen result is VALID")


def samples_in_window(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    window, source = loadgen_window(view, "testing", options), required_samples(view)
    result = analyze_window(source.samples, window.begin_utc_s, window.end_utc_s, source.interval_s)
    if result.avg_power_w is None:
        return v.failed(f"no usable sample strictly inside the testing power window ({source.where})",
                        file=source.where, samples_in_window=result.samples_in_window,
                        flagged=result.flagged_in_window)
    return v.passed(f"{result.used} usable samples in the testing window ({source.where})", samples=result.used)


def flagged(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    window, source = judged_window(view, options), required_samples(view)
    in_window = source.samples.inside(window.begin_utc_s, window.end_utc_s)
    n_in = int(in_window.sum())
    n_flagged = n_in - int((in_window & source.samples.usable()).sum())
    if n_flagged:
        return v.failed(f"{n_flagged} of {n_in} samples in the testing window are missing, overrange or "
                        "non-positive and are left out of the average", file=source.where, flagged=n_flagged,
                        samples_in_window=n_in, **window_evidence(window))
    return v.passed("no flagged sample in the testing window", file=source.where, **window_evidence(window))


def sample_interval(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    window, source = judged_window(view, options), required_samples(view)
    dt = np.diff(source.samples.t_utc_s[source.samples.inside(window.begin_utc_s, window.end_utc_s)])
    if dt.size == 0:
        if options.live:
            return v.passed("not yet two samples in the testing window", file=source.where)
        return v.failed("fewer than two samples in the testing window: no sampling interval", file=source.where)
    median = float(np.median(dt))
    if abs(median - SAMPLE_INTERVAL_S) > SAMPLE_INTERVAL_TOLERANCE_S:
        return v.failed(f"median sample interval {median:.3f} s, the rule is 1 sample per second",
                        file=source.where, median_interval_s=median)
    return v.passed(f"median sample interval {median:.3f} s", file=source.where, median_interval_s=median)


def coverage(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    """The testing window covered by usable samples, both edges included, and no inner gap over 2 s,
    in every record of the samples the run holds (the stream and run_1/spl.txt)."""
    window = judged_window(view, options)
    sources = view.sample_sources("testing")
    if not sources:
        required_samples(view)
    sources += view.channel_samples()  # each PSU's own record is checked too
    judged = []
    for source in sources:
        # live, an open window changes with every page: its energy is not asked. A closed window is
        # the one the rules and the summary at run.stop judge: computed in full once, reused then.
        found = coverage_of(source.samples, window.begin_utc_s, window.end_utc_s, source.interval_s,
                            energy=not (options.live and window.open))
        problems = []
        if found.short:
            problems.append(f"{source.where} covers {found.ratio:.1%} of the testing window ({found.covered_s:.1f} s "
                            f"of {found.window_s:.1f} s), less than 100 % minus one sample interval "
                            f"({found.interval_s:g} s) at each edge")
        if found.inner_gaps:
            longest = max(found.inner_gaps, key=lambda g: g.seconds)
            problems.append(f"{source.where}: {len(found.inner_gaps)} gap(s) over 2 s between samples, the longest "
                            f"{longest.seconds:.2f} s from {longest.begin_utc_s:.3f}")
        judged.append((source.where, found, problems))
    where, found, problems = next((j for j in judged if j[2]), judged[0])
    if not problems and v.quick_passes:
        return v.passed("")  # live: a pass is the fact only, its evidence is not kept
    evidence = {"file": where, "window_source": window.source, **found.evidence(),
                "records_checked": [w for w, _, _ in judged]}
    if window.open:  # live: the window so far; its end is the latest sample, which covers itself
        evidence["open"] = True
    if problems:
        return v.failed("; ".join(problems), **evidence)
    return v.passed(f"samples cover {found.ratio:.1%} of the testing window ({found.covered_s:.1f} s of "
                    f"{found.window_s:.1f} s; {', '.join(w for w, _, _ in judged)})", **evidence)


def _uncertainty_of(source: SampleSource, window: Window, options: CheckOptions) -> tuple[str | None, dict[str, Any]]:
    """One record's per-sample uncertainty in the window: the problem (None: none) and the evidence."""
    samples = source.samples
    mask = samples.inside(window.begin_utc_s, window.end_utc_s) & samples.usable()
    relative = samples.uncertainty_w[mask] / samples.power_w[mask]
    unknown = int(np.sum(~np.isfinite(relative)))
    worst = float(np.nanmax(relative)) if relative.size and unknown < relative.size else None
    evidence: dict[str, Any] = {"stream": source.where.removeprefix("stream "), "samples": int(mask.sum()),
                                "unknown": unknown, "max_relative": worst, **window_evidence(window)}
    if worst is not None and worst > UNCERTAINTY_LIMIT:
        over = np.flatnonzero(np.nan_to_num(relative) > UNCERTAINTY_LIMIT)
        evidence["first_t_utc_s"] = float(samples.t_utc_s[mask][over[0]])
        return (f"{over.size} sample(s) with uncertainty above 1.00 % in the testing window (worst {worst:.3%})",
                evidence)
    if unknown:
        return f"{unknown} sample(s) in the testing window have no known uncertainty", evidence
    if worst is None and not options.live:
        return "no sample with a known uncertainty in the testing window", evidence
    return None, evidence


def _channel_named(message: str, source: SampleSource, channels: bool) -> str:
    return f"channel {source.where.removeprefix('stream ')}: {message}" if channels else message


def uncertainty(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    """The power stream and, for a SUT measured on several channels, every channel's own stream."""
    stream = view.stream()
    if stream is not None and len(stream.samples):
        window = judged_window(view, options)
        channels = view.channel_samples()
        judged = [(source, *_uncertainty_of(source, window, options)) for source in [stream, *channels]]
        for source, problem, evidence in judged:
            if problem is not None:
                if channels:
                    evidence["channels"] = [s.where.removeprefix("stream ") for s in channels]
                return v.failed(_channel_named(problem, source, source is not stream), **evidence)
        _, _, evidence = judged[0]
        if channels:
            evidence["channels"] = {s.where.removeprefix("stream "): e["max_relative"] for s, _, e in judged[1:]}
        if evidence["max_relative"] is None:
            return v.passed("no usable sample in the testing window yet", **evidence)
        per_channel = f"; every channel within 1.00 % ({len(channels)} channels)" if channels else ""
        return v.passed(f"worst per-sample uncertainty {evidence['max_relative']:.3%}{per_channel}", **evidence)
    ptd_out = view.tree.ptd_out if view.tree is not None else None
    if ptd_out:
        match = re.search(r"Uncertainty: Uncertainty,([^,]+),([^,]+),([^,\s]+)", ptd_out)
        if match:
            worst = float(match.group(3))
            found = {"file": "run_1/ptd_out.txt", "avg": float(match.group(1)), "max_relative": worst}
            if worst < 0 or worst > UNCERTAINTY_LIMIT:
                return v.failed(f"run_1/ptd_out.txt reports a maximum uncertainty of {worst:.3%} in testing",
                                **found)
            return v.passed(f"run_1/ptd_out.txt reports a maximum uncertainty of {worst:.3%}", **found)
    return v.not_applicable("no per-sample uncertainty in this run (no documents.jsonl, no Uncertainty in "
                            "run_1/ptd_out.txt)")


def overrange(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    """No overrange sample in the power stream, nor in any channel's own stream."""
    stream = view.stream()
    if stream is None:
        return v.not_applicable("spl.txt carries no overrange flag and the run has no documents.jsonl")
    window = judged_window(view, options)
    channels = view.channel_samples()
    for source in [*channels, stream]:  # a channel names where the overrange is
        samples = source.samples
        mask = samples.inside(window.begin_utc_s, window.end_utc_s) & \
            ((samples.flags & int(SampleFlag.OVERRANGE)) != 0)
        name = source.where.removeprefix("stream ")
        if mask.any():
            return v.failed(_channel_named(f"{int(mask.sum())} overrange sample(s) in the testing window", source,
                                           source is not stream), stream=name,
                            first_t_utc_s=float(samples.t_utc_s[mask][0]), count=int(mask.sum()),
                            **window_evidence(window))
    extra = {"channels": [s.where.removeprefix("stream ") for s in channels]} if channels else {}
    return v.passed("no overrange sample in the testing window" + (" on any channel" if channels else ""),
                    stream=stream.where.removeprefix("stream "), **extra, **window_evidence(window))


IMBALANCE_MIN_SHARE = 0.2
"""A channel carrying less than this fraction of an equal share (total / channels) is reported."""


def channel_imbalance(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    """Informative: a PSU that carries almost nothing, or is dead, while its siblings carry the SUT.
    Redundant supplies share the load about evenly; far from that, a supply or its cable is suspect."""
    channels = view.channel_samples()
    if not channels:
        return v.not_applicable("the SUT is measured on one channel: no channels to compare")
    window = judged_window(view, options)
    averages: dict[str, float | None] = {}
    for source in channels:
        used = source.samples.inside(window.begin_utc_s, window.end_utc_s) & source.samples.usable()
        averages[source.where.removeprefix("stream ")] = float(source.samples.power_w[used].mean()) \
            if used.any() else None
    known = [p for p in averages.values() if p is not None]
    total = sum(known)
    if total <= 0:
        return v.failed("no channel carries power in the testing window", averages_w=averages,
                        **window_evidence(window))
    equal = total / len(channels)
    shares = {name: (p / total if p is not None else None) for name, p in averages.items()}
    weak = [name for name, p in averages.items() if p is None or p < IMBALANCE_MIN_SHARE * equal]
    evidence = {"averages_w": averages, "shares": shares, "min_share_of_equal": IMBALANCE_MIN_SHARE,
                **window_evidence(window)}
    if weak:
        return v.failed(f"channel(s) {', '.join(weak)} carry less than {IMBALANCE_MIN_SHARE:.0%} of an equal share "
                        f"of the SUT's {total:.1f} W (a dead or idle power supply?)", weak=weak, **evidence)
    return v.passed("channel shares " + ", ".join(f"{n} {s:.0%}" for n, s in shares.items() if s is not None),
                    **evidence)


def clock_offset_in(text: str) -> float | None:
    """A clock offset (seconds) stated in a mark or phase detail: the agent's ``clock offset to
    director +12.3 ms`` or ``clock_offset_s=0.0123`` (also as a JSON key)."""
    match = _AGENT_OFFSET.search(text)
    if match:
        return float(match.group(1)) / 1000.0
    match = _OFFSET_S.search(text)
    if match:
        return float(match.group(1))
    if text.startswith("{"):
        try:
            value = json.loads(text).get("clock_offset_s")
            return float(value) if value is not None else None
        except (ValueError, AttributeError, TypeError, RecursionError):
            return None
    return None


def recorded_clock_offsets(view: RunView) -> list[tuple[float, str]]:
    """The clock offsets the run stream records: run.start's settings and the marks' details."""
    found: list[tuple[float, str]] = []
    offset = view.settings.get("clock_offset_s")
    if isinstance(offset, int | float):
        found.append((float(offset), "run.start settings"))
    for mark in view.marks:
        value = clock_offset_in(mark.detail)
        if value is not None:
            found.append((value, f"mark {mark.name}"))
    return found


def _client_offsets(client: dict[str, Any]) -> list[tuple[float, str]]:
    found = []
    for message in client.get("messages") or []:
        if message.get("cmd") != "time":
            continue
        try:
            remote = float(message["reply"])
            offset = max(abs(float(message["cmd_time"]) - remote), abs(float(message["reply_time"]) - remote))
        except (KeyError, TypeError, ValueError):
            continue
        found.append((offset, "power/client.json"))
    return found


def clock_offset(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    if view.client_side:
        offsets, where = _client_offsets(required_json(view, "client")), "power/client.json"
        if not offsets:
            return v.failed("clock offset unknown: power/client.json records no readable 'time' exchange",
                            file=where)
    else:
        offsets, where = recorded_clock_offsets(view), "the run stream"
        if not offsets:
            return v.not_applicable(
                f"{KIND_NAMES[view.kind]}: no clock offset is recorded in this run (a power-dev client records its "
                "own in client.json; a bus-mode agent states it in its phase events, watched live)")
    worst, source = max(((abs(o), s) for o, s in offsets), key=lambda item: item[0])
    if worst > CLOCK_OFFSET_LIMIT_S:
        return v.failed(f"client-server clock difference {worst:.3f} s exceeds {CLOCK_OFFSET_LIMIT_S} s "
                        f"({source})", file=where, max_offset_s=worst)
    return v.passed(f"client-server clock difference at most {worst:.3f} s ({where})", file=where,
                    max_offset_s=worst)


def min_duration(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    window = loadgen_window(view, "testing", options)
    declared = "" if view.compliant_durations else " (the run declared non-compliant durations)"
    if window.seconds < options.min_duration_s:
        return v.failed(f"testing window {window.seconds:.1f} s is shorter than {options.min_duration_s:.0f} s"
                        + declared, window_s=window.seconds, min_duration_s=options.min_duration_s)
    return v.passed(f"testing window {window.seconds:.1f} s", window_s=window.seconds)

