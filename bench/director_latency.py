"""Director latency: sampling jitter at 100 ms, and sample read -> /metrics and -> RabbitMQ.

Runs the WT310E simulator (SCPI over TCP, real pyvisa driver), a director with its HTTP API and a
RabbitMQ bus, and a 100 ms ranging phase. The analyzer source is wrapped to note when each
reading returned from the driver; a scraper polls ``/metrics`` over HTTP as fast as it can and a
RabbitMQ consumer receives the run's pages. Latency of sample k = the moment it was first seen
(``samples_total`` reached k in a scrape response, or its page arrived) minus its read time.

    .venv/bin/python -m bench.director_latency [--seconds 10] [--page-samples 1]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from mlpower import topology
from mlpower.analyzer_sim.simulator import start_simulator
from mlpower.bus import connect
from mlpower.director.service import DirectorService
from mlpower.director.settings import DirectorSettings
from mlpower.director.sources import open_source
from mlpower.schema import SamplePage
from mlpower.settings import load_settings


class TimedSource:
    """Wraps a source: remembers the wall time at which each reading returned from the driver."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.read_at: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read_sample(self) -> Any:
        reading = self._inner.read_sample()
        self.read_at.append(time.time())
        return reading


def _stats_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))] * 1000

    return {"n": len(values), "mean_ms": statistics.fmean(values) * 1000, "p50_ms": pct(0.5), "p95_ms": pct(0.95),
            "p99_ms": pct(0.99), "max_ms": ordered[-1] * 1000}


def run(seconds: float, page_samples: int, amqp_url: str) -> dict[str, Any]:
    sim = start_simulator(port=0, load="constant:250", seed=0)
    results = Path(tempfile.mkdtemp(prefix="mlpower-bench-"))
    settings = load_settings(DirectorSettings, analyzer=f"TCPIP0::127.0.0.1::{sim.port}::SOCKET",
                             results_dir=results, sample_interval_s=0.1, analyzer_sleep_s=0.0, host="127.0.0.1",
                             http_port=0, powerdev_port=0, page_max_samples=page_samples, page_interval_s=1.0,
                             sut="bench", lab=f"bench{int(time.time())}", amqp_url=amqp_url, bus="rabbitmq",
                             api_token="")
    sources: list[TimedSource] = []

    def factory(resource: str, interval_s: float) -> TimedSource:
        source = TimedSource(open_source(resource, update_interval_s=interval_s))
        sources.append(source)
        return source

    bus = connect(settings.amqp_url, lab=settings.lab, dead_letter=settings.dead_letter, client_name="bench-director")
    on_bus: list[tuple[float, int]] = []  # (arrival time, samples in the page)
    listener = bus.subscribe(
        topology.QueueSpec("", topology.RUNS_EXCHANGE, (f"{settings.lab}.bench.#",), durable=False, exclusive=True),
        lambda m, d: on_bus.append((time.time(), len(m))) if isinstance(m, SamplePage) else None)
    service = DirectorService(settings, bus=bus, source_factory=factory, serve_powerdev=False).start()
    on_metrics: list[tuple[float, int]] = []  # (scrape response time, samples_total)
    stop = threading.Event()
    pattern = re.compile(r'^mlpower_analyzer_samples_total\{[^}]*\} (\S+)$', re.M)

    def scrape() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{service.http_port}", timeout=5) as http:
            while not stop.is_set():
                text = http.get("/metrics").text
                m = pattern.search(text)
                if m:
                    on_metrics.append((time.time(), int(float(m[1]))))

    scraper = threading.Thread(target=scrape, daemon=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{service.http_port}", timeout=5) as http:
            scraper.start()
            http.post("/runs", json={"run_id": "bench", "phase_s": seconds, "modes": ["ranging"]}).raise_for_status()
            deadline = time.monotonic() + seconds + 20
            while http.get("/runs/bench").json()["state"] != "ended" and time.monotonic() < deadline:
                time.sleep(0.2)
        time.sleep(1.0)  # let the last page arrive
    finally:
        stop.set()
        scraper.join(timeout=5)
        service.stop()
        listener.close()
        bus.close()
        sim.stop()
    read_at = sources[0].read_at
    session = service.director.last
    assert session is not None
    readings = session.readings("ranging")
    intervals = [b - a for a, b in zip(read_at, read_at[1:], strict=False)]
    stamps = [r.t_utc_s for r in readings]
    stamp_intervals = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    to_metrics: list[float] = []
    seen = 0
    for t, total in on_metrics:
        while seen < min(total, len(read_at)):
            to_metrics.append(t - read_at[seen])
            seen += 1
    to_bus: list[float] = []
    k = 0
    for t, n in on_bus:
        for _ in range(n):
            if k < len(read_at):
                to_bus.append(t - read_at[k])
            k += 1
    return {
        "samples": len(read_at), "seconds": seconds, "page_max_samples": page_samples,
        "interval_jitter": _stats_ms([abs(i - 0.1) for i in intervals]),
        "interval_mean_ms": statistics.fmean(intervals) * 1000 if intervals else None,
        "timestamp_jitter": _stats_ms([abs(i - 0.1) for i in stamp_intervals]),
        "read_to_metrics": _stats_ms(to_metrics),
        "read_to_bus": _stats_ms(to_bus),
        "bus_samples": k, "late_reads": session.analyzers[0].recorder.stats.late_reads
        if session.analyzers[0].recorder else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--page-samples", type=int, nargs="*", default=[1, 50])
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    for page_samples in args.page_samples:
        print(json.dumps(run(args.seconds, page_samples, args.amqp_url), indent=2))


if __name__ == "__main__":
    main()
