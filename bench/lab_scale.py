"""A lab at scale: N SUT streams on the real RabbitMQ, K analytics replicas with live rules on.

    .venv/bin/python -m bench.lab_scale --suts N --rate-hz R --seconds S --analytics-replicas K
                                        [--page-interval-s 0.5] [--publishers P] [--json FILE] [--path-only]

The streams are stand-ins, not simulators with directors: each is a real ``RunStream`` (the code
path the director publishes with: numbering, routing key with its run shard, publisher confirms)
publishing real ``SamplePage`` documents of R samples per second, a page every
``--page-interval-s`` (default: the director's page interval, 0.5 s; at most the director's 50
samples a page), between LoadGen-style ``power_begin``/``power_end`` marks. Samples are
"read" on a fixed schedule in real time: a sample's ``t_utc_s`` is its read time. The streams run
in ``--publishers`` processes (about 50 streams each). The analytics replicas are K processes
running the real ``AnalyticsService`` on the real bus (run shards, live rules, the run table),
each one told its index of K; they note, for every sample they handle, the time from its read
to its handling (read -> analytics), their CPU time, and every (run, seq) they handled.

Reported (``--json``): samples sent and analysed, lost (sent, never handled) and duplicates
(handled more than once), runs and runs analysed exactly once (one ``RunAnalyzed`` each, whose
summary counts every sample sent), read -> analytics p50/p99, CPU seconds per 1,000 samples for
each process kind (stand-in publishers and analytics replicas once started, so imports do not
count; the broker: its whole process, which other users of the same broker add to), the broker's
peak queue depth (messages ready on the lab's run shards, sampled every 0.2 s) and
``analytics_samples_per_s``: the analytics path
(decode, run view, live rules, and the rules and summary at run.stop) in one process on pre-built
pages of the same shape, samples per CPU second (``--path-only``: that measurement alone, no broker).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from mlpower import topology
from mlpower.director.settings import DirectorSettings
from mlpower.runstream import RunStream
from mlpower.schema import RunDocument, SamplePage, SourceInfo, decode, encode

STANDIN = ("stand-in streams: real RunStream publishing real SamplePage documents (no simulator, no director), "
           "real RabbitMQ, real analytics replicas (mlpower.analytics.service.AnalyticsService in their own processes)")
STREAMS_PER_PUBLISHER = 50
STREAMS_PER_THREAD = 10
DEPTH_POLL_S = 0.2
# The stand-ins page as the real director does by default (its recorder: a page at least every
# page_interval_s or page_max_samples, whichever comes first), so the pages have the real shape.
DIRECTOR_PAGE_INTERVAL_S: float = DirectorSettings.model_fields["page_interval_s"].default
DIRECTOR_PAGE_MAX_SAMPLES: int = DirectorSettings.model_fields["page_max_samples"].default


# --------------------------------------------------------------------------- what a stand-in SUT publishes


def start_fields(lab: str, sut: str, run_id: str, t0_utc_s: float) -> dict[str, Any]:
    return dict(run_id=run_id, lab=lab, sut=sut, analyzer="standin", t_utc_s=t0_utc_s,
                settings={"workload": "builtin:offline", "driver": "bus", "bench": "lab_scale"})


def page_columns(times: list[float], sut_index: int) -> dict[str, Any]:
    n = len(times)
    power = 200.0 + (sut_index % 50)
    return dict(mode="testing", t_utc_s=times, power_w=[power] * n, voltage_v=[230.0] * n, current_a=[power / 230] * n,
                power_factor=[0.99] * n, voltage_range_v=[300.0] * n, current_range_a=[5.0] * n,
                uncertainty_w=[power * 0.004] * n, flags=[0] * n)


class StandIn:
    """One SUT's run: marks around R samples per second, paged every page interval."""

    def __init__(self, bus: Any, lab: str, sut_index: int, run_prefix: str, rate_hz: float, t0_utc_s: float) -> None:
        self.index, self.rate_hz, self.t0_utc_s = sut_index, rate_hz, t0_utc_s
        sut = f"sut{sut_index:04d}"
        self.stream = RunStream(bus, start_fields(lab, sut, f"{run_prefix}-{sut}", t0_utc_s))
        self.stream.descriptor(stream="standin", sample_interval_s=1.0 / rate_hz, source=SourceInfo(kind="simulator"))
        self.stream.mark("testing_begin", mode="testing", t_utc_s=t0_utc_s)
        self.stream.mark("power_begin", mode="testing", t_utc_s=t0_utc_s + 1e-3, source="loadgen")
        self.next_sample = 1  # sample k is read at t0 + k / R

    def publish_until(self, now_utc_s: float, end_utc_s: float) -> int:
        """Page the samples read by now (none after the end)."""
        last = min(now_utc_s, end_utc_s)
        times = []
        while self.t0_utc_s + self.next_sample / self.rate_hz <= last:
            times.append(self.t0_utc_s + self.next_sample / self.rate_hz)
            self.next_sample += 1
        for lo in range(0, len(times), DIRECTOR_PAGE_MAX_SAMPLES):
            self.stream.page("standin", **page_columns(times[lo:lo + DIRECTOR_PAGE_MAX_SAMPLES], self.index))
        return len(times)

    def finish(self, end_utc_s: float) -> None:
        self.stream.mark("power_end", mode="testing", t_utc_s=end_utc_s + 0.5 / self.rate_hz, source="loadgen")
        self.stream.mark("testing_end", mode="testing", t_utc_s=end_utc_s + 1e-3)
        self.stream.stop("success", t_utc_s=end_utc_s + 2e-3)


def prebuilt_run(run_id: str, rate_hz: float, seconds: float, page_interval_s: float, index: int) -> list[bytes]:
    """The documents one stand-in publishes, encoded, as the analytics path receives them."""
    t0 = 1_795_891_000.0
    stream = RunStream(None, start_fields("lab", f"sut{index:04d}", run_id, t0))
    docs: list[RunDocument] = [stream.start]
    docs.append(stream.descriptor(stream="standin", sample_interval_s=1.0 / rate_hz,
                                  source=SourceInfo(kind="simulator")))
    docs.append(stream.mark("testing_begin", mode="testing", t_utc_s=t0))
    docs.append(stream.mark("power_begin", mode="testing", t_utc_s=t0 + 1e-3, source="loadgen"))
    per_page = min(max(1, round(rate_hz * page_interval_s)), DIRECTOR_PAGE_MAX_SAMPLES)
    total = int(rate_hz * seconds)
    for lo in range(1, total + 1, per_page):
        times = [t0 + k / rate_hz for k in range(lo, min(total, lo + per_page - 1) + 1)]
        docs.append(stream.page("standin", **page_columns(times, index)))
    docs.append(stream.mark("power_end", mode="testing", t_utc_s=t0 + seconds + 0.5 / rate_hz, source="loadgen"))
    docs.append(stream.mark("testing_end", mode="testing", t_utc_s=t0 + seconds + 1e-3))
    docs.append(stream.stop("success", t_utc_s=t0 + seconds + 2e-3))
    return [encode(d) for d in docs]


# --------------------------------------------------------------------------- the in-process analytics path


def analytics_path(suts: int, rate_hz: float, seconds: float, page_interval_s: float) -> dict[str, float]:
    """Samples per CPU second of decode + run view + live rules (+ the rules and summary at run.stop),
    over up to 20 runs of the benchmark's shape, their documents interleaved as they arrive."""
    from mlpower.analytics.live import LiveChecker
    from mlpower.analytics.rules import evaluate
    from mlpower.analytics.service import stream_view
    from mlpower.analytics.summary import summarize

    def once(bodies: list[bytes]) -> tuple[int, float, float]:
        samples = 0
        checkers: dict[str, LiveChecker] = {}
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for body in bodies:
            document = decode(body)
            assert isinstance(document, RunDocument)
            live = checkers.get(document.run_id)
            if live is None:
                live = checkers[document.run_id] = LiveChecker(document.run_id)
            live.feed(document)
            if isinstance(document, SamplePage):
                samples += len(document)
            elif document.type == "run.stop":  # type: ignore[attr-defined]
                view = stream_view(live)  # the view the service judges a run on that has no output folder
                evaluate(view)
                summarize(view)
        return samples, time.process_time() - cpu0, time.perf_counter() - wall0

    once(prebuilt_run("warm-up", rate_hz, min(seconds, 30.0), page_interval_s, 0))  # first calls import lazily
    runs = [prebuilt_run(f"path-{i}", rate_hz, seconds, page_interval_s, i) for i in range(min(suts, 20))]
    bodies = [run[k] for k in range(max(len(r) for r in runs)) for run in runs if k < len(run)]
    samples, cpu, wall = min((once(bodies) for _ in range(3)), key=lambda r: r[1])  # the least disturbed of 3
    return {"samples": samples, "runs": len(runs), "cpu_s": cpu, "wall_s": wall, "samples_per_cpu_s": samples / cpu,
            "samples_per_wall_s": samples / wall}


# --------------------------------------------------------------------------- the processes


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve_publisher(args: argparse.Namespace) -> None:
    """A stand-in process: its share of the streams, paged on a fixed schedule from t0. The streams
    are spread over a few threads with a connection each (as every SUT's director has its own), so
    that one broker confirm does not hold up every other stream's page."""
    from mlpower.bus import connect

    t0, end = args.t0_utc_s, args.t0_utc_s + args.seconds
    started_cpu_s = _cpu_s()  # start-up (imports) is not the cost of samples
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def publish(indices: list[int]) -> None:
        bus = connect(os.environ["AMQP_URL"], lab=args.lab, client_name="bench-standins")
        streams = [StandIn(bus, args.lab, i, args.run_prefix, args.rate_hz, t0) for i in indices]  # before t0
        sent, late_s, tick = 0, 0.0, 1
        while True:
            due = t0 + tick * args.page_interval_s
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            else:
                late_s = max(late_s, -wait)
            now = time.time()
            for stream in streams:
                sent += stream.publish_until(now, end)
            if due >= end:
                break
            tick += 1
        for stream in streams:
            stream.finish(end)
        bus.close()
        with lock:
            results.append((sent, late_s))

    indices = list(range(args.first_sut, args.first_sut + args.count))
    groups = [indices[i:i + STREAMS_PER_THREAD] for i in range(0, len(indices), STREAMS_PER_THREAD)]
    threads = [threading.Thread(target=publish, args=(group,)) for group in groups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    Path(args.report).write_text(json.dumps({"samples_sent": sum(r[0] for r in results),
                                             "cpu_s": _cpu_s() - started_cpu_s,
                                             "max_page_tick_late_s": max(r[1] for r in results)}), encoding="utf-8")


def serve_replica(args: argparse.Namespace) -> None:
    """An analytics replica: the real service on the real bus, noting what it handled and when."""
    from mlpower.analytics.service import AnalyticsService
    from mlpower.analytics.settings import AnalyticsSettings
    from mlpower.bus import connect_service
    from mlpower.settings import load_settings

    latencies: list[np.ndarray] = []
    handled: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    class Timed(AnalyticsService):
        def handle_document(self, document: RunDocument, settle: Any = lambda: None) -> None:
            super().handle_document(document, settle)
            if isinstance(document, SamplePage):
                now = time.time()
                with lock:
                    latencies.append(now - np.asarray(document.t_utc_s))
                    handled.append((document.run_id, document.seq, len(document)))

    settings = load_settings(AnalyticsSettings, lab=args.lab, replica=args.replica, replicas=args.replicas,
                             standby_s=args.standby_s, results_dir=Path(args.report).parent,
                             store_path=Path(args.report).with_suffix(".parquet"))
    bus = connect_service(settings, client_name=f"bench-analytics-{args.replica}")
    service = Timed(settings, bus)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service.start()
    started_cpu_s = _cpu_s()  # start-up (imports, connections) is not the cost of samples
    print("replica ready", flush=True)
    stop.wait()
    service.stop()
    bus.close()
    lat = np.concatenate(latencies) if latencies else np.zeros(0)
    np.save(Path(args.report).with_suffix(".npy"), lat)
    Path(args.report).write_text(json.dumps({"cpu_s": _cpu_s() - started_cpu_s, "handled": handled}),
                                 encoding="utf-8")


def broker_pid() -> int | None:
    """The local broker's Erlang VM (beam.smp running rabbit) started first: the system broker, not
    a test's private one started later."""
    found: list[tuple[int, int]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if not stat[stat.index("(") + 1:stat.rindex(")")].startswith("beam.smp"):
                continue
            if b"rabbit" not in (entry / "cmdline").read_bytes():
                continue
        except OSError:
            continue
        found.append((int(stat[stat.rindex(")") + 2:].split()[19]), int(entry.name)))  # starttime, pid
    return min(found)[1] if found else None


def process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process, from /proc; None when it is gone."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the coordinator


def _pct(values: np.ndarray, p: float) -> float | None:
    return float(np.percentile(values, p)) if values.size else None


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from mlpower.rabbitmq import RabbitMQBus
    from mlpower.schema import LiveFinding, RunAnalyzed
    from mlpower.testing import Inbox, ServiceProcess

    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    lab = f"scale{uuid.uuid4().hex[:8]}"
    prefix = f"r{uuid.uuid4().hex[:6]}"
    work = Path(tempfile.mkdtemp(prefix="lab_scale-"))
    bus = RabbitMQBus(amqp_url, client_name="bench-lab-scale", lab=lab)
    shards = [q.name for q in topology.run_shard_queues("analytics", lab)]
    env = {"AMQP_URL": amqp_url, "PYTHONUNBUFFERED": "1"}
    me = [sys.executable, "-m", "bench.lab_scale"]
    replicas: list[ServiceProcess] = []
    publishers: list[subprocess.Popen[bytes]] = []
    load_before = os.getloadavg()
    try:
        for i in range(args.analytics_replicas):
            replicas.append(ServiceProcess("bench.lab_scale", {**env, "LAB_SCALE_ROLE": json.dumps(
                ["replica", lab, i, args.analytics_replicas, str(work / f"replica-{i}.json")])},
                work / f"replica-{i}.log", "replica ready"))
        for spec in topology.run_shard_queues("analytics", lab):
            bus.declare(spec)
        analyzed = Inbox(bus, topology.EVENTS_EXCHANGE, (f"run_analyzed.{lab}.*", f"live_finding.{lab}.*"))
        n_pub = args.publishers or max(1, math.ceil(args.suts / STREAMS_PER_PUBLISHER))
        t0 = time.time() + 8.0 + 0.05 * args.suts  # time to start the processes and their runs before reading
        broker = broker_pid()
        broker0 = process_cpu_s(broker)
        share = [args.suts // n_pub + (1 if i < args.suts % n_pub else 0) for i in range(n_pub)]
        first = 0
        for i, count in enumerate(share):
            argv = [*me, "--role-publisher", "--lab", lab, "--run-prefix", prefix, "--first-sut", str(first), "--count",
                    str(count), "--t0-utc-s", repr(t0), "--seconds", str(args.seconds), "--rate-hz", str(args.rate_hz),
                    "--page-interval-s", str(args.page_interval_s), "--report", str(work / f"publisher-{i}.json")]
            log = open(work / f"publisher-{i}.log", "wb")  # noqa: SIM115 - the child holds it
            publishers.append(subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT))
            first += count
        peak_depth, loads = 0, []
        deadline = t0 + args.seconds + args.drain_s
        while time.time() < deadline:
            depth = sum((bus.queue_depth(q) or (0, 0))[0] for q in shards)
            peak_depth = max(peak_depth, depth)
            loads.append(os.getloadavg()[0])
            done = {m.run_id for m in analyzed.messages if isinstance(m, RunAnalyzed)}
            if len(done) >= args.suts and all(p.poll() is not None for p in publishers):
                break
            time.sleep(DEPTH_POLL_S)
        broker1 = process_cpu_s(broker)
        for p in publishers:
            p.wait(timeout=60)
        for replica in replicas:
            replica.stop()
        analyzed.close()
        pub_reports = [json.loads((work / f"publisher-{i}.json").read_text()) for i in range(n_pub)]
        rep_reports = [json.loads((work / f"replica-{i}.json").read_text()) for i in range(args.analytics_replicas)]
        latencies = np.concatenate([np.load(work / f"replica-{i}.npy") for i in range(args.analytics_replicas)])
    finally:
        for p in publishers:
            if p.poll() is None:
                p.kill()
        for replica in replicas:
            replica.kill()
        from mlpower.analytics.service import lab_events_queue

        # the benchmark's lab leaves nothing behind on the broker
        for name in (*shards, lab_events_queue(lab).name, topology.dead_letter_queue(lab)):
            bus.delete_queue(name)
        bus.close()

    sent = sum(r["samples_sent"] for r in pub_reports)
    seen: dict[tuple[str, int], int] = {}
    samples_of: dict[tuple[str, int], int] = {}
    for report in rep_reports:
        for run_id, seq, n in report["handled"]:
            seen[(run_id, seq)] = seen.get((run_id, seq), 0) + 1
            samples_of[(run_id, seq)] = n
    analyzed_samples = sum(samples_of.values())
    duplicates = sum((count - 1) * samples_of[key] for key, count in seen.items())
    results = [m for m in analyzed.messages if isinstance(m, RunAnalyzed)]
    per_run: dict[str, list[RunAnalyzed]] = {}
    for message in results:
        per_run.setdefault(message.run_id, []).append(message)
    expected = int(args.rate_hz * args.seconds)
    once = sum(1 for msgs in per_run.values() if len(msgs) == 1 and msgs[0].summary.samples_in_window == expected)
    findings: dict[str, int] = {}
    for message in analyzed.messages:
        if isinstance(message, LiveFinding):
            findings[message.finding.rule] = findings.get(message.finding.rule, 0) + 1
    pub_cpu = sum(r["cpu_s"] for r in pub_reports)
    rep_cpu = sum(r["cpu_s"] for r in rep_reports)
    broker_cpu = broker1 - broker0 if broker0 is not None and broker1 is not None else None
    path = analytics_path(args.suts, args.rate_hz, args.seconds, args.page_interval_s)

    def per_k(cpu: float | None) -> float | None:
        return round(cpu / sent * 1000, 5) if cpu is not None and sent else None

    return {
        "what": STANDIN,
        "suts": args.suts, "rate_hz": args.rate_hz, "seconds": args.seconds, "page_interval_s": args.page_interval_s,
        "analytics_replicas": args.analytics_replicas, "publisher_processes": n_pub, "run_shards": topology.RUN_SHARDS,
        "samples_sent": sent, "samples_analyzed": analyzed_samples, "lost": sent - analyzed_samples,
        "duplicates": duplicates, "runs": args.suts, "runs_analyzed": len(per_run), "runs_analyzed_once": once,
        "p50_read_to_analytics_s": _pct(latencies, 50), "p99_read_to_analytics_s": _pct(latencies, 99),
        "max_read_to_analytics_s": float(latencies.max()) if latencies.size else None,
        "cpu_s_per_1000_samples": {"standin_publishers": per_k(pub_cpu), "analytics_replicas": per_k(rep_cpu),
                                   "broker": per_k(broker_cpu)},
        "cpu_s": {"standin_publishers": pub_cpu, "analytics_replicas": rep_cpu, "broker": broker_cpu,
                  "per_replica": [r["cpu_s"] for r in rep_reports]},
        "broker_peak_queue_depth": peak_depth,
        "publisher_max_tick_late_s": max(r["max_page_tick_late_s"] for r in pub_reports),
        "analytics_samples_per_s": round(path["samples_per_cpu_s"]),
        "analytics_path": path,
        "live_findings": findings,
        "load_average_1min": {"before": load_before[0], "max_during": max(loads) if loads else None},
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    role = os.environ.pop("LAB_SCALE_ROLE", "")
    if role:
        _, lab, replica, replicas, report = json.loads(role)
        serve_replica(argparse.Namespace(lab=lab, replica=replica, replicas=replicas, report=report, standby_s=5.0))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suts", type=int, default=10)
    parser.add_argument("--rate-hz", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--analytics-replicas", type=int, default=2)
    parser.add_argument("--page-interval-s", type=float, default=DIRECTOR_PAGE_INTERVAL_S,
                        help="a page every this often (default: the director's, %(default)s s)")
    parser.add_argument("--publishers", type=int, default=0, help="stand-in processes (0: one per 50 streams)")
    parser.add_argument("--drain-s", type=float, default=60.0, help="how long to wait for the last analyses")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--path-only", action="store_true",
                        help="measure only the in-process analytics path (no broker, no processes)")
    # a stand-in publisher process (started by the coordinator)
    parser.add_argument("--role-publisher", action="store_true", help=argparse.SUPPRESS)
    for name, kind in (("--lab", str), ("--run-prefix", str), ("--first-sut", int), ("--count", int),
                       ("--t0-utc-s", float), ("--report", str)):
        parser.add_argument(name, type=kind, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role_publisher:
        serve_publisher(args)
        return
    if args.path_only:
        path = analytics_path(args.suts, args.rate_hz, args.seconds, args.page_interval_s)
        result = {"suts": args.suts, "rate_hz": args.rate_hz, "seconds": args.seconds,
                  "page_interval_s": args.page_interval_s, "analytics_samples_per_s": round(path["samples_per_cpu_s"]),
                  "analytics_path": path, "load_average_1min": os.getloadavg()[0],
                  "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    else:
        result = measure(args)
    text = json.dumps(result, indent=2)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
