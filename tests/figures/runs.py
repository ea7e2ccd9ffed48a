"""A small synthetic run, written with ``RunStream`` exactly as the director writes one."""

from __future__ import annotations

from pathlib import Path

from mlpower.runstream import RunStream
from mlpower.schema import RunSummary, SampleFlag, SourceInfo

T0 = 1_700_000_000.0


def write_run(path: Path, run_id: str = "run-1", benchmark: str = "resnet", scenario: str = "Offline") -> Path:
    """Ranging then testing, 1 s samples, a LoadGen window per mode, one overrange sample."""
    stream = RunStream(
        None,
        {
            "run_id": run_id,
            "lab": "lab",
            "sut": "sut",
            "analyzer": "wt310e",
            "benchmark": benchmark,
            "scenario": scenario,
            "t_utc_s": T0,
        },
        log_path=path,
    )
    stream.descriptor(stream="analyzer", source=SourceInfo(kind="simulator"), sample_interval_s=1.0)
    t = T0
    for mode, level in (("ranging", 300.0), ("testing", 310.0)):
        stream.mark(f"{mode}_begin", mode=mode, t_utc_s=t)
        stream.mark("power_begin", mode=mode, t_utc_s=t + 2, source="loadgen")
        times = [t + i for i in range(20)]
        power = [level + (i % 5) for i in range(20)]
        flags = [int(SampleFlag.OVERRANGE) if i == 7 and mode == "testing" else 0 for i in range(20)]
        stream.page(
            "analyzer",
            mode=mode,
            t_utc_s=times,
            power_w=power,
            voltage_v=[230.0] * 20,
            current_a=[p / 230 for p in power],
            power_factor=[0.99] * 20,
            voltage_range_v=[300.0] * 20,
            current_range_a=[2.0 if mode == "testing" else 0.0] * 20,
            uncertainty_w=[p * 0.002 for p in power],
            flags=flags,
        )
        stream.mark("power_end", mode=mode, t_utc_s=t + 18, source="loadgen")
        stream.mark(f"{mode}_end", mode=mode, t_utc_s=t + 20)
        t += 20
    stream.stop("success", t_utc_s=t)
    return path


def run_summary(run_id: str, efficiency: float | None = 40.0) -> RunSummary:
    """What analytics publishes for such a run: its window average and efficiency in samples/J."""
    return RunSummary(
        run_id=run_id,
        source="power/spl.txt inside the LoadGen window",
        method="window average",
        scenario="Offline",
        efficiency=efficiency,
        efficiency_unit="samples/J",
    )
