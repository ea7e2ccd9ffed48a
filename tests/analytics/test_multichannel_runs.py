"""A SUT with several power supplies, end to end: the agent's power-dev client session against the
director measuring each PSU on its own channel (two WT310E simulators), the merged SUT stream on
the bus and in the files, and analytics' totals, per-channel figures and rules."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
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
"""The load each simulated PSU carries: the per-channel truth; their sum is the SUT's."""


@dataclass(frozen=True)
class MultiRun:
    client: Path  # the agent's tree
    director: Path  # the director's folder of the session
    options: CheckOptions
    analyzed: RunAnalyzed
    agent_stdout: str


def _agent_session(analyzer: str, base: Path) -> MultiRun:
    from mlpower.director.director import Director
    from mlpower.director.powerdev_server import PowerDevServer
    from mlpower.director.settings import DirectorSettings
    from mlpower.settings import load_settings

    analytics = Analytics(base)
    try:
        settings = load_settings(DirectorSettings, analyzer=analyzer, host="127.0.0.1", powerdev_port=0, http_port=0,
                                 results_dir=base / "director", analyzer_sleep_s=0.5, sample_interval_s=1.0,
                                 bus_mode=False, bus="memory")
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
                    analyzed, done.stdout)


@pytest.fixture(scope="module")
def two_wt310e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiRun]:
    from mlpower.analyzer_sim.simulator import start_simulator

    with ExitStack() as stack:
        sims = {name: stack.enter_context(start_simulator(port=0, load=f"constant:{watts}", seed=i))
                for i, (name, watts) in enumerate(PSU_W.items())}
        analyzer = ",".join(f"{name}=TCPIP0::127.0.0.1::{sim.port}::SOCKET" for name, sim in sims.items())
        yield _agent_session(analyzer, tmp_path_factory.mktemp("two-wt310e"))


def _view(run: MultiRun) -> RunView:
    """The client's tree (LoadGen's window) with the director's stream (channels, per-sample uncertainty)."""
    view = RunView.read(run.client)
    return view.extend(RunView.read_documents(run.director / "documents.jsonl").documents.values())


def test_the_agent_completes_and_downloads_the_whole_tree(two_wt310e: MultiRun) -> None:
    files = sorted(p.relative_to(two_wt310e.client).as_posix() for p in two_wt310e.client.rglob("*") if p.is_file())
    assert files == LAYOUT
    server = json.loads((two_wt310e.client / "power" / "server.json").read_text())
    assert [a["name"] for a in server["mlpower"]["analyzers"]] == list(PSU_W)
    assert len(server["ptd_config"]) == 2  # one entry per analyzer, as power-dev writes
    for i in (1, 2):
        assert (two_wt310e.director / "power" / f"ptd_logs_analyzer_{i}.txt").is_file()
        assert (two_wt310e.director / "run_1" / f"spl_analyzer_{i}.txt").is_file()
    # spl.txt: the merged lines (the sum, then each analyzer's own line)
    line = next(x for x in (two_wt310e.client / "run_1" / "spl.txt").read_text().splitlines() if x)
    assert ",Analyzer1,Time," in line and ",Analyzer2,Time," in line


def test_the_merged_stream_is_the_sum_of_the_channels_everywhere(two_wt310e: MultiRun) -> None:
    table = pl.read_parquet(two_wt310e.director / "samples.parquet").filter(pl.col("mode") == "testing")
    assert set(table["stream"].unique()) == {"psu1", "psu2", "total"}
    by_time = {name: dict(zip(part["t_utc_s"].to_list(), part["power_w"].to_list(), strict=True))
               for (name,), part in table.group_by("stream")}
    unc = dict(zip(table.filter(pl.col("stream") == "total")["t_utc_s"].to_list(),
                   table.filter(pl.col("stream") == "total")["uncertainty_w"].to_list(), strict=True))
    assert by_time["total"]
    for t, total in by_time["total"].items():
        # psu1's samples are the timebase; psu2's nearest within half an interval is summed
        near = min(by_time["psu2"], key=lambda u: abs(u - t))  # noqa: B023
        assert total == pytest.approx(by_time["psu1"][t] + by_time["psu2"][near])
        assert unc[t] is not None and 0 < unc[t] < 0.01 * total
    view = _view(two_wt310e)
    assert view.power_stream() == "total" and view.channel_streams() == list(PSU_W)


def test_totals_and_channels_equal_the_truth_within_the_stated_uncertainty(two_wt310e: MultiRun) -> None:
    summary = check_view(_view(two_wt310e), two_wt310e.options).summary
    assert summary is not None and summary.avg_power_w is not None and summary.avg_power_uncertainty_w is not None
    assert abs(summary.avg_power_w - sum(PSU_W.values())) <= summary.avg_power_uncertainty_w, summary
    assert [c.name for c in summary.channels] == list(PSU_W)
    for channel in summary.channels:
        assert channel.avg_power_w is not None and channel.avg_power_uncertainty_w is not None
        assert abs(channel.avg_power_w - PSU_W[channel.name]) <= channel.avg_power_uncertainty_w, channel
        assert channel.energy_j and channel.coverage_ratio and channel.coverage_ratio > 0.9
    assert sum(c.share or 0 for c in summary.channels) == pytest.approx(1.0)
    # the uncertainty of the sum combines the channels' (datasheet limits add)
    assert summary.avg_power_uncertainty_w >= max(c.avg_power_uncertainty_w or 0 for c in summary.channels)
    # analytics watching the bus took the merged stream as the SUT's power (LoadGen's window is the client's)
    assert two_wt310e.analyzed.summary.source.startswith("power: merged sum of psu1 + psu2")


def test_mlpower_check_passes_with_every_channel_judged(two_wt310e: MultiRun) -> None:
    report = check_view(_view(two_wt310e), two_wt310e.options)
    status = {f.rule: f for f in report.findings}
    # the run is short on purpose (0.5 s analyzer sleeps): debug is on, and that is the one error
    assert [f.rule for f in report.errors] == ["debug_disabled"], report.errors
    # (the warnings depend on how busy the machine was, e.g. a stretched ranging phase; the imbalance is judged)
    passing = {r.id for r in RULES if not r.ptdaemon and r.severity == "error"} - {"debug_disabled"}
    passing.add("channel_imbalance")
    assert {rule: status[rule].status for rule in passing} == {rule: "pass" for rule in passing}
    assert set(status["uncertainty"].evidence["channels"]) == set(PSU_W)
    assert status["overrange"].evidence["channels"] == list(PSU_W)
    assert {"stream psu1", "stream psu2"} <= set(status["coverage"].evidence["records_checked"])
    assert status["channel_imbalance"].evidence["shares"]["psu1"] == pytest.approx(150 / 240, abs=0.02)
