"""The checks of power-dev's ``compliance/check.py`` (power-dev-protocol.md §5.2) over a run view:
``client.json`` against ``server.json``, the PTD conversation and logs, the result hashes.
Each returns a ``Finding`` with evidence; rules.py says which kinds of run each applies to."""

from __future__ import annotations

import hashlib
import math
import re
import uuid as uuid_lib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpower.loadgen_log import parse_stamp
from mlpower.runtree import REQUIRED_PATHS
from mlpower.runview import RunView
from mlpower.schema import Finding

from .energy import analyze_window
from .findings import CheckOptions, Missing, Verdicts, loadgen_window, required_json, required_samples

TIME_DELTA_TOLERANCE_S = 0.8  # PD-CHK TIME_DELTA_TOLERANCE (800 ms, after power-dev#320)
DST_WORKAROUND_S = 3600.0  # PD-CHK accepts LoadGen markers one hour ahead
RANGING_TESTING_POWER_DELTA_PCT = -5.0  # PD-CHK: testing avg may not be more than 5 % below ranging
DURATION_WARNING_RATIO = 0.5  # PD-CHK: testing more than 50 % shorter than ranging -> warning
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

CheckFn = Callable[[RunView, CheckOptions, Verdicts], Finding]


def sources(side: str) -> CheckFn:
    """PD-CHK 1/2: a side's ``sources`` equal an entry of the reference sources_checksums.json."""
    def check(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
        if options.sources_checksums is None:
            return v.not_applicable("no reference sources_checksums.json given (mlpower check --sources-checksums)")
        found = required_json(view, side).get("sources")
        if found in options.sources_checksums:
            return v.passed(f"{side}.json sources match a known release", files=len(found or {}))
        known = options.sources_checksums[0] if options.sources_checksums else {}
        differing = sorted(k for k in set(known) | set(found or {}) if known.get(k) != (found or {}).get(k))
        return v.failed(f"power/{side}.json sources match no entry of sources_checksums.json",
                        differing_files=differing[:20])
    return check


def analyzer_sequences(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``ptd_messages`` per analyzer: power-dev lists analyzer 1's exchanges, then analyzer 2's
    (§3.5), each beginning with its ``Hello``; one analyzer's list is one sequence."""
    sequences: list[list[dict[str, Any]]] = []
    for message in messages:
        if str(message.get("cmd")) == "Hello" or not sequences:
            sequences.append([])
        sequences[-1].append(message)
    return sequences or [[]]


def ptd_messages(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    """Each analyzer's sequence on its own (with several analyzers, the 'third Stop' and the range
    restore of PD-CHK 3 are about one PTDaemon's exchange, not the concatenation of several)."""
    sequences = analyzer_sequences(required_json(view, "server").get("ptd_messages") or [])
    passed: Finding | None = None
    for number, messages in enumerate(sequences, start=1):
        finding = _ptd_sequence(messages, v)
        if finding.status != "pass":
            if len(sequences) > 1:
                return v.failed(f"analyzer {number}: {finding.message}", analyzer=number, **finding.evidence)
            return finding
        passed = passed or finding
    assert passed is not None
    if len(sequences) > 1:
        return v.passed(f"{len(sequences)} analyzers, each with its PTD commands and replies as expected",
                        analyzers=len(sequences), **passed.evidence)
    return passed


def _ptd_sequence(messages: list[dict[str, Any]], v: Verdicts) -> Finding:
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


def uuid(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    client = required_json(view, "client").get("uuid") or {}
    server = required_json(view, "server").get("uuid") or {}
    try:
        same = all(uuid_lib.UUID(str(client[k])) == uuid_lib.UUID(str(server[k])) for k in ("client", "server"))
    except (KeyError, ValueError) as exc:
        return v.failed(f"uuid pair unreadable: {exc}", client=client, server=server)
    return v.passed("client and server UUIDs agree", **client) if same else \
        v.failed("client and server UUID pairs differ", client=client, server=server)


def session_name(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    c, s = required_json(view, "client").get("session_name"), required_json(view, "server").get("session_name")
    return v.passed(f"session {c}") if c == s and c else v.failed("session names differ", client=c, server=s)


def phase_time_difference(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    client = required_json(view, "client").get("phases") or {}
    server = required_json(view, "server").get("phases") or {}
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


def loadgen_in_phases(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    phases = required_json(view, "client").get("phases") or {}
    for mode, folder in (("ranging", "ranging"), ("testing", "run_1")):
        window = loadgen_window(view, mode, options)
        walls = phases.get(mode) or []
        if len(walls) < 3:
            return v.failed(f"power/client.json has no {mode} phases", mode=mode)
        low, high = float(walls[1][0]), float(walls[2][0])
        for key, t in (("power_begin", window.begin_utc_s), ("power_end", window.end_utc_s)):
            if not (low < t < high or low < t - DST_WORKAROUND_S < high):
                # LoadGen writes local time (§6.1): a whole-hour shift that fits means the SUT was not on UTC.
                hours = round(((low + high) / 2 - t) / 3600)
                hint = (f"; shifted by {hours:+d} h it would fit: the SUT's clock was not on UTC (run with TZ=UTC)"
                        if hours and low < t + hours * 3600 < high else "")
                return v.failed(f"{folder}/mlperf_log_detail.txt {key} {t:.3f} lies outside the client's "
                                f"{mode} phase ({low:.3f}, {high:.3f}){hint}",
                                file=f"{folder}/mlperf_log_detail.txt", marker=key, marker_utc_s=t,
                                phase_start_utc_s=low, phase_stop_utc_s=high, whole_hours_off=hours or None)
    return v.passed("LoadGen power_begin/power_end lie inside the client's phases")


def duration_ratio(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    r = loadgen_window(view, "ranging", options).seconds
    t = loadgen_window(view, "testing", options).seconds
    ratio = (r - t) / r if r > 0 else math.inf
    if ratio > DURATION_WARNING_RATIO:
        return v.failed(f"testing ({t:.1f} s) is more than 50 % shorter than ranging ({r:.1f} s)",
                        ranging_s=r, testing_s=t)
    return v.passed(f"ranging {r:.1f} s, testing {t:.1f} s", ranging_s=r, testing_s=t)


def _checker_average(view: RunView, mode: str, options: CheckOptions) -> float:
    """The checker's average: Watts > 0 strictly inside the window, rounded to 5 decimals, -1 if none."""
    window, source = loadgen_window(view, mode, options), required_samples(view, mode)
    result = analyze_window(source.samples, window.begin_utc_s, window.end_utc_s, source.interval_s)
    return round(result.avg_power_w, 5) if result.avg_power_w is not None else -1.0


def ranging_vs_testing(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    ranging, testing = _checker_average(view, "ranging", options), _checker_average(view, "testing", options)
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


def messages(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    c = required_json(view, "client").get("messages") or []
    s = required_json(view, "server").get("messages") or []
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


def results_checksum(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    client = required_json(view, "client").get("results") or {}
    server = required_json(view, "server").get("results") or {}
    assert view.tree is not None  # required_json found the files in a tree
    on_disk = {k: h for k, h in _sha1_tree(view.tree.root).items() if k in RESULT_PATHS}
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


def _ptd_log_problems(view: RunView, options: CheckOptions) -> tuple[list[tuple[str, str, dict[str, Any]]], int]:
    """PD-CHK 9's reading of power/ptd_logs.txt: (severity, message, where) per line that matters,
    in file order, and the number of timestamped lines. Missing when the log cannot be judged."""
    logs = view.tree.ptd_logs if view.tree is not None else None
    if logs is None:
        raise Missing("power/ptd_logs.txt: missing")
    session = required_json(view, "server").get("session_name", "")
    stamped: list[tuple[int, float | None, str]] = []
    for number, line in enumerate(logs, start=1):
        match = _PTD_STAMP.match(line)
        stamped.append((number, parse_stamp(match.group(1)), match.group(2).strip()) if match
                       else (number, None, line.strip()))
    go_text = f": Go with mark '{session}_ranging'"
    go = next((i for i, (_, t, m) in enumerate(stamped) if t is not None and m == go_text), None)
    done = next((i for i, (_, t, m) in enumerate(stamped) if go is not None and i > go and m == ": Completed test"),
                None)
    if go is None or done is None:
        raise Missing(f"can not find ranging time in power/ptd_logs.txt (Go with mark '{session}_ranging' ... "
                      "Completed test)")
    ranging_start, ranging_stop = stamped[go][1], stamped[done][1]
    activation = re.compile(r"Uncertainty checking for Yokogawa\S+ is activated")
    activated = next(((n, t) for n, t, m in stamped if activation.search(m)), None)
    found: list[tuple[str, str, dict[str, Any]]] = []
    if activated is None or activated[1] is None or activated[1] >= ranging_start:  # type: ignore[operator]
        found.append(("error", "power/ptd_logs.txt lacks a timestamped 'Uncertainty checking for Yokogawa... is "
                               "activated' line before the ranging Go", {"file": "power/ptd_logs.txt"}))
    window = loadgen_window(view, "testing", options)
    # PD-CHK's margin is meant as 800 ms but applied in seconds (§5.2 check 9): mlpower applies 0.8 s.
    load_low, load_high = window.begin_utc_s + TIME_DELTA_TOLERANCE_S, window.end_utc_s - TIME_DELTA_TOLERANCE_S
    for number, t, message in stamped:
        where = {"file": "power/ptd_logs.txt", "line": number, "text": message[:200]}
        if "WARNING:" not in message and "ERROR:" not in message:
            continue
        at = f"power/ptd_logs.txt:{number}"
        if t is None:
            found.append(("error", f"{at}: WARNING/ERROR line without a timestamp", where))
        elif "WARNING:" in message:
            if load_low < t < load_high:
                if _UNCERTAINTY_WARNING.search(message):
                    found.append(("error", f"{at}: uncertainty above 1.00 % inside the testing window",
                                  {**where, "upstream_note": "check.py ignores warnings within 800 s of the window "
                                                             "edges (unit bug); mlpower uses 0.8 s"}))
                else:
                    found.append(("warning", f"{at}: PTD warning inside the testing window", where))
        else:
            text = message.split("ERROR:", 1)[1].strip()
            if text == "USB.":
                found.append(("warning", f"{at}: USB error", where))
            elif not (ranging_start <= t <= ranging_stop):  # type: ignore[operator]
                found.append(("error", f"{at}: PTD error outside the ranging run", where))
            elif not text.startswith(_ACCEPTED_RANGING_ERRORS):
                found.append(("warning", f"{at}: unexpected PTD error during ranging", where))
    return found, sum(1 for _, t, _ in stamped if t is not None)


def ptd_logs(severity: str) -> CheckFn:
    """PD-CHK 9, split by the severity power-dev gives each kind of line: its errors fail the run,
    its warnings are listed for the audit."""
    def check(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
        found, lines = _ptd_log_problems(view, options)
        mine = [(message, where) for level, message, where in found if level == severity]
        if mine:
            message, where = mine[0]
            more = f" (and {len(mine) - 1} more)" if len(mine) > 1 else ""
            return v.failed(message + more, **where, count=len(mine))
        return v.passed(f"no PTD {severity} that matters", lines=lines)
    return check


def ptd_config(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    config = required_json(view, "server").get("ptd_config")
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


def debug(view: RunView, options: CheckOptions, v: Verdicts) -> Finding:
    """PD-CHK 11 on server.json; a view without one (the stream alone) reads run.start's settings."""
    if view.server is not None:
        on, where = bool(view.server.get("debug")), "power/server.json"
    elif "debug" in view.settings:
        on, where = bool(view.settings["debug"]), "run.start settings"
    else:
        required_json(view, "server")
        raise AssertionError("unreachable")
    if on:
        return v.failed(f"the server ran with MLPP_DEBUG (shortened sleeps), says {where}", debug=True)
    return v.passed(f"debug mode off ({where})")
