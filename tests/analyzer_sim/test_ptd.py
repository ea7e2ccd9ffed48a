"""The PTDaemon emulator, spoken to exactly as power-dev's server does for one session
(power-dev-protocol.md 3.5), with the data log parsed as the server parses it (3.4, 3.6)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlpower.analyzer_sim import start_ptd, start_simulator
from mlpower.analyzer_sim.errors import PtdArgumentError
from mlpower.analyzer_sim.ptd import parse_ptd_args
from mlpower.ptdformat import parse_ptd_time
from mlpower.testing import wait_for

NUM = r"-?\d+\.\d{6}"
TS = r"\d\d-\d\d-\d{4} \d\d:\d\d:\d\d\.\d{3}"
RL_LINE = re.compile(rf"^Time,({TS}),Watts,({NUM}),Volts,({NUM}),Amps,({NUM}),PF,({NUM})$")
LOG_LINE = re.compile(rf"^Time,({TS}),Watts,({NUM}),Volts,({NUM}),Amps,({NUM}),PF,({NUM}),Mark,(\S+)$")
CONSOLE_LINE = re.compile(rf"^{TS}: ")


def samples_taken(ptd, count: int = 2) -> bool:  # type: ignore[no-untyped-def]
    """Whether the running measurement holds ``count`` samples (what a timed wait used to hope for)."""
    measurement = ptd.server.measurement
    return measurement is not None and len(measurement.samples) >= count


class PtdClient:
    """The server side of power-dev: ``cmd\\r\\n`` out, one ``\\n`` line back with ``\\r`` stripped."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.messages: list[tuple[str, str]] = []

    def line(self) -> str:
        return self.file.readline().decode().rstrip("\r\n")

    def cmd(self, command: str) -> str:
        self.sock.sendall(command.encode() + b"\r\n")
        reply = self.line()
        self.messages.append((command, reply))
        return reply

    def read_last(self) -> list[str]:
        header = self.cmd("RL")
        assert re.fullmatch(r"Last \d+ samples", header), header
        return [self.line() for _ in range(int(header.split()[1]))]

    def close(self) -> None:
        self.file.close()  # the makefile holds the socket open otherwise
        self.sock.close()


def _ranging_maxima(log_path: Path, mark: str) -> tuple[str, str]:
    """What the server takes from the -l file after the ranging Stop: max Volts and max Amps, as text."""
    volts, amps = [], []
    for line in log_path.read_text().splitlines():
        m = LOG_LINE.match(line)
        if m and m.group(6) == mark:
            volts.append(m.group(3))
            amps.append(m.group(4))
    assert volts, f"no data-log line carries mark {mark}"
    return max(volts, key=float), max(amps, key=float)


def test_one_session_exactly_as_the_power_dev_server_speaks_it(tmp_path: Path) -> None:
    log_path = tmp_path / "ptd_logfile_1.log"
    sid = "2026-11-28_19-30-00"
    with start_ptd(port=0, log_path=log_path, seed=0, load="constant:250") as ptd:
        c = PtdClient(ptd.port)
        try:
            assert c.cmd("Hello") == "Hello, PTDaemon here!"
            identify = c.cmd("Identify")
            assert identify.split(",")[0] == "YokogawaWT310" and re.search(r"version=1\.11\.1-\w+-\d{8}", identify)
            ranges = c.cmd("RR")
            m = re.fullmatch(r"Ranges,(-?1|0),(-?[\d.]+),(-?1|0),(-?[\d.]+)", ranges)
            assert m and m.group(1) == "1" and m.group(3) == "1"  # initial ranges: Auto / Auto
            assert c.cmd("SR,V,Auto") == "Range V changed"
            assert c.cmd("SR,A,Auto") == "Range A changed"
            assert c.cmd("SR,A,Auto") == "Range A changed"
            go = c.cmd(f"Go,1000,0,{sid}_ranging")
            assert go == "Starting untimed measurement, maximum 500000 samples at 1000ms with 0 rampup samples"
            wait_for(lambda: samples_taken(ptd), 15, what="two ranging samples")
            assert c.cmd("Stop") == "Stopping untimed measurement"
            assert c.cmd("RL,*,*") == "Invalid number of parameters"
            ranging = c.read_last()
            n = len(ranging)
            assert n >= 2 and all(RL_LINE.match(line) for line in ranging)
            assert c.cmd("Uncertainty") == f"Uncertainty,-1.0,10000000.000000,0.000000,{n},0,0,{n}"
            watts = c.cmd("Watts").split(",")
            assert watts[0] == "Watts" and abs(float(watts[1]) - 250) < 2 and watts[4:] == [str(n), "0", str(n)]

            max_volts, max_amps = _ranging_maxima(log_path, f"{sid}_ranging")
            assert c.cmd(f"SR,V,{max_volts}") == "Range V changed"
            assert c.cmd(f"SR,A,{float(max_amps) * 1.1}") == "Range A changed"
            assert c.cmd("RR") == "Ranges,0,2.000000,0,300.000000"  # the next hardware ranges up
            assert c.cmd(f"Go,1000,0,{sid}_testing").startswith("Starting untimed measurement")
            wait_for(lambda: samples_taken(ptd), 15, what="two testing samples")
            testing_watts = c.cmd("Watts")
            uncertainty = c.cmd("Uncertainty").split(",")
            assert testing_watts.startswith("Watts,") and uncertainty[0] == "Uncertainty"
            assert 0 < float(uncertainty[1]) < 0.01 and uncertainty[5] == "0" and uncertainty[7] == "0"
            assert c.cmd("Stop") == "Stopping untimed measurement"
            assert c.cmd("RL,*,*") == "Invalid number of parameters"
            testing = c.read_last()
            assert len(testing) >= 2 and all(RL_LINE.match(line) for line in testing)
            assert c.cmd("RL") == "Last 0 samples"  # everything was read
            assert c.cmd("Uncertainty").startswith("Uncertainty,0.00")
            assert float(c.cmd("Watts").split(",")[1]) == pytest.approx(250, abs=2)
            assert c.cmd("SR,V,Auto") == "Range V changed"
            assert c.cmd("SR,A,Auto") == "Range A changed"
            assert c.cmd("Stop") == "Error: no measurement to stop"
        finally:
            c.close()

        def padded() -> str:  # the padding after the last "Completed test" is written as the client leaves
            text = "\n".join(ptd.console_lines)
            ends = [m.end() for m in re.finditer(rf"^{TS}: Completed test$", text, re.M)]
            return text if ends and len(text) - ends[-1] >= 9 * 1024 else ""

        console = wait_for(padded, 10, what="the console padding after the last Completed test")

    # the console lines the checker looks for, and the padding after each "Completed test" (quirk Q1)
    assert re.search(rf"^{TS}: Uncertainty checking for YokogawaWT310 is activated$", console, re.M)
    assert re.search(rf"^{TS}: Go with mark '{sid}_ranging'$", console, re.M)
    assert re.search(rf"^{TS}: Go with mark '{sid}_testing'$", console, re.M)
    completed = [m.end() for m in re.finditer(rf"^{TS}: Completed test$", console, re.M)]
    assert len(completed) == 2
    assert all(len(console) - end >= 9 * 1024 for end in completed)
    assert re.search(r"Response to client sent: Hello, PTDaemon here!", console)

    # the data log: every line in the documented format, UTC timestamps, both marks present
    lines = log_path.read_text().splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines)
    marks = {LOG_LINE.match(line).group(6) for line in lines}
    assert {f"{sid}_ranging", f"{sid}_testing"} <= marks
    assert abs(parse_ptd_time(LOG_LINE.match(lines[-1]).group(1)) - time.time()) < 30


def test_ptd_reads_a_simulated_wt310e_over_scpi() -> None:
    with start_simulator(port=0, load="constant:400") as sim, start_ptd(port=0, analyzer_port=sim.port) as ptd:
        c = PtdClient(ptd.port)
        try:
            assert c.cmd("Hello") == "Hello, PTDaemon here!"
            assert c.cmd("Identify").endswith("YOKOGAWA;WT310E;C2PH13047V;F1.03")
            assert c.cmd("SR,V,250") == "Range V changed"
            assert c.cmd("SR,A,1.9") == "Range A changed"
            assert sim.instrument.settings.voltage_range_v == 300 and sim.instrument.settings.current_range_a == 2
            assert c.cmd("RR") == "Ranges,0,2.000000,0,300.000000"
            c.cmd("Go,1000,0,remote")
            wait_for(lambda: samples_taken(ptd), 15, what="two samples of the simulated meter")
            assert abs(float(c.cmd("Watts").split(",")[1]) - 400) < 3
            c.cmd("Stop")
        finally:
            c.close()


def test_bad_commands_get_error_replies_and_the_daemon_carries_on() -> None:
    with start_ptd(port=0) as ptd:
        c = PtdClient(ptd.port)
        try:
            assert "Error" in c.cmd("SR,V,-1")
            assert "Error" in c.cmd("SR,A,-1.1")
            assert "Error" in c.cmd("SR,A,45")  # above the largest range
            assert "Error" in c.cmd("SR,X,1")
            assert "Error" in c.cmd("Go,abc,0")
            assert c.cmd("Bogus").startswith("Unknown command")
            assert c.cmd("Hello") == "Hello, PTDaemon here!"
        finally:
            c.close()
        c2 = PtdClient(ptd.port)  # the server connects again for every session
        try:
            assert c2.cmd("Hello") == "Hello, PTDaemon here!"
        finally:
            c2.close()


def test_command_line_as_power_dev_builds_it() -> None:
    args = parse_ptd_args(["-l", "/tmp/x/ptd_logfile_1.log", "-p", "8888", "49", "/dev/usbtmc0"])
    assert (str(args.log_path), args.port, args.device_type, args.device_port) == \
        ("/tmp/x/ptd_logfile_1.log", 8888, 49, "/dev/usbtmc0")
    args = parse_ptd_args(["-l", "l.txt", "-p", "9999", "-b", "0", "-c", "1", "-D", "-n", "49", "10.0.0.5:10001"])
    assert (args.gpib_board, args.channels, args.dc, args.interface_flag) == (0, (1,), True, "-n")
    for bad in (["49"], ["-p"], ["-l", "x", "-p", "1", "-n", "-g", "49", "a"], ["-Q", "49", "a"], ["8", "COM1"]):
        with pytest.raises(PtdArgumentError):
            parse_ptd_args(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_mlpower_ptd_runs_as_the_servers_ptd_binary_and_exits_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "ptd_logfile_1.log"
    env = {**os.environ, "TZ": "UTC", "MLPOWER_SIM_LOAD": "constant:300"}
    proc = subprocess.Popen([sys.executable, "-m", "mlpower.analyzer_sim", "ptd", "-l", str(log), "-p", str(port),
                             "49", "/dev/usbtmc0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        def connected() -> PtdClient | None:  # the server's own start-up probe: connect until it answers
            assert proc.poll() is None, "mlpower ptd exited"
            try:
                return PtdClient(port)
            except OSError:
                return None

        c = wait_for(connected, 30, what="mlpower ptd to listen", poll_s=0.1)
        assert c.cmd("Hello") == "Hello, PTDaemon here!"
        c.close()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert b"Uncertainty checking for YokogawaWT310 is activated" in output
        assert b"Response to client sent: Hello, PTDaemon here!" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
