"""The compliance rules, declared once: the 11 checks of power-dev's ``compliance/check.py``
(power-dev-protocol.md §5.2, in order; check 6 is split into its four separate tests) followed
by the other limits of the MLPerf power rules (mlperf-power-rules.md).

Each rule is one row: an id, the rule it enforces with its source, a severity, whether it only
applies to PTDaemon runs, and a check function returning a ``Finding`` with evidence. A rule
that cannot apply says ``not_applicable`` with the reason; it never passes by default.
"""

from __future__ import annotations

import hashlib
import math
import re
import statistics
import uuid as uuid_lib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from mlpower.schema import Finding, SampleFlag

from .energy import Samples, analyze_window, inside
from .errors import AnalyticsError
from .loadgen import parse_stamp, require_window
from .run_tree import REQUIRED_PATHS, ModeDir, RunTree
from .summary import RunDocuments

# Limits, with their sources.
TIME_DELTA_TOLERANCE_S = 0.8  # PD-CHK TIME_DELTA_TOLERANCE (800 ms, after power-dev#320)
DST_WORKAROUND_S = 3600.0  # PD-CHK accepts LoadGen markers one hour ahead
RANGING_TESTING_POWER_DELTA_PCT = -5.0  # PD-CHK: testing avg may not be more than 5 % below ranging
DURATION_WARNING_RATIO = 0.5  # PD-CHK: testing more than 50 % shorter than ranging -> warning
CLOCK_OFFSET_LIMIT_S = 0.4  # PD-TS: client-server clock difference <= 400 ms
UNCERTAINTY_LIMIT = 0.01  # PD-CHK / SPEC: 1.00 % per sample in the testing window
SAMPLE_INTERVAL_S = 1.0  # Go,1000,0,<mark>: one sample per second
SAMPLE_INTERVAL_TOLERANCE_S = 0.1
MIN_DURATION_S = 600.0  # SUBCHK TEST_DURATION_MS = 600000
PTD_VERSIONS = ("1.11.1",)
PTD_MODELS = (
    "YokogawaWT210", "YokogawaWT500", "YokogawaWT500_multichannel", "YokogawaWT310", "YokogawaWT310E",
    "YokogawaWT330", "YokogawaWT330E", "YokogawaWT330_multichannel", "YokogawaWT210_DC", "YokogawaWT310_DC",
    "YokogawaWT330_DC",
)
PTD_DEVICE_TYPES = (8, 35, 48, 49, 52, 77, 508, 549, 586)
GO_REPLY = "Starting untimed measurement, maximum 500000 samples at 1000ms with 0 rampup samples"
RESULT_PATHS = tuple(p for p in REQUIRED_PATHS if p not in ("power/client.json", "power/server.json"))
_PTD_STAMP = re.compile(r"^(\d\d-\d\d-\d{4} \d\d:\d\d:\d\d\.\d+)(.*)$")
_UNCERTAINTY_WARNING = re.compile(r"Uncertainty \d+.\d+%,? (which is )?above 1.00% limit")
_ACCEPTED_RANGING_ERRORS = (
    "Can't evaluate uncertainty of this sample!", "Bad watts reading nan from ", "Bad amps reading nan from ",
    "Bad pf reading nan from ", "Bad volts reading nan from ", "Current appears to be too high for set range",
)


@dataclass(frozen=True)
class CheckOptions:
    sources_checksums: tuple[dict[str, str], ...] | None = None  # entries of sources_checksums.json
    min_duration_s: float = MIN_DURATION_S


class Verdicts:
    """Finding makers bound to one rule, so a check function only says what it found."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def _make(self, status: str, message: str, severity: str | None = None, **evidence: Any) -> Finding:
        return Finding(rule=self.rule.id, severity=severity or self.rule.severity, status=status,
                       message=message, evidence=evidence)

    def passed(self, message: str, **evidence: Any) -> Finding:
        return self._make("pass", message, **evidence)

    def failed(self, message: str, **evidence: Any) -> Finding:
        return self._make("fail", message, **evidence)

    def warned(self, message: str, **evidence: Any) -> Finding:
        """An accepted problem: listed for the audit, does not fail the run."""
        return self._make("fail", message, severity="warning", **evidence)

    def not_applicable(self, reason: str, **evidence: Any) -> Finding:
        return self._make("not_applicable", reason, severity="info", **evidence)


CheckFn = Callable[[RunTree, CheckOptions, Verdicts], Finding]


@dataclass(frozen=True)
class Rule:
    id: str
    enforces: str
    severity: Literal["error", "warning"]
    check: CheckFn
    ptdaemon_only: bool = False


class _Missing(AnalyticsError):
    """A check needs a part of the tree that could not be read: the finding names it."""


def _json(tree: RunTree, side: str) -> dict[str, Any]:
    data = tree.client if side == "client" else tree.server
    if data is None:
        raise _Missing(tree.error_for(f"power/{side}.json"))
    return data


def _window(mode: ModeDir) -> tuple[float, float]:
    if mode.detail is None:
        raise _Missing(mode.errors.get(f"{mode.folder}/mlperf_log_detail.txt", f"{mode.folder}: no detail log"))
    try:
        return require_window(mode.detail)
    except AnalyticsError as exc:
        raise _Missing(str(exc)) from exc


def _spl(mode: ModeDir) -> Samples:
    if mode.spl is None:
        raise _Missing(mode.errors.get(f"{mode.folder}/spl.txt", f"{mode.folder}/spl.txt: missing"))
    return mode.spl.samples


# --------------------------------------------------------------------------- PD-CHK checks 1-11


def _sources(side: str) -> CheckFn:
    def check(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
        if options.sources_checksums is None:
            return v.not_applicable("no reference sources_checksums.json given (mlpower check --sources-checksums)")
        sources = _json(tree, side).get("sources")
        if sources in options.sources_checksums:
            return v.passed(f"{side}.json sources match a known release", files=len(sources or {}))
        known = options.sources_checksums[0] if options.sources_checksums else {}
        differing = sorted(k for k in set(known) | set(sources or {}) if known.get(k) != (sources or {}).get(k))
        return v.failed(f"power/{side}.json sources match no entry of sources_checksums.json",
                        differing_files=differing[:20])
    return check


def _ptd_messages(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    messages = _json(tree, "server").get("ptd_messages") or []
    identify = next((m for m in messages if str(m.get("cmd")) == "Identify"), None)
    if identify is None or not identify.get("reply"):
        return v.failed("no reply to Identify in power/server.json ptd_messages")
    reply = str(identify["reply"])
    model = reply.split(",")[0]
    if model not in PTD_MODELS:
        return v.failed(f"analyzer model {model!r} is not an accepted Yokogawa model", identify=reply)
    version = reply.split("version=", 1)[1].split("-", 1)[0] if "version=" in reply else ""
    if version not in PTD_VERSIONS:
        return v.failed(f"PTDaemon version {version or '?'} is not {', '.join(PTD_VERSIONS)}", identify=reply)
    stops = 0
    for index, message in enumerate(messages):
        cmd, got = str(message.get("cmd", "")), str(message.get("reply", ""))
        expected = None
        if cmd.startswith("SR,A"):
            expected = "Range A changed"
        elif cmd.startswith("SR,V"):
            expected = "Range V changed"
        elif cmd.startswith("Go,1000,"):
            expected = GO_REPLY
        elif cmd == "Stop":
            stops += 1
            expected = "Error: no measurement to stop" if stops == 3 else "Stopping untimed measurement"
        if expected is not None and got != expected:
            return v.failed(f"ptd_messages[{index}] {cmd!r} answered {got!r}, expected {expected!r}",
                            index=index, cmd=cmd, reply=got, expected=expected)
    if len(messages) < 3 or not str(messages[2].get("reply", "")).startswith("Ranges,"):
        return v.failed("ptd_messages[2] is not the RR reply (Ranges,...)",
                        reply=str(messages[2].get("reply")) if len(messages) > 2 else None)
    fields = str(messages[2]["reply"]).split(",")
    if len(fields) < 5:
        return v.failed("the RR reply has fewer than 4 range fields", reply=messages[2]["reply"])

    def initial(flag: str, value: str) -> str:
        try:
            return value if flag == "0" and float(value) > 0 else "Auto"
        except ValueError:
            return "Auto"

    amps, volts = initial(fields[1], fields[2]), initial(fields[3], fields[4])
    sr_a = [str(m.get("cmd")) for m in messages if str(m.get("cmd", "")).startswith("SR,A")]
    sr_v = [str(m.get("cmd")) for m in messages if str(m.get("cmd", "")).startswith("SR,V")]
    if len(sr_a) < 4 or len(sr_v) < 3:
        return v.failed(f"initial ranges not restored: {len(sr_a)} SR,A and {len(sr_v)} SR,V commands "
                        "(at least 4 and 3 needed)", sr_a=sr_a, sr_v=sr_v)
    if f"SR,A,{amps}" not in (sr_a[2], sr_a[3]) or sr_v[2] != f"SR,V,{volts}":
        return v.failed("the initial ranges from RR are not restored by the 3rd/4th SR,A and the 3rd SR,V",
                        initial_amps=amps, initial_volts=volts, sr_a=sr_a, sr_v=sr_v)
    return v.passed(f"{len(messages)} PTD commands and replies as expected", model=model, version=version)


def _uuid(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    client, server = _json(tree, "client").get("uuid") or {}, _json(tree, "server").get("uuid") or {}
    try:
        same = all(uuid_lib.UUID(str(client[k])) == uuid_lib.UUID(str(server[k])) for k in ("client", "server"))
    except (KeyError, ValueError) as exc:
        return v.failed(f"uuid pair unreadable: {exc}", client=client, server=server)
    return v.passed("client and server UUIDs agree", **client) if same else \
        v.failed("client and server UUID pairs differ", client=client, server=server)


def _session_name(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    c, s = _json(tree, "client").get("session_name"), _json(tree, "server").get("session_name")
    return v.passed(f"session {c}") if c == s and c else v.failed("session names differ", client=c, server=s)


def _phase_time_difference(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    client, server = _json(tree, "client").get("phases") or {}, _json(tree, "server").get("phases") or {}
    worst = 0.0
    for mode in sorted(set(client) | set(server)):
        c, s = client.get(mode) or [], server.get(mode) or []
        if len(c) != len(s):
            return v.failed(f"{mode}: client has {len(c)} phases, server {len(s)}", mode=mode)
        for index, (cp, sp) in enumerate(zip(c, s, strict=True)):
            delta = abs(float(cp[0]) - float(sp[0]))
            worst = max(worst, delta)
            if delta > TIME_DELTA_TOLERANCE_S:
                return v.failed(f"{mode} phase {index}: client and server wall times differ by {delta:.3f} s "
                                f"(limit {TIME_DELTA_TOLERANCE_S} s)", mode=mode, phase=index,
                                client_wall=cp[0], server_wall=sp[0], delta_s=delta)
    if not client:
        return v.failed("power/client.json has no phases")
    return v.passed(f"phase wall times agree within {worst:.3f} s", max_delta_s=worst)


def _loadgen_in_phases(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    phases = _json(tree, "client").get("phases") or {}
    for mode in tree.modes.values():
        begin, end = _window(mode)
        walls = phases.get(mode.name) or []
        if len(walls) < 3:
            return v.failed(f"power/client.json has no {mode.name} phases", mode=mode.name)
        low, high = float(walls[1][0]), float(walls[2][0])
        for key, t in (("power_begin", begin), ("power_end", end)):
            if not (low < t < high or low < t - DST_WORKAROUND_S < high):
                # LoadGen writes local time (§6.1): a whole-hour shift that fits means the SUT was not on UTC.
                hours = round(((low + high) / 2 - t) / 3600)
                hint = (f"; shifted by {hours:+d} h it would fit: the SUT's clock was not on UTC (run with TZ=UTC)"
                        if hours and low < t + hours * 3600 < high else "")
                return v.failed(f"{mode.folder}/mlperf_log_detail.txt {key} {t:.3f} lies outside the client's "
                                f"{mode.name} phase ({low:.3f}, {high:.3f}){hint}",
                                file=f"{mode.folder}/mlperf_log_detail.txt", marker=key, marker_utc_s=t,
                                phase_start_utc_s=low, phase_stop_utc_s=high, whole_hours_off=hours or None)
    return v.passed("LoadGen power_begin/power_end lie inside the client's phases")


def _duration_ratio(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    ranging, testing = _window(tree.ranging), _window(tree.testing)
    r, t = ranging[1] - ranging[0], testing[1] - testing[0]
    ratio = (r - t) / r if r > 0 else math.inf
    if ratio > DURATION_WARNING_RATIO:
        return v.warned(f"testing ({t:.1f} s) is more than 50 % shorter than ranging ({r:.1f} s)",
                        ranging_s=r, testing_s=t)
    return v.passed(f"ranging {r:.1f} s, testing {t:.1f} s", ranging_s=r, testing_s=t)


def _checker_average(mode: ModeDir) -> float:
    """The checker's average: Watts > 0 strictly inside the window, rounded to 5 decimals, -1 if none."""
    result = analyze_window(_spl(mode), *_window(mode))
    return round(result.avg_power_w, 5) if result.avg_power_w is not None else -1.0


def _ranging_vs_testing(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    ranging, testing = _checker_average(tree.ranging), _checker_average(tree.testing)
    evidence = {"ranging_avg_power_w": ranging, "testing_avg_power_w": testing}
    if ranging < 0 and testing < 0:
        return v.passed("no samples in either window (as the checker, the samples rule reports this)", **evidence)
    if ranging < 0 or testing < 0:
        return v.failed("one of the two power windows holds no sample", **evidence)
    delta = round((testing / ranging - 1) * 100, 2)
    if delta <= RANGING_TESTING_POWER_DELTA_PCT:
        return v.failed(f"testing average {testing} W is {-delta} % below ranging {ranging} W (limit 5 %)",
                        delta_pct=delta, **evidence)
    return v.passed(f"testing vs ranging average power {delta:+.2f} %", delta_pct=delta, **evidence)


def _messages(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    c, s = _json(tree, "client").get("messages") or [], _json(tree, "server").get("messages") or []
    if len(c) != len(s):
        return v.failed(f"client logged {len(c)} messages, server {len(s)}", client=len(c), server=len(s))
    for index, (cm, sm) in enumerate(zip(c, s, strict=True)):
        if cm.get("cmd") != sm.get("cmd"):
            return v.failed(f"message {index}: commands differ", index=index, client=cm.get("cmd"),
                            server=sm.get("cmd"))
        if cm.get("cmd") != "time" and cm.get("reply") != sm.get("reply"):
            return v.failed(f"message {index} ({cm.get('cmd')}): replies differ", index=index,
                            client=cm.get("reply"), server=sm.get("reply"))
    if not s:
        return v.failed("no client-server messages")
    versions = (str(s[0].get("cmd", "")).rpartition(" v")[2], str(s[0].get("reply", "")).rpartition(" v")[2])
    if not versions[0] or versions[0] != versions[1]:
        return v.failed("client and server protocol versions differ", client=s[0].get("cmd"),
                        server=s[0].get("reply"))
    return v.passed(f"{len(s)} messages agree, protocol v{versions[0]}")


def _sha1_tree(root: Path) -> dict[str, str]:
    hashes = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            hashes[path.relative_to(root).as_posix()] = hashlib.sha1(path.read_bytes()).hexdigest()
    return hashes


def _results_checksum(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    client = _json(tree, "client").get("results") or {}
    server = _json(tree, "server").get("results") or {}
    on_disk = {k: h for k, h in _sha1_tree(tree.root).items() if k in RESULT_PATHS}
    client = {k: h for k, h in client.items() if k in RESULT_PATHS}
    server = {k: h for k, h in server.items() if k in RESULT_PATHS}
    disagree = sorted(k for k in set(client) & set(server) if client[k] != server[k])
    if disagree:
        return v.failed("client and server results hashes differ", files=disagree)
    union = {**client, **server}
    missing = sorted(set(RESULT_PATHS) - set(union) - set(on_disk)) or sorted(set(RESULT_PATHS) - set(on_disk))
    if missing:
        return v.failed(f"required files missing: {', '.join(missing)}", missing=missing)
    changed = sorted(k for k in set(union) | set(on_disk) if union.get(k) != on_disk.get(k))
    if changed:
        return v.failed(f"files differ from the hashes in client/server.json: {', '.join(changed)}",
                        files=changed)
    return v.passed(f"{len(on_disk)} result files match their recorded SHA-1")


def _ptd_logs(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    if tree.ptd_logs is None:
        return v.failed("power/ptd_logs.txt: missing")
    session = _json(tree, "server").get("session_name", "")
    stamped: list[tuple[int, float | None, str]] = []
    for number, line in enumerate(tree.ptd_logs, start=1):
        match = _PTD_STAMP.match(line)
        stamped.append((number, parse_stamp(match.group(1)), match.group(2).strip()) if match
                       else (number, None, line.strip()))
    go_text = f": Go with mark '{session}_ranging'"
    go = next((i for i, (_, t, m) in enumerate(stamped) if t is not None and m == go_text), None)
    done = next((i for i, (_, t, m) in enumerate(stamped) if go is not None and i > go and m == ": Completed test"),
                None)
    if go is None or done is None:
        return v.failed("can not find ranging time in power/ptd_logs.txt (Go with mark ... Completed test)",
                        file="power/ptd_logs.txt", session=session)
    ranging_start, ranging_stop = stamped[go][1], stamped[done][1]
    activation = re.compile(r"Uncertainty checking for Yokogawa\S+ is activated")
    activated = next(((n, t) for n, t, m in stamped if activation.search(m)), None)
    if activated is None or activated[1] is None or activated[1] >= ranging_start:  # type: ignore[operator]
        return v.failed("power/ptd_logs.txt lacks a timestamped 'Uncertainty checking for Yokogawa... is activated' "
                        "line before the ranging Go", file="power/ptd_logs.txt")
    begin, end = _window(tree.testing)
    # PD-CHK's margin is meant as 800 ms but applied in seconds (§5.2 check 9): mlpower applies 0.8 s.
    load_low, load_high = begin + TIME_DELTA_TOLERANCE_S, end - TIME_DELTA_TOLERANCE_S
    for number, t, message in stamped:
        where = {"file": "power/ptd_logs.txt", "line": number, "text": message[:200]}
        if "WARNING:" not in message and "ERROR:" not in message:
            continue
        if t is None:
            return v.failed(f"power/ptd_logs.txt:{number}: WARNING/ERROR line without a timestamp", **where)
        if "WARNING:" in message:
            if load_low < t < load_high:
                if _UNCERTAINTY_WARNING.search(message):
                    return v.failed(f"power/ptd_logs.txt:{number}: uncertainty above 1.00 % inside the testing "
                                    "window", upstream_note="check.py ignores warnings within 800 s of the window "
                                    "edges (unit bug); mlpower uses 0.8 s", **where)
                return v.warned(f"power/ptd_logs.txt:{number}: PTD warning inside the testing window", **where)
            continue
        text = message.split("ERROR:", 1)[1].strip()
        if text == "USB.":
            return v.warned(f"power/ptd_logs.txt:{number}: USB error", **where)
        if not (ranging_start <= t <= ranging_stop):  # type: ignore[operator]
            return v.failed(f"power/ptd_logs.txt:{number}: PTD error outside the ranging run", **where)
        if not text.startswith(_ACCEPTED_RANGING_ERRORS):
            return v.warned(f"power/ptd_logs.txt:{number}: unexpected PTD error during ranging", **where)
    return v.passed("no PTD error or warning that matters", lines=len(stamped))


def _ptd_config(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    config = _json(tree, "server").get("ptd_config")
    if not isinstance(config, list) or not config:
        return v.failed("server.json ptd_config is not a list (pre-2024 servers wrote an object)", ptd_config=config)
    for index, analyzer in enumerate(config):
        device = (analyzer or {}).get("device_type")
        if device not in PTD_DEVICE_TYPES:
            return v.failed(f"analyzer {index + 1}: device type {device} is not accepted", device_type=device)
        if device == 77:
            command = list(analyzer.get("command") or [])
            channel_arg = command[command.index("-c") + 1] if "-c" in command[:-1] else ""
            if len(channel_arg.split(",")) != 2 or len(analyzer.get("channel") or []) != 2:
                return v.failed(f"analyzer {index + 1}: WT330 multichannel needs two channels", command=command)
    return v.passed(f"{len(config)} analyzer(s) of accepted device types",
                    device_types=[(a or {}).get("device_type") for a in config])


def _debug(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    if _json(tree, "server").get("debug"):
        return v.failed("the server ran with MLPP_DEBUG (shortened sleeps)", debug=True)
    return v.passed("debug mode off")


# --------------------------------------------------------------------------- other limits of the rules


def _files_readable(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    # Missing files are results_checksum's business; this rule is about files that are there but damaged.
    problems: list[str] = [e for e in tree.errors.values() if not e.endswith(": missing")]
    for mode in tree.modes.values():
        problems += [e for e in mode.errors.values() if not e.endswith(": missing")]
        problems += list(mode.spl.problems if mode.spl else ())
        problems += list(mode.detail.problems if mode.detail else ())
    if problems:
        return v.failed(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                        problems=problems[:20])
    return v.passed("every file that is present reads cleanly")


def _loadgen_valid(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    mode = tree.testing
    validity = (mode.detail.values.get("result_validity") if mode.detail else None) or \
        (mode.summary or {}).get("Result is")
    if validity is None:
        return v.failed(tree.error_for("run_1/mlperf_log_summary.txt") + ": no LoadGen result validity")
    if str(validity).upper() != "VALID":
        return v.failed(f"LoadGen result is {validity}", file="run_1/mlperf_log_detail.txt",
                        reason=mode.detail.values.get("result_invalid_reason") if mode.detail else None)
    return v.passed("LoadGen result is VALID")


def _samples_in_window(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    result = analyze_window(_spl(tree.testing), *_window(tree.testing))
    if result.avg_power_w is None:
        return v.failed("no usable sample strictly inside run_1's power window", file="run_1/spl.txt",
                        samples_in_window=result.samples_in_window, flagged=result.flagged_in_window)
    return v.passed(f"{result.used} usable samples in the testing window", samples=result.used)


def _flagged(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    result = analyze_window(_spl(tree.testing), *_window(tree.testing))
    if result.flagged_in_window:
        return v.warned(f"{result.flagged_in_window} of {result.samples_in_window} samples in the testing window "
                        "are missing (-1) or non-positive and are left out of the average", file="run_1/spl.txt",
                        flagged=result.flagged_in_window, samples_in_window=result.samples_in_window)
    return v.passed("no flagged sample in the testing window")


def _intervals(tree: RunTree) -> np.ndarray:
    samples = _spl(tree.testing)
    t = samples.t_utc_s[inside(samples, *_window(tree.testing))]
    return np.diff(t)


def _sample_interval(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    dt = _intervals(tree)
    if dt.size == 0:
        return v.failed("fewer than two samples in the testing window: no sampling interval", file="run_1/spl.txt")
    median = float(statistics.median(dt.tolist()))
    if abs(median - SAMPLE_INTERVAL_S) > SAMPLE_INTERVAL_TOLERANCE_S:
        return v.failed(f"median sample interval {median:.3f} s, the rule is 1 sample per second",
                        file="run_1/spl.txt", median_interval_s=median)
    return v.passed(f"median sample interval {median:.3f} s", median_interval_s=median)


def _sample_gaps(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    dt = _intervals(tree)
    gaps = dt[dt > 2 * SAMPLE_INTERVAL_S]
    if gaps.size:
        return v.warned(f"{gaps.size} gap(s) in the testing samples, the longest {float(gaps.max()):.2f} s",
                        file="run_1/spl.txt", gaps=int(gaps.size), longest_s=float(gaps.max()))
    return v.passed("no sample gap over 2 s" if dt.size else "no interval to examine")


def _stream_in_window(tree: RunTree) -> tuple[Samples, str] | None:
    if not tree.documents:
        return None
    run = RunDocuments.of(tree.documents)
    stream = run.power_stream()
    return (run.samples(stream), stream) if stream else None


def _uncertainty(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    begin, end = _window(tree.testing)
    stream = _stream_in_window(tree)
    if stream is not None:
        samples, name = stream
        mask = inside(samples, begin, end) & np.isfinite(samples.power_w) & (samples.power_w > 0)
        relative = samples.uncertainty_w[mask] / samples.power_w[mask]
        unknown = int(np.sum(~np.isfinite(relative)))
        worst = float(np.nanmax(relative)) if relative.size and unknown < relative.size else None
        evidence = {"stream": name, "samples": int(mask.sum()), "unknown": unknown, "max_relative": worst}
        if worst is not None and worst > UNCERTAINTY_LIMIT:
            over = np.flatnonzero(np.nan_to_num(relative) > UNCERTAINTY_LIMIT)
            first = float(samples.t_utc_s[mask][over[0]])
            return v.failed(f"{over.size} sample(s) with uncertainty above 1.00 % in the testing window "
                            f"(worst {worst:.3%})", first_t_utc_s=first, **evidence)
        if unknown:
            return v.failed(f"{unknown} sample(s) in the testing window have no known uncertainty", **evidence)
        if worst is None:
            return v.failed("no sample with a known uncertainty in the testing window", **evidence)
        return v.passed(f"worst per-sample uncertainty {worst:.3%}", **evidence)
    if tree.ptd_out:
        match = re.search(r"Uncertainty: Uncertainty,([^,]+),([^,]+),([^,\s]+)", tree.ptd_out)
        if match:
            worst = float(match.group(3))
            evidence = {"file": "run_1/ptd_out.txt", "avg": float(match.group(1)), "max_relative": worst}
            if worst < 0 or worst > UNCERTAINTY_LIMIT:
                return v.failed(f"run_1/ptd_out.txt reports a maximum uncertainty of {worst:.3%} in testing",
                                **evidence)
            return v.passed(f"run_1/ptd_out.txt reports a maximum uncertainty of {worst:.3%}", **evidence)
    return v.not_applicable("no per-sample uncertainty in this tree (no documents.jsonl, no Uncertainty in "
                            "run_1/ptd_out.txt)")


def _overrange(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    stream = _stream_in_window(tree)
    if stream is None:
        return v.not_applicable("spl.txt carries no overrange flag and the tree has no documents.jsonl")
    samples, name = stream
    mask = inside(samples, *_window(tree.testing)) & ((samples.flags & int(SampleFlag.OVERRANGE)) != 0)
    if mask.any():
        return v.failed(f"{int(mask.sum())} overrange sample(s) in the testing window", stream=name,
                        first_t_utc_s=float(samples.t_utc_s[mask][0]), count=int(mask.sum()))
    return v.passed("no overrange sample in the testing window", stream=name)


def _clock_offset(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    worst = None
    for message in _json(tree, "client").get("messages") or []:
        if message.get("cmd") != "time":
            continue
        try:
            remote = float(message["reply"])
            offset = max(abs(float(message["cmd_time"]) - remote), abs(float(message["reply_time"]) - remote))
        except (KeyError, TypeError, ValueError):
            continue
        worst = offset if worst is None else max(worst, offset)
    if worst is None:
        return v.failed("clock offset unknown: power/client.json records no readable 'time' exchange",
                        file="power/client.json")
    if worst > CLOCK_OFFSET_LIMIT_S:
        return v.failed(f"client-server clock difference {worst:.3f} s exceeds {CLOCK_OFFSET_LIMIT_S} s",
                        file="power/client.json", max_offset_s=worst)
    return v.passed(f"client-server clock difference at most {worst:.3f} s", max_offset_s=worst)


def _min_duration(tree: RunTree, options: CheckOptions, v: Verdicts) -> Finding:
    begin, end = _window(tree.testing)
    if end - begin < options.min_duration_s:
        return v.failed(f"testing window {end - begin:.1f} s is shorter than {options.min_duration_s:.0f} s",
                        window_s=end - begin, min_duration_s=options.min_duration_s)
    return v.passed(f"testing window {end - begin:.1f} s", window_s=end - begin)


RULES: tuple[Rule, ...] = (
    Rule("client_sources_checksum", "PD-CHK 1: client.json sources equal a sources_checksums.json entry", "error",
         _sources("client")),
    Rule("server_sources_checksum", "PD-CHK 2: server.json sources equal a sources_checksums.json entry", "error",
         _sources("server")),
    Rule("ptd_messages", "PD-CHK 3: PTD commands and replies (model, version 1.11.1, replies, range restore)",
         "error", _ptd_messages, ptdaemon_only=True),
    Rule("uuid", "PD-CHK 4: client and server UUID pairs equal", "error", _uuid),
    Rule("session_name", "PD-CHK 5: client and server session names equal", "error", _session_name),
    Rule("phase_time_difference", "PD-CHK 6: client and server phase wall times within 0.8 s", "error",
         _phase_time_difference),
    Rule("loadgen_window_in_phases", "PD-CHK 6: LoadGen power_begin/power_end inside the client's phases", "error",
         _loadgen_in_phases),
    Rule("ranging_testing_duration", "PD-CHK 6: testing not more than 50 % shorter than ranging (warning)",
         "warning", _duration_ratio),
    Rule("ranging_vs_testing_power", "PD-CHK 6: testing average power not more than 5 % below ranging", "error",
         _ranging_vs_testing),
    Rule("client_server_messages", "PD-CHK 7: client and server message lists and protocol versions agree",
         "error", _messages),
    Rule("results_checksum", "PD-CHK 8: SHA-1 of the 9 required result files match client/server.json", "error",
         _results_checksum),
    Rule("ptd_log_messages", "PD-CHK 9: no PTD error outside ranging, no uncertainty warning in the testing window",
         "error", _ptd_logs, ptdaemon_only=True),
    Rule("ptd_config", "PD-CHK 10: accepted PTD device types in server.json ptd_config", "error", _ptd_config,
         ptdaemon_only=True),
    Rule("debug_disabled", "PD-CHK 11: server debug mode off", "error", _debug),
    Rule("files_readable", "input integrity: no truncated or corrupt spl.txt row, JSON or LoadGen line", "error",
         _files_readable),
    Rule("loadgen_result_valid", "SUBCHK: the LoadGen performance result is VALID", "error", _loadgen_valid),
    Rule("samples_in_window", "SUBCHK get_power_metric: at least one sample in run_1's power window", "error",
         _samples_in_window),
    Rule("flagged_samples", "mlpower: flagged samples in the window are counted, never averaged silently",
         "warning", _flagged),
    Rule("sample_interval", "rules: 1 sample per second (Go,1000,0,<mark>)", "error", _sample_interval),
    Rule("sample_gaps", "rules: no gap over 2 s between samples in the testing window (warning)", "warning",
         _sample_gaps),
    Rule("uncertainty", "rules: per-sample uncertainty at most 1.00 % in the testing window", "error", _uncertainty),
    Rule("overrange", "rules: no overrange sample in the testing window", "error", _overrange),
    Rule("clock_offset", "PD-TS: client-server clock difference at most 400 ms", "error", _clock_offset),
    Rule("min_duration", "IP-RULES / SUBCHK: performance run at least 600 s", "error", _min_duration),
)
RULES_BY_ID = {rule.id: rule for rule in RULES}


def run_rule(rule: Rule, tree: RunTree, options: CheckOptions) -> Finding:
    """One rule on one tree: inapplicable PTD rules and unreadable inputs become findings, never exceptions."""
    v = Verdicts(rule)
    if rule.ptdaemon_only:
        used, why = tree.uses_ptdaemon
        if not used:
            return v.not_applicable(f"PTDaemon-only check: {why}")
    try:
        return rule.check(tree, options, v)
    except _Missing as exc:
        return v.failed(str(exc))
    except Exception as exc:  # a check that trips over malformed input fails, as in PD-CHK
        return v.failed(f"unhandled {type(exc).__name__} while checking: {exc}")
