"""The built-in workload: MLPerf LoadGen driving the tiny ResNet in one of three scenarios.

Run as its own process, ``python -m mlpower.sut_agent.loadgen_runner --scenario offline --out DIR
--duration-ms 3000``, because LoadGen stamps ``power_begin``/``power_end`` in the process's local
time and the time-zone contract (power-dev-protocol.md §6.1) needs that to be UTC: ``TZ`` must
be set before the process starts, which the agent does when it launches this module (and this
module refuses to run otherwise, so a hand-started run cannot produce shifted markers).

The SUT answers queries on one worker thread; the QSL holds random images generated in memory.
Expected rates are calibrated from a few timed inferences so that a run lasts about the asked
duration in every scenario.

A calibration taken while other processes held the CPUs can understate the rate several times over
(measured: 4-5x with three busy processes on two cores). LoadGen then sizes its queries too small,
the machine is quieter during the run, and the run ends before ``min_duration`` (INVALID, "Increase
expected QPS"). When that happens the run is repeated once or twice, sized from the rate LoadGen
itself measured over the short run, which is seconds long rather than milliseconds. Each repeat
overwrites the LoadGen logs, so the logs and their power window are those of the last, complete run;
the analyzer measured the short attempts too, outside that window. Each repeat is said on stderr.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlpower.sut_agent.loadgen_logs import DETAIL_NAME, mllog_number, mllog_values

SCENARIOS = ("offline", "server", "singlestream")
DEVICES = ("cpu", "cuda")
QSL_SAMPLES = 256
OFFLINE_BATCH = 16
OFFLINE_RATE_MARGIN = 1.5
SERVER_LOAD_FRACTION = 0.5  # offer half the measured capacity so that latencies stay bounded
# LoadGen sizes its SingleStream query list from the expected latency; a calibration taken while the
# machine was busy overstates it and the run ends short of min_duration, so it is told less.
SINGLE_STREAM_LATENCY_MARGIN = 4.0
MAX_RUNS = 3  # one run and at most two repeats sized from LoadGen's own measurement


def _offline_from_loadgen(cal: Calibration, values: dict[str, object]) -> Calibration | None:
    rate = mllog_number(values.get("result_samples_per_second"))
    return replace(cal, batch_throughput_per_s=rate) if rate and rate > 0 else None


def _single_stream_from_loadgen(cal: Calibration, values: dict[str, object]) -> Calibration | None:
    latency_ns = mllog_number(values.get("result_mean_latency_ns"))
    return replace(cal, single_latency_s=latency_ns / 1e9) if latency_ns and latency_ns > 0 else None


# Scenarios whose queries LoadGen sizes up front from a calibrated number, and how a short run's
# own measurement corrects it. Server is absent: its queries follow a schedule in time, so a busy
# calibration makes it offer less load, never end early.
RECALIBRATE_FROM_LOADGEN: dict[str, Callable[[Calibration, dict[str, object]], Calibration | None]] = {
    "offline": _offline_from_loadgen,
    "singlestream": _single_stream_from_loadgen,
}


@dataclass(frozen=True)
class Calibration:
    single_latency_s: float
    batch_throughput_per_s: float


def _cpu_predictor(seed: int) -> Callable[[Any], Any]:
    from mlpower.sut_agent.model import build_model

    model = build_model(seed)
    return model.predict


def _cuda_predictor(seed: int) -> Callable[[Any], Any]:
    """The same network shape in PyTorch on the GPU; only used when torch with CUDA is importable."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("loadgen_runner: --device cuda needs torch with a CUDA device")
    torch.manual_seed(seed)
    nn = torch.nn

    class Block(torch.nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride) if (c_in != c_out or stride != 1) else nn.Identity()

        def forward(self, x: Any) -> Any:
            return torch.relu(self.conv2(torch.relu(self.conv1(x))) + self.shortcut(x))

    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU(), Block(16, 16, 1), Block(16, 16, 1), Block(16, 32, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    ).cuda().eval()

    def predict(images: Any) -> Any:
        with torch.inference_mode():
            out = net(torch.from_numpy(images).cuda()).argmax(dim=1)
            return out.to(torch.int32).cpu().numpy()

    return predict


PREDICTORS: dict[str, Callable[[int], Callable[[Any], Any]]] = {"cpu": _cpu_predictor, "cuda": _cuda_predictor}


def _round_times_s(call: Callable[[], Any], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def calibrate(predict: Callable[[Any], Any], images: Any, rounds: int = 5) -> Calibration:
    for _ in range(3):  # warm-up (allocations, caches, GPU kernels) before timing
        predict(images[:OFFLINE_BATCH])
    # The mean latency: Server offers load from it, so a busy round errs towards less load.
    single_s = sum(_round_times_s(lambda: predict(images[:1]), rounds)) / rounds
    # The fastest batch: a round slowed by another process made LoadGen size its one Offline query
    # too small, and when the machine was quieter during the run it ended short of min_duration
    # ("Increase expected QPS", an INVALID result); the fastest round errs towards a long run.
    batch_s = min(_round_times_s(lambda: predict(images[:OFFLINE_BATCH]), rounds))
    return Calibration(single_latency_s=max(single_s, 1e-6), batch_throughput_per_s=OFFLINE_BATCH / max(batch_s, 1e-6))


class Sut:
    """Queries go onto a queue; one worker thread runs the model and completes them in batches."""

    def __init__(self, predict: Callable[[Any], Any], images: Any, lg: Any) -> None:
        self._predict, self._images, self._lg = predict, images, lg
        self._queue: queue.Queue[list[Any] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="sut-worker", daemon=True)
        self._worker.start()

    def issue(self, samples: list[Any]) -> None:
        for start in range(0, len(samples), OFFLINE_BATCH):
            self._queue.put(samples[start : start + OFFLINE_BATCH])

    def flush(self) -> None:
        """LoadGen calls this at the end of a run; every query is already answered by then."""

    def stop(self) -> None:
        self._queue.put(None)
        self._worker.join()

    def _work(self) -> None:
        lg = self._lg
        while (batch := self._queue.get()) is not None:
            labels = self._predict(self._images[[s.index for s in batch]])
            responses = [
                lg.QuerySampleResponse(s.id, labels[i : i + 1].ctypes.data, labels.itemsize)
                for i, s in enumerate(batch)
            ]
            lg.QuerySamplesComplete(responses)


def test_settings(lg: Any, scenario: str, duration_ms: int, cal: Calibration) -> Any:
    settings = lg.TestSettings()
    settings.mode = lg.TestMode.PerformanceOnly
    settings.min_duration_ms = duration_ms
    # A bound so that a wrong calibration cannot run away; LoadGen stops at max_duration_ms.
    settings.max_duration_ms = duration_ms * 3 + 10_000
    if scenario == "offline":
        settings.scenario = lg.TestScenario.Offline
        # LoadGen sizes the one Offline query from this rate; erring high keeps the run >= duration_ms.
        settings.offline_expected_qps = OFFLINE_RATE_MARGIN * cal.batch_throughput_per_s
    elif scenario == "server":
        settings.scenario = lg.TestScenario.Server
        settings.server_target_qps = max(1.0, SERVER_LOAD_FRACTION / cal.single_latency_s)
        settings.server_target_latency_ns = int(max(0.1, 50 * cal.single_latency_s) * 1e9)
        settings.min_query_count = 1
    else:
        settings.scenario = lg.TestScenario.SingleStream
        settings.single_stream_expected_latency_ns = int(cal.single_latency_s * 1e9 / SINGLE_STREAM_LATENCY_MARGIN)
        settings.min_query_count = 1
    return settings


def run(scenario: str, out_dir: Path, duration_ms: int, device: str = "cpu", seed: int = 0,
        calibrate_with: Callable[[Callable[[Any], Any], Any], Calibration] = calibrate) -> None:
    import mlperf_loadgen as lg
    from mlpower.sut_agent.model import random_images

    predict = PREDICTORS[device](seed)
    images = random_images(QSL_SAMPLES, seed + 1)
    cal = calibrate_with(predict, images)
    out_dir.mkdir(parents=True, exist_ok=True)
    sut_impl = Sut(predict, images, lg)
    sut = lg.ConstructSUT(sut_impl.issue, sut_impl.flush)
    # Every sample is already in memory, so loading and unloading are no-ops.
    qsl = lg.ConstructQSL(QSL_SAMPLES, QSL_SAMPLES, lambda indices: None, lambda indices: None)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(out_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    recalibrate = RECALIBRATE_FROM_LOADGEN.get(scenario)
    try:
        for attempt in range(1, MAX_RUNS + 1):
            lg.StartTestWithLogSettings(sut, qsl, test_settings(lg, scenario, duration_ms, cal), log_settings)
            if recalibrate is None or attempt == MAX_RUNS:
                break
            values = mllog_values((out_dir / DETAIL_NAME).read_text(encoding="utf-8", errors="replace"))
            if values.get("result_min_duration_met") is not False:
                break
            corrected = recalibrate(cal, values)
            if corrected is None:
                break
            print(f"loadgen_runner: run {attempt} ended before min_duration_ms={duration_ms} (the calibration "
                  f"understated the rate: {cal} -> {corrected}); running again sized from LoadGen's measurement",
                  file=sys.stderr)
            cal = corrected
    finally:
        sut_impl.stop()
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlpower.sut_agent.loadgen_runner",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the LoadGen logs")
    parser.add_argument("--duration-ms", type=int, required=True, help="LoadGen min_duration_ms")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if os.environ.get("TZ") != "UTC":
        print("loadgen_runner: TZ must be UTC so that LoadGen's power markers are UTC (run it with TZ=UTC)",
              file=sys.stderr)
        return 2
    run(args.scenario, args.out, args.duration_ms, args.device, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
