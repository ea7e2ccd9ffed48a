"""Output trees built exactly in the formats of power-dev-protocol.md §3-§4, for the checker's tests.

``build_tree`` writes a session folder that passes every rule (a 610 s testing window, steady
power, PTD-shaped JSON and logs); tests then alter one thing per rule. ``rehash`` re-records the
result hashes after an alteration, so that only the rule under test fails.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
from mlpower.ptdformat import format_ptd_time
from mlpower.runstream import RunStream
from mlpower.schema import SampleFlag, SourceInfo

RESULT_FILES = (
    "power/client.log", "power/ptd_logs.txt", "power/server.log",
    "ranging/mlperf_log_detail.txt", "ranging/mlperf_log_summary.txt", "ranging/spl.txt",
    "run_1/mlperf_log_detail.txt", "run_1/mlperf_log_summary.txt", "run_1/spl.txt",
)
SOURCES = {"lib/client.py": "1" * 40, "lib/common.py": "2" * 40, "lib/server.py": "3" * 40}
GO_REPLY = "Starting untimed measurement, maximum 500000 samples at 1000ms with 0 rampup samples"


@dataclasses.dataclass
class TreeSpec:
    sid: str = "2026-11-28_18-47-18_test"
    t0_utc_s: float = 1_795_891_000.0
    window_s: float = 610.0
    ranging_power_w: float = 250.0
    testing_power_w: float = 250.0
    noise_w: float = 0.5
    uncertainty_w: float = 0.6
    ptdaemon: bool = True
    scenario: str = "Offline"
    performance: float = 1234.5
    query_count: int = 760_000
    seed: int = 1


def stamp(t_utc_s: float) -> str:
    return format_ptd_time(t_utc_s)


@dataclasses.dataclass
class ModeTimes:
    phases: list[float]  # the four phase wall times
    power_begin: float
    power_end: float
    sample_times: list[float]


def mode_times(start: float, window_s: float) -> ModeTimes:
    p1 = start + 10.0
    begin = p1 + 1.25
    end = begin + window_s
    p2, p3 = end + 1.0, end + 11.0
    return ModeTimes([start, p1, p2, p3], begin, end, list(np.arange(p1 + 0.5, p3, 1.0)))


def detail_log(spec: TreeSpec, times: ModeTimes) -> str:
    def line(key: str, value: object) -> str:
        return ":::MLLOG " + json.dumps({"key": key, "value": value, "time_ms": 1.0, "namespace": "mlperf::logging",
                                         "event_type": "POINT_IN_TIME", "metadata": {"file": "loadgen.cc"}})
    result_key = {"Offline": "result_samples_per_second", "Server": "result_completed_samples_per_sec",
                  "SingleStream": "result_90.00_percentile_latency_ns",
                  "MultiStream": "result_99.00_percentile_per_query_latency_ns"}[spec.scenario]
    return "\n".join([
        line("effective_scenario", spec.scenario), line("effective_test_mode", "PerformanceOnly"),
        line("power_begin", stamp(times.power_begin)), line("power_end", stamp(times.power_end)),
        line("result_validity", "VALID"), line("result_query_count", spec.query_count),
        line(result_key, spec.performance),
    ]) + "\n"


def summary_log(spec: TreeSpec) -> str:
    return ("================================================\nMLPerf Results Summary\n"
            "================================================\n"
            f"SUT name : test\nScenario : {spec.scenario}\nMode     : PerformanceOnly\n"
            f"Samples per second: {spec.performance}\nResult is : VALID\n")


def powers(spec: TreeSpec, level: float, n: int, salt: int) -> np.ndarray:
    rng = np.random.default_rng(spec.seed * 100 + salt)
    return level + rng.normal(0.0, spec.noise_w, n)


def spl_text(spec: TreeSpec, mode: str, times: ModeTimes, watts: np.ndarray) -> str:
    lines = [f"Time,{stamp(t)},Watts,{w:.6f},Volts,230.000000,Amps,{w / 230 / 0.98:.6f},PF,0.980000,"
             f"Mark,{spec.sid}_{mode}" for t, w in zip(times.sample_times, watts, strict=True)]
    return "\n".join(lines) + "\n\n"


def messages(times: dict[str, ModeTimes]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []

    def add(cmd: str, reply: str, t: float) -> None:
        out.append({"cmd": cmd, "cmd_time": t, "reply": reply, "reply_time": t + 0.02})

    r, s = times["ranging"], times["testing"]
    add("mlcommons/power client v3", "mlcommons/power server v3", r.phases[0] - 5)
    add("time", "", r.phases[0] - 4)
    add("new,test,a5ef12e1-217e-4064-9d19-0ddfcee5e4ed", "OK sid,3bb4a5fd-fcef-475b-aefe-17ffa12409a0", r.phases[0] - 3)
    for mode, tm in (("ranging", r), ("testing", s)):
        add("time", "", tm.phases[0] - 1)
        add(f"session,sid,start,{mode}", "OK", tm.phases[0])
        add("time", "", tm.phases[1] + 0.01)
        add("time", "", tm.phases[2] - 0.05)
        add(f"session,sid,stop,{mode}", "OK", tm.phases[2])
        add("time", "", tm.phases[3] + 0.01)
    for message in out:
        if message["cmd"] == "time":
            message["reply"] = repr(float(message["cmd_time"]) + 0.01)  # type: ignore[arg-type]
    return out


def ptd_messages(spec: TreeSpec) -> list[dict[str, str]]:
    sid = spec.sid
    pairs = [
        ("Hello", "Hello, PTDaemon here!"),
        ("Identify", "YokogawaWT310,1000,1,1,1,1,0,0,1,version=1.11.1-82175bac-20240910,OS=Linux,mode=power,1,1,1,"
                     "0,0,no_cal_date,YOKOGAWA;WT310;C2QM12345;F1.03"),
        ("RR", "Ranges,1,1.000000,1,300.000000"),
        ("SR,V,Auto", "Range V changed"), ("SR,A,Auto", "Range A changed"), ("SR,A,Auto", "Range A changed"),
        (f"Go,1000,0,{sid}_ranging", GO_REPLY), ("Stop", "Stopping untimed measurement"),
        ("RL,*,*", "Invalid number of parameters"), ("RL", "Last 633 samples"),
        ("Uncertainty", "Uncertainty,-1.0,10000000.000000,0.000000,633,0,0,633"),
        ("Watts", "Watts,250.0,248.0,252.0,633,0,633"),
        ("SR,V,230.000000", "Range V changed"), ("SR,A,1.2210000000000001", "Range A changed"),
        (f"Go,1000,0,{sid}_testing", GO_REPLY),
        ("Watts", "Watts,250.0,248.0,252.0,633,0,633"), ("Uncertainty", "Uncertainty,0.0024,0.0023,0.0026,633,0,633,0"),
        ("Stop", "Stopping untimed measurement"), ("RL,*,*", "Invalid number of parameters"),
        ("RL", "Last 633 samples"), ("Uncertainty", "Uncertainty,0.0024,0.0023,0.0026,633,0,633,0"),
        ("Watts", "Watts,250.0,248.0,252.0,633,0,633"),
        ("SR,V,Auto", "Range V changed"), ("SR,A,Auto", "Range A changed"),
    ]
    return [{"cmd": c, "reply": r} for c, r in pairs]


def ptd_logs(spec: TreeSpec, times: dict[str, ModeTimes]) -> str:
    r, s = times["ranging"], times["testing"]
    lines = ["Analyzer 1", "SPEC PTDaemon Tool", "Version 1.11.1-82175bac-20240910",
             f"{stamp(r.phases[0] - 30)}: Uncertainty checking for YokogawaWT310 is activated",
             f"{stamp(r.phases[0] - 29)}: Connected to YokogawaWT310 successfully",
             f"{stamp(r.phases[1])}: Go with mark '{spec.sid}_ranging'",
             f"{stamp(r.phases[1] + 2)}: ERROR: Can't evaluate uncertainty of this sample!",
             f"{stamp(r.phases[3])}: Completed test",
             f"{stamp(s.phases[1])}: Go with mark '{spec.sid}_testing'",
             f"{stamp(s.phases[3])}: Completed test"]
    return "\n".join(lines) + "\n"


def sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def write_json(path: Path, data: dict[str, object]) -> None:
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")


def rehash(session: Path) -> None:
    """Record the files as they are now in both JSONs (client: its files; server: the rest)."""
    for side in ("client", "server"):
        path = session / "power" / f"{side}.json"
        data = json.loads(path.read_text())
        mine = [f for f in RESULT_FILES if (f.startswith("power/client") or "mlperf_log" in f) == (side == "client")]
        data["results"] = {f: sha1(session / f) for f in mine if (session / f).exists()}
        write_json(path, data)


def edit_json(session: Path, side: str, change) -> None:  # type: ignore[no-untyped-def]
    path = session / "power" / f"{side}.json"
    data = json.loads(path.read_text())
    change(data)
    write_json(path, data)


def write_documents(session: Path, spec: TreeSpec, times: dict[str, ModeTimes], watts: dict[str, np.ndarray]) -> None:
    """mlpower's own run stream beside the tree (what the director writes as documents.jsonl)."""
    stream = RunStream(None, dict(run_id=spec.sid, lab="lab", sut="sut", analyzer="wt310e", scenario=spec.scenario,
                                  t_utc_s=times["ranging"].phases[0]), log_path=session / "documents.jsonl")
    stream.descriptor(stream="wt310e-1", sample_interval_s=1.0,
                      source=SourceInfo(kind="wt310e", model="WT310E", serial="C2QM12345"))
    for mode in ("ranging", "testing"):
        tm, w = times[mode], watts[mode]
        flags = [int(SampleFlag.AUTO_RANGE) if mode == "ranging" else 0] * len(w)
        for lo in range(0, len(w), 100):
            hi = min(lo + 100, len(w))
            stream.page("wt310e-1", mode=mode, t_utc_s=tm.sample_times[lo:hi], power_w=list(w[lo:hi]),
                        voltage_v=[230.0] * (hi - lo), current_a=list(w[lo:hi] / 230 / 0.98),
                        power_factor=[0.98] * (hi - lo), voltage_range_v=[300.0] * (hi - lo),
                        current_range_a=[2.0] * (hi - lo), uncertainty_w=[spec.uncertainty_w] * (hi - lo),
                        flags=flags[lo:hi])
        stream.mark("power_begin", mode=mode, t_utc_s=tm.power_begin, source="loadgen")
        stream.mark("power_end", mode=mode, t_utc_s=tm.power_end, source="loadgen")
    stream.stop("success", t_utc_s=times["testing"].phases[3], output_dir=str(session))


def build_tree(base: Path, spec: TreeSpec | None = None) -> Path:
    spec = spec or TreeSpec()
    session = base / spec.sid
    for folder in ("power", "ranging", "run_1"):
        (session / folder).mkdir(parents=True, exist_ok=True)
    ranging = mode_times(spec.t0_utc_s, spec.window_s)
    testing = mode_times(ranging.phases[3] + 1.0, spec.window_s)
    times = {"ranging": ranging, "testing": testing}
    watts = {"ranging": powers(spec, spec.ranging_power_w, len(ranging.sample_times), 1),
             "testing": powers(spec, spec.testing_power_w, len(testing.sample_times), 2)}
    for mode, folder in (("ranging", "ranging"), ("testing", "run_1")):
        (session / folder / "mlperf_log_detail.txt").write_text(detail_log(spec, times[mode]))
        (session / folder / "mlperf_log_summary.txt").write_text(summary_log(spec))
        (session / folder / "spl.txt").write_text(spl_text(spec, mode, times[mode], watts[mode]))
    (session / "run_1" / "ptd_out.txt").write_text(
        "Analyzer 1:\nPower: Watts,250.0,248.0,252.0,633,0,633 \n"
        "Uncertainty: Uncertainty,0.0024,0.0023,0.0026,633,0,633,0\n" if spec.ptdaemon else "")
    (session / "power" / "ptd_logs.txt").write_text(ptd_logs(spec, times) if spec.ptdaemon else "")
    (session / "power" / "client.log").write_text("client 2026-11-28 18:47:18,000 [INFO] started\n")
    (session / "power" / "server.log").write_text("ptd-server 2026-11-28 18:47:18,000 [INFO] started\n")
    if not spec.ptdaemon:
        (session / "run_1" / "ptd_out.txt").unlink()
        write_documents(session, spec, times, watts)
    phases = {mode: [[t, t - spec.t0_utc_s] for t in tm.phases] for mode, tm in times.items()}
    common = {"version": "1.0", "timezone": 0, "modules": {}, "sources": SOURCES, "messages": messages(times),
              "uuid": {"client": "a5ef12e1-217e-4064-9d19-0ddfcee5e4ed",
                       "server": "3bb4a5fd-fcef-475b-aefe-17ffa12409a0"},
              "session_name": spec.sid, "results": {}, "phases": phases}
    write_json(session / "power" / "client.json", {**common, "ptd_config": [None]})
    server_phases = {mode: [[t + 0.05, m] for t, m in entries] for mode, entries in phases.items()}
    ptd_config = [{"command": ["ptd", "-l", "log", "-p", "8888", "49", "/dev/usbtmc0"], "device_type": 49,
                   "interface_flag": "", "dc_flag": None, "device_port": "/dev/usbtmc0", "channel": None}]
    write_json(session / "power" / "server.json", {
        **common, "phases": server_phases,
        "ptd_messages": ptd_messages(spec) if spec.ptdaemon else [],
        "ptd_config": ptd_config if spec.ptdaemon else [None]})
    rehash(session)
    return session
