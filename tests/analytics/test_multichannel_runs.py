"""A SUT with several power supplies, end to end: the agent's power-dev client session against the
director measuring each PSU on its own channel (two WT310E simulators), the merged SUT stream on
the bus and in the files, and analytics' totals, per-channel figures and rules."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl
import pytest
from mlpower.analytics.check import check_view
from mlpower.analytics.findings import CheckOptions
from mlpower.analytics.rules import RULES
from mlpower.runview import RunView
from mlpower.schema import RunAnalyzed

from tests.sut_agent.test_powerdev_client import LAYOUT

from .real_runs import MIN_DURATION_S, Analytics

pytestmark = pytest.mark.slow

PSU_W = {"psu1": 150.0, "psu2": 90.0}
"""Layout (a): the load each simulated WT310E's PSU carries: the per-channel truth."""
SUT_W = 360.0
SPLIT = (0.5, 0.3, 0.2)
"""Layout (b): one WT333E, its three elements on three PSUs sharing the SUT's load."""


@dataclass(frozen=True)
class MultiRun:
    client: Path  # the agent's tree
    director: Path  # the director's folder of the session
    options: CheckOptions
    analyzed: RunAnalyzed
    agent_stdout: str
    truth_w: dict[str, float]  # per channel
    layout: str = ""


def _agent_session(analyzer: str, base: Path, truth_w: dict[str, float], **director: object) -> MultiRun:
    from mlpower.director.director import Director
    from mlpower.director.powerdev_server import PowerDevServer
    from mlpower.director.settings import DirectorSettings
    from mlpower.settings import load_settings

    analytics = Analytics(base)
    try:
        settings = load_settings(DirectorSettings, **{
            "analyzer": analyzer, "host": "127.0.0.1", "powerdev_port": 0, "http_port": 0,
            "results_dir": base / "director", "analyzer_sleep_s": 0.5, "sample_interval_s": 1.0, "bus_mode": False,
            "bus": "memory", **director})
        server = PowerDevServer(Director(settings, bus=analytics.bus), host="127.0.0.1", port=0).start()
        try:
            out = base / "agent"
            done = subprocess.run(
                [sys.executable, "-m", "mlpower.sut_agent", "--server", f"127.0.0.1:{server.port}", "--workload",
                 "builtin:offline", "--out", str(out), "--label", "psus", "--duration-s", "6"],
                capture_output=True, text=True, timeout=240)
            assert done.returncode == 0, done.stderr[-3000:]
            (session,) = [p for p in out.iterdir() if p.name != "loadgen_logs"]
            analyzed = analytics.wait(session.name)
        finally:
            server.stop()
    finally:
        analytics.close()
    sources = json.loads((session / "power" / "client.json").read_text())["sources"]
    server_sources = json.loads((session / "power" / "server.json").read_text())["sources"]
    return MultiRun(session, base / "director" / session.name,
                    CheckOptions(sources_checksums=(sources, server_sources), min_duration_s=MIN_DURATION_S),
                    analyzed, done.stdout, truth_w)


def _two_wt310e(base: Path) -> MultiRun:
    from mlpower.analyzer_sim.simulator import start_simulator

    with ExitStack() as stack:
        sims = {name: stack.enter_context(start_simulator(port=0, load=f"constant:{watts}", seed=i))
                for i, (name, watts) in enumerate(PSU_W.items())}
        analyzer = ",".join(f"{name}=TCPIP0::127.0.0.1::{sim.port}::SOCKET" for name, sim in sims.items())
        return _agent_session(analyzer, base, dict(PSU_W))


def _one_wt333e(base: Path) -> MultiRun:
    from mlpower.analyzer_sim.settings import Settings
    from mlpower.analyzer_sim.simulator import start_simulator
    from mlpower.settings import load_settings

    settings = load_settings(Settings, model="WT333E", split=",".join(map(str, SPLIT)))
    with start_simulator(port=0, load=f"constant:{SUT_W}", seed=5, settings=settings) as sim:
        truth = {f"psu{e['element']}": float(e["true_power_w"]) for e in sim.element_truth()}
        resource = f"TCPIP0::127.0.0.1::{sim.port}::SOCKET"
        analyzer = ",".join(f"psu{k}={resource}#{k}" for k in (1, 2, 3))
        return _agent_session(analyzer, base, truth)


def _two_ptd(base: Path) -> MultiRun:
    """Two PTDaemons (power-dev's analyzerCount 2), each on its WT310E."""
    from mlpower.analyzer_sim.simulator import start_ptd

    with ExitStack() as stack:
        ptds = {name: stack.enter_context(start_ptd(port=0, log_path=base / f"{name}.log", load=f"constant:{watts}",
                                                    seed=i))
                for i, (name, watts) in enumerate(PSU_W.items())}
        analyzer = ",".join(f"{name}=ptd://127.0.0.1:{ptd.port}" for name, ptd in ptds.items())
        # PTDaemon's first sample after a range change may have no value (the meter's range switch): a
        # sleep longer than that before Go keeps it out of the measurement, as power-dev's 10 s do
        return _agent_session(analyzer, base, dict(PSU_W), analyzer_sleep_s=2.0)


def _one_ptd77(base: Path) -> MultiRun:
    """One multichannel PTDaemon (device type 77, -c 1,3) on a WT333E, a channel per element, launched
    by the director per session as power-dev launches it (its simulated meter set by the environment)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    analyzer = ",".join(f"psu{k}=ptd://127.0.0.1:{port}#{k}" for k in (1, 2, 3))
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"MLPOWER_SIM_MODEL": "WT333E", "MLPOWER_SIM_SPLIT": ",".join(map(str, SPLIT)),
                            "MLPOWER_SIM_LOAD": f"constant:{SUT_W}"}.items():
            env.setenv(name, value)
        return _agent_session(analyzer, base, {f"psu{k}": SUT_W * share for k, share in enumerate(SPLIT, start=1)},
                              ptd_launch=True, ptd_device_type=77, ptd_device_port="wt333e", analyzer_sleep_s=2.0)


LAYOUTS = {"two_wt310e": _two_wt310e, "one_wt333e": _one_wt333e, "two_ptd": _two_ptd, "one_ptd77": _one_ptd77}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> MultiRun:
    made = LAYOUTS[request.param](tmp_path_factory.mktemp(request.param))
    return replace(made, layout=request.param)


def _view(run: MultiRun) -> RunView:
    """The client's tree (LoadGen's window) with the director's stream (channels, per-sample uncertainty)."""
    view = RunView.read(run.client)
    return view.extend(RunView.read_documents(run.director / "documents.jsonl").documents.values())


def test_the_agent_completes_and_downloads_the_whole_tree(run: MultiRun) -> None:
    files = sorted(p.relative_to(run.client).as_posix() for p in run.client.rglob("*") if p.is_file())
    assert files == LAYOUT
    server = json.loads((run.client / "power" / "server.json").read_text())
    assert [a["name"] for a in server["mlpower"]["analyzers"]] == list(run.truth_w)
    meters = 2 if run.layout.startswith("two") else 1
    assert len(server["ptd_config"]) == meters  # one entry per analyzer, as power-dev writes
    for i in range(1, meters + 1):
        assert (run.director / "power" / f"ptd_logs_analyzer_{i}.txt").is_file()
    assert not (run.director / "power" / f"ptd_logs_analyzer_{meters + 1}.txt").exists()
    assert (run.client / "run_1" / "ptd_out.txt").read_text().count("Analyzer ") == meters
    line = next(x for x in (run.client / "run_1" / "spl.txt").read_text().splitlines() if x)
    if meters == 2:  # the sum, then each analyzer's own line
        assert ",Analyzer1,Time," in line and ",Analyzer2,Time," in line
        assert (run.director / "run_1" / "spl_analyzer_2.txt").is_file()
    else:  # one meter: PTD's multichannel line, the sum group then Ch<k> groups
        assert ",Ch1,Watts," in line and ",Ch3,Watts," in line and ",Analyzer" not in line
        assert server["ptd_config"][0]["device_type"] == 77 and server["ptd_config"][0]["channel"] == [1, 3]


def test_the_merged_stream_is_the_sum_of_the_channels_everywhere(run: MultiRun) -> None:
    table = pl.read_parquet(run.director / "samples.parquet").filter(pl.col("mode") == "testing")
    assert set(table["stream"].unique()) == {*run.truth_w, "total"}
    by_time = {name: dict(zip(part["t_utc_s"].to_list(), part["power_w"].to_list(), strict=True))
               for (name,), part in table.group_by("stream")}
    total = table.filter(pl.col("stream") == "total")
    unc = dict(zip(total["t_utc_s"].to_list(), total["uncertainty_w"].to_list(), strict=True))
    first, *others = run.truth_w
    assert by_time["total"]
    for t, watts in by_time["total"].items():
        # the first channel's samples are the timebase; each other's nearest within half an interval is summed
        nearest = [min(by_time[o], key=lambda u: abs(u - t)) for o in others]  # noqa: B023
        if watts is None:  # the missing-part rule: an analyzer (own clock) had no sample near enough
            assert any(abs(u - t) > 0.5 for u in nearest), t
            continue
        assert watts == pytest.approx(by_time[first][t] + sum(by_time[o][u] for o, u in zip(others, nearest,
                                                                                               strict=True)))
        assert unc[t] is not None and 0 < unc[t] < 0.01 * watts
    assert sum(w is not None for w in by_time["total"].values()) >= 0.8 * len(by_time["total"])
    view = _view(run)
    assert view.power_stream() == "total" and view.channel_streams() == list(run.truth_w)


def test_totals_and_channels_equal_the_truth_within_the_stated_uncertainty(run: MultiRun) -> None:
    summary = check_view(_view(run), run.options).summary
    assert summary is not None and summary.avg_power_w is not None and summary.avg_power_uncertainty_w is not None
    assert abs(summary.avg_power_w - sum(run.truth_w.values())) <= summary.avg_power_uncertainty_w, summary
    assert [c.name for c in summary.channels] == list(run.truth_w)
    for channel in summary.channels:
        assert channel.avg_power_w is not None and channel.avg_power_uncertainty_w is not None
        assert abs(channel.avg_power_w - run.truth_w[channel.name]) <= channel.avg_power_uncertainty_w, channel
        assert channel.energy_j and channel.coverage_ratio and channel.coverage_ratio > 0.9
    assert sum(c.share or 0 for c in summary.channels) == pytest.approx(1.0)
    # the uncertainty of the sum combines the channels' (datasheet limits add)
    assert summary.avg_power_uncertainty_w >= max(c.avg_power_uncertainty_w or 0 for c in summary.channels)
    # analytics watching the bus took the merged stream as the SUT's power (LoadGen's window is the client's)
    assert run.analyzed.summary.source.startswith("power: merged sum of " + " + ".join(run.truth_w))


def test_mlpower_check_passes_with_every_channel_judged(run: MultiRun) -> None:
    report = check_view(_view(run), run.options)
    status = {f.rule: f for f in report.findings}
    # the run is short on purpose (0.5 s analyzer sleeps): debug is on, and that is the one error
    assert [f.rule for f in report.errors] == ["debug_disabled"], report.errors
    # (the warnings depend on how busy the machine was, e.g. a stretched ranging phase; the imbalance is judged)
    passing = {r.id for r in RULES if not r.ptdaemon and r.severity == "error"} - {"debug_disabled"}
    passing.add("channel_imbalance")
    assert {rule: status[rule].status for rule in passing} == {rule: "pass" for rule in passing}
    assert set(status["uncertainty"].evidence["channels"]) == set(run.truth_w)
    assert status["overrange"].evidence["channels"] == list(run.truth_w)
    assert {f"stream {name}" for name in run.truth_w} <= set(status["coverage"].evidence["records_checked"])
    share = run.truth_w["psu1"] / sum(run.truth_w.values())
    assert status["channel_imbalance"].evidence["shares"]["psu1"] == pytest.approx(share, abs=0.02)


def test_each_channel_gets_the_testing_ranges_of_its_own_ranging_maxima(run: MultiRun) -> None:
    from mlpower.director.ranges import testing_ranges
    from mlpower.director.sources import Reading

    server = json.loads((run.director / "power" / "server.json").read_text())
    table = pl.read_parquet(run.director / "samples.parquet").filter(pl.col("mode") == "ranging")
    own = {}
    for analyzer in server["mlpower"]["analyzers"]:
        rows = table.filter(pl.col("stream") == analyzer["name"]).to_dicts()
        readings = [Reading(**{k: r[k] for k in ("t_utc_s", "power_w", "voltage_v", "current_a", "power_factor",
                                                 "voltage_range_v", "current_range_a", "uncertainty_w", "flags")})
                    for r in rows]
        own[analyzer["name"]] = testing_ranges(readings, model=analyzer["model"] or "WT310E")
    ranges = {a["name"]: tuple(a["ranges"]["testing"]) for a in server["mlpower"]["analyzers"]}
    if run.layout == "one_ptd77":  # one PTDaemon, one range setting: the one that holds every channel
        assert len(set(ranges.values())) == 1
        assert all(r[0] >= o[0] and r[1] >= o[1] for r, o in zip(ranges.values(), own.values(), strict=True))
    else:
        assert ranges == own
    if run.layout == "one_wt333e":  # 180 W and 72 W on one meter: different current ranges per element
        assert ranges["psu1"][1] > ranges["psu3"][1]
