"""One valid example of every message type, for contract and round-trip tests."""

from __future__ import annotations

from typing import Any

from mlpower import schema as s


def example_of(message_type: type[s.Message], tag: str, **overrides: Any) -> Any:
    t = 1_795_000_000.0
    page = dict(
        stream="wt310e-1", page=0, mode="testing", t_utc_s=[t, t + 1], power_w=[250.1, None],
        voltage_v=[230.0, None], current_a=[1.1, None], power_factor=[0.99, None], voltage_range_v=[300.0, 300.0],
        current_range_a=[2.0, 2.0], uncertainty_w=[0.55, None], flags=[0, int(s.SampleFlag.MISSING)],
    )
    summary = s.RunSummary(run_id=tag, source="simulator", method="mean of samples", avg_power_w=250.0)
    finding = s.Finding(rule="uncertainty", severity="error", status="fail", message="over 1 %", evidence={"max": 0.02})
    fields: dict[type[s.Message], dict[str, Any]] = {
        s.RunStart: dict(run_id=tag, seq=0, lab="lab", sut="sut", analyzer="wt310e", t_utc_s=t, settings={"a": 1}),
        s.StreamDescriptor: dict(run_id=tag, seq=1, stream="wt310e-1", sample_interval_s=1.0,
                                 source=s.SourceInfo(kind="wt310e", model="WT310E", serial="C2QM12345")),
        s.SamplePage: dict(run_id=tag, seq=2, **page),
        s.PhaseMark: dict(run_id=tag, seq=3, name="power_begin", mode="testing", t_utc_s=t, source="loadgen"),
        s.RunStop: dict(run_id=tag, seq=4, status="success", t_utc_s=t, pages=1, samples=2, marks=1),
        s.StartRun: dict(sut="sut", benchmark="resnet50", scenario="Offline"),
        s.StopRun: dict(run_id=tag, reason="operator"),
        s.SetRanges: dict(analyzer="wt310e", voltage_range_v=300.0, current_range_a=None),
        s.RunWorkloadPhase: dict(run_id=tag, sut="sut", mode="ranging", workload="builtin:offline"),
        s.StopWorkload: dict(run_id=tag, sut="sut", reason="run aborted: operator"),
        s.RebuildFigures: dict(figures=("fig1",), reason="test"),
        s.WorkloadPhase: dict(run_id=tag, sut="sut", mode="testing", state="power_begin", t_utc_s=t),
        s.AgentHeartbeat: dict(run_id=tag, sut="sut", mode="testing", state="running", pid=4242, t_utc_s=t),
        s.LiveFinding: dict(run_id=tag, finding=finding, t_utc_s=t),
        s.RunAnalyzed: dict(run_id=tag, summary=summary, findings=(finding,), verdict="fail", t_utc_s=t),
        s.FiguresRebuilt: dict(job_id=tag, rendered=("fig1",), t_utc_s=t),
    }
    return message_type(**{**fields[message_type], **overrides})
