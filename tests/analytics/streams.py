"""Run-document streams synthesised with a known true load and datasheet-like measurement error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from mlpower.runstream import RunStream
from mlpower.schema import RunDocument, SampleFlag, SourceInfo

RANGE_W = 300.0 * 2.0  # 300 V x 2 A


def datasheet_uncertainty_w(power_w: float) -> float:
    """WT310E-like accuracy: 0.1 % of reading + 0.1 % of range (wt310e.md's formula, simplified)."""
    return 0.001 * abs(power_w) + 0.001 * RANGE_W


@dataclass
class Synth:
    truth_w: Callable[[float], float]  # true power at time t (seconds from the run start)
    t0_utc_s: float = 1_795_891_000.0
    idle_s: float = 30.0
    window_s: float = 600.0
    noise_w: float = 0.3
    seed: int = 0
    page_rows: int = 50
    scenario: str = "Offline"
    overrange_at: tuple[int, ...] = ()
    power_end_detail: str = ""  # what the agent's power_end event carries: its LoadGen detail log's path
    documents: list[RunDocument] = field(default_factory=list)

    @property
    def begin_utc_s(self) -> float:
        return self.t0_utc_s + self.idle_s + 5.25

    @property
    def end_utc_s(self) -> float:
        return self.begin_utc_s + self.window_s

    def true_average_w(self, steps: int = 200_000) -> float:
        t = np.linspace(self.begin_utc_s - self.t0_utc_s, self.end_utc_s - self.t0_utc_s, steps)
        return float(np.mean([self.truth_w(x) for x in t]))

    def build(self, run_id: str = "synth") -> list[RunDocument]:
        rng = np.random.default_rng(self.seed)
        docs: list[RunDocument] = []
        stream = RunStream(None, dict(run_id=run_id, lab="lab", sut="sut", analyzer="sim", scenario=self.scenario,
                                      t_utc_s=self.t0_utc_s))
        docs.append(stream.start)
        docs.append(stream.descriptor(stream="sim-1", sample_interval_s=1.0,
                                      source=SourceInfo(kind="simulator", model="WT310E", serial="SIM1")))
        times = np.arange(self.t0_utc_s + 0.5, self.end_utc_s + 10.0, 1.0)
        truth = np.array([self.truth_w(t - self.t0_utc_s) for t in times])
        u = np.array([datasheet_uncertainty_w(p) for p in truth])
        systematic = rng.uniform(-0.8, 0.8) * u  # a fixed calibration error within the datasheet bound
        measured = truth + systematic + rng.normal(0.0, self.noise_w, times.size)
        flags = np.zeros(times.size, dtype=np.int64)
        for i in self.overrange_at:
            flags[i] |= int(SampleFlag.OVERRANGE)
            measured[i] = 9999.0  # what an overranged reading looks like: nonsense that must not be averaged
        docs.append(stream.mark("idle_begin", t_utc_s=self.t0_utc_s))
        docs.append(stream.mark("idle_end", t_utc_s=self.t0_utc_s + self.idle_s))
        for lo in range(0, times.size, self.page_rows):
            hi = min(lo + self.page_rows, times.size)
            n = hi - lo
            docs.append(stream.page("sim-1", mode="testing", t_utc_s=times[lo:hi].tolist(),
                                    power_w=measured[lo:hi].tolist(), voltage_v=[230.0] * n,
                                    current_a=(measured[lo:hi] / 230).tolist(), power_factor=[1.0] * n,
                                    voltage_range_v=[300.0] * n, current_range_a=[2.0] * n,
                                    uncertainty_w=u[lo:hi].tolist(), flags=flags[lo:hi].tolist()))
            if lo <= (self.begin_utc_s - times[0]) < hi:
                docs.append(stream.mark("power_begin", mode="testing", t_utc_s=self.begin_utc_s, source="loadgen"))
        docs.append(stream.mark("power_end", mode="testing", t_utc_s=self.end_utc_s, source="loadgen",
                                detail=self.power_end_detail))
        docs.append(stream.stop("success", t_utc_s=self.end_utc_s + 11.0))
        self.documents = docs
        return docs
