"""The PTDaemon emulator through the whole PTD exchange of power-dev's server (power-dev-protocol.md
§3.5) for its two multi-PSU layouts, every reply checked: ``analyzerCount: 2`` (two emulators, one
per PSU) and one type-77 analyzer with ``channel: 1,3`` (a WT333E's three elements); plus the
replies outside that sequence (Stop with nothing running, a repeated SR, Identify's channel count)."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mlpower.analyzer_sim import start_ptd, start_simulator
from mlpower.analyzer_sim.errors import PtdArgumentError
from mlpower.analyzer_sim.ptd import parse_ptd_args
from mlpower.analyzer_sim.settings import Settings
from mlpower.ptdformat import NOT_AVAILABLE, SampleLine, parse_sample_line
from mlpower.settings import load_settings
from mlpower.testing import wait_for

from tests.analyzer_sim.test_ptd import PtdClient

GO_REPLY = "Starting untimed measurement, maximum 500000 samples at 1000ms with 0 rampup samples"
LOAD_W = 900.0


class Analyzer:
    """One analyzer of power-dev's server: its emulator, its connection, its transcript."""

    def __init__(self, index: int, tmp: Path, channels: tuple[int, ...] = (), **settings: object) -> None:
        self.index, self.channels = index, channels
        self.log_path = tmp / f"ptd_logfile_{index}.log"
        device_type = 77 if channels else 49
        self.ptd = start_ptd(port=0, log_path=self.log_path, seed=index, load=f"constant:{LOAD_W}",
                             device_type=device_type, channels=channels,
                             settings=load_settings(Settings, **settings))
        self.client = PtdClient(self.ptd.port)
        self.model = "YokogawaWT330_multichannel" if channels else "YokogawaWT310"

    def cmd(self, command: str, expected: str | None = None, pattern: str | None = None) -> str:
        reply = self.client.cmd(command)
        if expected is not None:
            assert reply == expected, (self.index, command, reply)
        if pattern is not None:
            assert re.fullmatch(pattern, reply), (self.index, command, reply)
        return reply

    def wait_samples(self, count: int) -> None:
        wait_for(lambda: (m := self.ptd.server.measurement) is not None and len(m.samples) >= count,
                 what=f"{count} samples from analyzer {self.index}")

    def read_samples(self) -> list[SampleLine]:
        """Stop's followers: RL,*,* (a multichannel PTD answers it; a single-channel one refuses
        and the server falls back to RL), each data line checked for its channel groups."""
        header = self.client.cmd("RL,*,*")
        if not self.channels:
            assert header == "Invalid number of parameters"
            header = self.client.cmd("RL")
        assert re.fullmatch(r"Last \d+ samples", header), header
        lines = [self.client.line() for _ in range(int(header.split()[1]))]
        parsed = [parse_sample_line(line) for line in lines]
        assert all(p is not None and p.mark is None for p in parsed), lines
        samples = [p for p in parsed if p is not None]
        for s in samples:
            groups = s.channel_groups()
            if self.channels:  # unlabelled groups, numbered from 1 as power-dev numbers them
                assert sorted(groups) == list(range(1, len(self.channels) + 1))
                assert (s.total.volts, s.total.amps, s.total.pf) == (NOT_AVAILABLE,) * 3
                assert s.power_w == pytest.approx(sum(g.power_w or 0 for g in groups.values()), abs=1e-5)
            else:
                assert groups == {}
        return samples

    def ranging_maxima(self, mark: str) -> tuple[str, str]:
        """The server's rule (§3.6): the data log's lines with the mark, the largest Volts and Amps
        over the configured channels (the total group for a single-channel PTD), as text."""
        volts, amps = [], []
        for line in self.log_path.read_text().splitlines():
            s = parse_sample_line(line)
            if s is None or s.mark != mark:
                continue
            groups = [s.channel_groups()[k] for k in self.channels] if self.channels else [s.total]
            volts += [g.volts for g in groups]
            amps += [g.amps for g in groups]
        assert volts, f"no data-log line carries mark {mark}"
        return max(volts, key=float), max(amps, key=float)

    def close(self) -> None:
        self.client.close()
        self.ptd.stop()


def _watts_matches(reply: str, samples: list[SampleLine]) -> float:
    fields = reply.split(",")
    n = len(samples)
    powers = [s.power_w for s in samples]
    assert fields[0] == "Watts" and fields[4:] == [str(n), "0", str(n)], reply
    assert all(p is not None for p in powers)
    avg = sum(p for p in powers if p is not None) / n
    assert float(fields[1]) == pytest.approx(avg, abs=1e-5)
    assert float(fields[2]) == pytest.approx(min(p for p in powers if p is not None), abs=1e-6)
    return float(fields[1])


def _session(analyzers: list[Analyzer], sid: str) -> list[float]:
    """power-dev's server, step by step (§3.5), every step for every analyzer; the Gos in parallel.
    Returns each analyzer's testing average power."""
    initial: list[tuple[str, str]] = []
    for a in analyzers:  # start,ranging
        a.cmd("Hello", "Hello, PTDaemon here!")
        identify = a.cmd("Identify").split(",")
        assert identify[0] == a.model and identify[11] == "mode=power"
        assert re.fullmatch(r"version=1\.11\.1-\w+-\d{8}", identify[9])
        assert identify[14] == str(len(a.channels) or 1)  # the channel count
        a.cmd("RR", "Ranges,1,1.000000,1,300.000000")
        initial.append(("Auto", "Auto"))  # auto flags on: the initial ranges are Auto
        a.cmd("SR,V,Auto", "Range V changed")
        a.cmd("SR,A,Auto", "Range A changed")
        a.cmd("SR,A,Auto", "Range A changed")  # always sent twice
    with ThreadPoolExecutor(len(analyzers)) as pool:
        list(pool.map(lambda a: a.cmd(f"Go,1000,0,{sid}_ranging", GO_REPLY), analyzers))
    for a in analyzers:
        a.wait_samples(2)
    for a in analyzers:  # stop,ranging
        a.cmd("Stop", "Stopping untimed measurement")
        samples = a.read_samples()
        n = len(samples)
        a.cmd("Uncertainty", f"Uncertainty,-1.0,10000000.000000,0.000000,{n},0,0,{n}")  # auto ranges
        _watts_matches(a.cmd("Watts"), samples)
    for a in analyzers:  # start,testing
        max_volts, max_amps = a.ranging_maxima(f"{sid}_ranging")
        a.cmd(f"SR,V,{max_volts}", "Range V changed")
        a.cmd(f"SR,A,{float(max_amps) * 1.1}", "Range A changed")
        a.cmd("RR", pattern=r"Ranges,0,\d+\.000000,0,300\.000000")
    with ThreadPoolExecutor(len(analyzers)) as pool:
        list(pool.map(lambda a: a.cmd(f"Go,1000,0,{sid}_testing", GO_REPLY), analyzers))
    for a in analyzers:
        a.wait_samples(3)
    averages = []
    for a in analyzers:  # stop,testing
        before = a.cmd("Watts", pattern=r"Watts,\d+\.\d{6},\d+\.\d{6},\d+\.\d{6},\d+,0,\d+")
        unc = a.cmd("Uncertainty", pattern=r"Uncertainty,0\.00\d{4},0\.00\d{4},0\.00\d{4},\d+,0,\d+,0")
        a.cmd("Stop", "Stopping untimed measurement")
        samples = a.read_samples()
        n = len(samples)
        assert int(before.split(",")[4]) <= n and int(unc.split(",")[4]) <= n
        a.cmd("Uncertainty", pattern=rf"Uncertainty,0\.00\d{{4}},0\.00\d{{4}},0\.00\d{{4}},{n},0,{n},0")
        averages.append(_watts_matches(a.cmd("Watts"), samples))
    for a, (volts, amps) in zip(analyzers, initial, strict=True):  # done: the initial ranges back
        a.cmd(f"SR,V,{volts}", "Range V changed")
        a.cmd(f"SR,A,{amps}", "Range A changed")
    return averages


def _check_log_and_console(a: Analyzer, sid: str) -> None:
    lines = [parse_sample_line(line) for line in a.log_path.read_text().splitlines()]
    assert lines and all(s is not None for s in lines)
    marks = {s.mark for s in lines if s is not None}
    assert {f"{sid}_ranging", f"{sid}_testing"} <= marks
    for s in lines:
        assert s is not None
        labels = [label for label, _ in s.channels]
        assert labels == [f"Ch{k}" for k in a.channels]  # the meter's channel numbers, after the Mark
    console = "\n".join(a.ptd.console_lines)
    assert f"Uncertainty checking for {a.model} is activated" in console
    assert f"Go with mark '{sid}_ranging'" in console and f"Go with mark '{sid}_testing'" in console
    assert console.count("Completed test") == 2
    assert "Bad volts reading" not in console  # a sum has no volts of its own: no error for it


def test_two_analyzers_one_per_psu(tmp_path: Path) -> None:
    sid = "2026-12-03_13-00-00"
    analyzers = [Analyzer(k, tmp_path, split="0.5,0.5", imbalance=0.04, psus=str(k)) for k in (1, 2)]
    try:
        averages = _session(analyzers, sid)
        truths = [a.ptd.instrument.true_power_w for a in analyzers if a.ptd.instrument is not None]
    finally:
        for a in analyzers:
            a.close()
    assert truths == pytest.approx([LOAD_W * 0.52, LOAD_W * 0.48])
    for avg, truth in zip(averages, truths, strict=True):
        assert avg == pytest.approx(truth, rel=0.01)
    assert sum(averages) == pytest.approx(LOAD_W, rel=0.01)
    for a in analyzers:
        _check_log_and_console(a, sid)


def test_one_type_77_analyzer_with_channels_1_to_3(tmp_path: Path) -> None:
    sid = "2026-12-03_13-10-00"
    a = Analyzer(1, tmp_path, channels=(1, 2, 3), split="0.4,0.3,0.3", imbalance=0.03)
    try:
        (average,) = _session([a], sid)
        inst = a.ptd.instrument
        assert inst is not None and inst.model.name == "WT333E"
        truth = inst.true_element_w
    finally:
        a.close()
    assert truth == pytest.approx((LOAD_W * 0.41, LOAD_W * 0.3, LOAD_W * 0.29))
    assert average == pytest.approx(LOAD_W, rel=0.01)
    _check_log_and_console(a, sid)
    # testing ranges were set on every channel: 1.1 x the largest channel current (~1.7 A) -> 2 A
    assert [e.current_range_a for e in inst.settings.elements] == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("channels", [(), (1, 2)])
def test_replies_outside_the_sequence(channels: tuple[int, ...], tmp_path: Path) -> None:
    a = Analyzer(1, tmp_path, channels=channels)
    try:
        a.cmd("Stop", "Error: no measurement to stop")  # nothing ever ran
        a.cmd("SR,A,Auto", "Range A changed")
        a.cmd("SR,A,Auto", "Range A changed")  # repeated
        a.cmd("SR,V,250", "Range V changed")
        a.cmd("SR,V,250", "Range V changed")
        a.cmd("RR", "Ranges,1,1.000000,0,300.000000")
        assert a.cmd("Identify").split(",")[14] == str(len(channels) or 1)
        a.cmd("Go,1000,0,m", GO_REPLY)
        a.wait_samples(1)
        a.cmd("Stop", "Stopping untimed measurement")
        a.cmd("Stop", "Error: no measurement to stop")  # stopped already
        a.cmd("Go,1000,0,m2", GO_REPLY)  # a new measurement after a stopped one
        a.cmd("Stop", "Stopping untimed measurement")
    finally:
        a.close()


def test_multichannel_command_lines() -> None:
    args = parse_ptd_args(["-l", "l.log", "-p", "8889", "-c", "1,3", "77", "/dev/usbtmc0"])
    assert (args.device_type, args.channels, args.read_channels) == (77, (1, 3), (1, 2, 3))
    assert parse_ptd_args(["-c", "2", "48", "x"]).read_channels == (1, 2)
    assert parse_ptd_args(["-c", "2,1", "77", "x"]).read_channels == (2,)
    assert parse_ptd_args(["-c", "1", "49", "x"]).read_channels == ()
    for bad in (["77", "x"], ["-c", "1", "77", "x"], ["-c", "1,2", "48", "x"], ["-c", "2,3", "77", "x"],
                ["-c", "1,2", "49", "x"]):
        with pytest.raises(PtdArgumentError):
            parse_ptd_args(bad)


def test_mlpower_ptd_type_77_with_channels_1_3_starts_and_answers(tmp_path: Path) -> None:
    """Asked for device type 77 with -c 1,3 the emulator comes up and serves (it once ended at
    start-up)."""
    proc = subprocess.Popen([sys.executable, "-m", "mlpower.analyzer_sim", "ptd", "-l", str(tmp_path / "l.log"),
                             "-p", "0", "-c", "1,3", "77", "/dev/usbtmc0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = None
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.search(r"Establishing the listener on port (\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port is not None, "no listener line"
        c = PtdClient(port)
        try:
            assert c.cmd("Hello") == "Hello, PTDaemon here!"
            identify = c.cmd("Identify").split(",")
            assert identify[0] == "YokogawaWT330_multichannel" and identify[14] == "3"
            assert identify[-1].startswith("YOKOGAWA;WT333E;")
        finally:
            c.close()
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_multichannel_ptd_reads_a_simulated_wt333e_over_scpi() -> None:
    """-n host:port -c 2,2 77: the PTD reads elements 2 and 3 of a running WT333E simulator; its
    sum is those two PSUs' truth, and its ranges land on those elements only."""
    settings = load_settings(Settings, model="WT333E", split="0.5,0.25,0.25")
    with start_simulator(port=0, load="constant:1200", settings=settings) as sim, \
            start_ptd(port=0, analyzer_port=sim.port, device_type=77, channels=(2, 3)) as ptd:
        c = PtdClient(ptd.port)
        try:
            identify = c.cmd("Identify").split(",")
            assert identify[14] == "2" and identify[-1].startswith("YOKOGAWA;WT333E;")
            assert c.cmd("SR,V,250") == "Range V changed"
            assert c.cmd("SR,A,1.9") == "Range A changed"
            assert c.cmd("RR") == "Ranges,0,2.000000,0,300.000000"
            elements = sim.instrument.settings.elements
            assert [(e.current_range_a, e.current_auto) for e in elements] == [(1.0, True), (2.0, False), (2.0, False)]
            assert c.cmd("Go,1000,0,scpi") == GO_REPLY
            wait_for(lambda: (m := ptd.server.measurement) is not None and len(m.samples) >= 2, what="2 samples")
            assert c.cmd("Stop") == "Stopping untimed measurement"
            header = c.cmd("RL,*,*")
            lines = [parse_sample_line(c.line()) for _ in range(int(header.split()[1]))]
            watts = float(c.cmd("Watts").split(",")[1])
        finally:
            c.close()
    assert all(s is not None and sorted(s.channel_groups()) == [1, 2] for s in lines)
    assert watts == pytest.approx(600.0, rel=0.01)  # PSUs 2 and 3 carry 300 W each


def test_channels_beyond_the_meter_are_refused_at_start_up() -> None:
    with start_simulator(port=0, load="constant:300") as sim, pytest.raises(PtdArgumentError):
        start_ptd(port=0, analyzer_port=sim.port, device_type=77, channels=(1, 2))  # a WT310E has one element
