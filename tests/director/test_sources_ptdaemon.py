"""The PTDaemon source against the simulator's PTDaemon emulator: the command/reply log follows
power-dev's documented sequence (power-dev-protocol.md §3.5), launch and connect modes, losses
and bad replies."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower.analyzer_sim import start_ptd
from mlpower.director import ptd_format, ranges
from mlpower.director.errors import AnalyzerError, AnalyzerLost, ReplyParseError
from mlpower.director.ptd_source import PtdSource
from mlpower.director.sources import AnalyzerSource, open_source
from mlpower.schema import SampleFlag
from mlpower.testing import wait_for

from .sources_helpers import ScriptedScpiServer

CHILD = Path(__file__).with_name("sources_ptd_child.py")
GO_REPLY = "Starting untimed measurement, maximum 500000 samples at {ms}ms with 0 rampup samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[object]:
    with start_ptd(port=0, log_path=tmp_path / "ptd_logfile_1.log", load="constant:250", seed=2) as handle:
        yield handle


def connect(emulator: object, **options: object) -> PtdSource:
    options.setdefault("data_log", emulator.log_path)  # type: ignore[attr-defined]
    source = open_source(f"ptd://127.0.0.1:{emulator.port}", **options)  # type: ignore[attr-defined]
    assert isinstance(source, PtdSource)
    return source


def documented_sequence(sid: str, n_ranging: int, n_testing: int, v: str, a: str, ms: int = 1000) -> list[str]:
    """power-dev-protocol.md §3.5, commands only (what server.json ptd_messages holds)."""
    return [
        "Hello", "Identify", "RR", "SR,V,Auto", "SR,A,Auto", "SR,A,Auto", f"Go,{ms},0,{sid}_ranging",
        "Stop", "RL,*,*", "RL", "Uncertainty", "Watts",
        f"SR,V,{v}", f"SR,A,{a}", f"Go,{ms},0,{sid}_testing",
        "Watts", "Uncertainty", "Stop", "RL,*,*", "RL", "Uncertainty", "Watts",
        "SR,V,Auto", "SR,A,Auto",
    ]  # fmt: skip


def test_ranging_and_testing_follow_the_documented_sequence(emulator: object) -> None:
    sid = "2026-11-28_10-00-00_mlpower"
    src = connect(emulator)  # Go,1000 exactly as power-dev sends it
    assert isinstance(src, AnalyzerSource)
    src.open()
    assert src.info.kind == "ptdaemon" and src.info.model == "YokogawaWT310" and src.info.tier == "official"
    assert src.identity is not None and src.identity.version == "1.11.1"
    src.set_ranges(None, None)
    src.start(f"{sid}_ranging")
    ranging = [src.read_sample() for _ in range(2)]
    src.stop()
    ranging_stop = src.last_stop
    # §3.6: the data log lines with the ranging mark give the same testing ranges as our readings
    maxima = ptd_format.ranging_maxima(Path(emulator.log_path).read_text().splitlines(), f"{sid}_ranging")
    v, a = ranges.testing_ranges(ranging)
    assert maxima.lines >= 2
    assert ranges.valid_voltage_range(float(maxima.testing_args()[0])) == v
    assert ranges.valid_current_range(float(maxima.testing_args()[1])) == a
    src.set_ranges(v, a)
    src.start(f"{sid}_testing")
    testing = [src.read_sample() for _ in range(2)]
    src.stop()
    testing_stop = src.last_stop
    src.close()

    messages = src.ptd_messages()
    assert [m["cmd"] for m in messages] == documented_sequence(sid, 2, 2, str(v), str(a))
    replies = {m["cmd"]: m["reply"] for m in messages}
    assert replies["Hello"] == "Hello, PTDaemon here!"
    assert replies["RR"].startswith("Ranges,")
    for m in messages:
        if m["cmd"].startswith("SR,A"):
            assert m["reply"] == "Range A changed"
        if m["cmd"].startswith("SR,V"):
            assert m["reply"] == "Range V changed"
        if m["cmd"].startswith("Go,"):
            assert m["reply"] == GO_REPLY.format(ms=1000)
        if m["cmd"] == "Stop":
            assert m["reply"] == "Stopping untimed measurement"
        if m["cmd"] == "RL,*,*":
            assert m["reply"] == "Invalid number of parameters"
        if m["cmd"] == "RL":
            assert ptd_format.parse_rl_header(m["reply"]) >= 2

    for r in ranging:
        assert r.flags & SampleFlag.AUTO_RANGE and r.uncertainty_w is None
        assert (r.voltage_range_v, r.current_range_a) == (None, None)
    for r in testing:
        assert r.flags == 0 and (r.voltage_range_v, r.current_range_a) == (v, a)
        assert r.power_w == pytest.approx(250.0, rel=0.03) and 0 < r.uncertainty_w / r.power_w < 0.01
        assert r.raw.endswith(f",Mark,{sid}_testing")
    assert all(abs(r.t_utc_s - time.time()) < 60 for r in ranging + testing)  # PTD's UTC timestamps

    # what the session writes: RL data (spl.txt) and the Watts/Uncertainty replies (ptd_out.txt)
    assert ranging_stop is not None and ranging_stop.mark == f"{sid}_ranging"
    assert ranging_stop.watts_before_stop is None and ranging_stop.uncertainty.startswith("Uncertainty,-1.0")
    assert testing_stop is not None and testing_stop.mode == "testing"
    assert testing_stop.watts_before_stop.startswith("Watts,")  # type: ignore[union-attr]
    assert testing_stop.uncertainty_before_stop.startswith("Uncertainty,")  # type: ignore[union-attr]
    rl_times = [ptd_format.parse_data_line(line).time_text for line in testing_stop.rl_lines]  # type: ignore[union-attr]
    live_times = [ptd_format.parse_data_line(r.raw).time_text for r in testing]  # type: ignore[union-attr]
    assert rl_times[: len(live_times)] == live_times  # live samples are PTD's own samples
    assert all(line.endswith(f",Mark,{sid}_testing") for line in testing_stop.spl_lines())


def test_launched_ptdaemon(tmp_path: Path) -> None:
    port = free_port()
    console = tmp_path / "power" / "ptd_logs_analyzer_1.txt"
    console.parent.mkdir()
    src = open_source(f"ptd://127.0.0.1:{port}", launch=True, ptd_command=[sys.executable, str(CHILD)],
                      device_port="/dev/usbtmc0", console_path=console, interval_ms=200)  # fmt: skip
    src.open()
    try:
        assert src.argv is not None and src.argv[-2:] == ["49", "/dev/usbtmc0"]
        assert src.argv[2:7] == ["-l", str(src.log_path), "-p", str(port), "49"]
        src.set_ranges(None, None)
        src.start("s_ranging")
        readings = [src.read_sample() for _ in range(3)]
        src.stop()
        assert all(r.power_w == pytest.approx(250.0, rel=0.03) for r in readings)
        text = wait_for(lambda: "Completed test" in src.console_text() and src.console_text(), 10,
                        what="PTDaemon's console to be copied")
        assert "TZ=UTC" in text  # PTD timestamps must be UTC
        for needed in ("Uncertainty checking for YokogawaWT310 is activated", "Go with mark 's_ranging'",
                       "Completed test", "Response to client sent: Hello, PTDaemon here!"):  # fmt: skip
            assert needed in text
        process = src.process
    finally:
        src.close()
    assert process is not None and not process.alive()
    assert "Completed test" in console.read_text()  # flushed to disk, not stuck in a buffer
    assert [m["cmd"] for m in src.ptd_messages()][-2:] == ["SR,V,Auto", "SR,A,Auto"]


def test_launch_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        src = open_source(f"ptd://127.0.0.1:{port}", launch=True, ptd_command=[sys.executable, str(CHILD)])
        with pytest.raises(AnalyzerError, match="already accepts connections"):
            src.open()


def test_launch_reports_a_ptdaemon_that_exits(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; print('Could not open device /dev/usbtmc9'); sys.exit(3)"]
    src = open_source(f"ptd://127.0.0.1:{free_port()}", launch=True, ptd_command=command, connect_timeout_s=10)
    with pytest.raises(AnalyzerError, match="exited with status 3.*Could not open device"):
        src.open()


def test_launch_of_a_missing_executable_fails() -> None:
    src = open_source(f"ptd://127.0.0.1:{free_port()}", launch=True, ptd_command="/nonexistent/ptd")
    with pytest.raises(AnalyzerError, match="cannot start PTDaemon"):
        src.open()


def test_lost_within_two_seconds_when_launched_ptdaemon_dies(tmp_path: Path) -> None:
    src = open_source(f"ptd://127.0.0.1:{free_port()}", launch=True, ptd_command=[sys.executable, str(CHILD)])
    src.open()
    try:
        src.set_ranges(None, None)
        src.start("s_ranging")
        src.read_sample()
        killed: list[float] = []
        pid = src.process.pid  # type: ignore[union-attr]
        timer = threading.Timer(0.3, lambda: (killed.append(time.monotonic()), os.kill(pid, signal.SIGKILL)))
        timer.start()
        with pytest.raises(AnalyzerLost, match="PTDaemon unexpectedly terminated"):
            for _ in range(10):
                src.read_sample()
        assert time.monotonic() - killed[0] < 2.0
        timer.join()
        with pytest.raises(AnalyzerLost):
            src.command("Watts")
    finally:
        src.close()


def test_lost_within_two_seconds_when_the_emulator_stops(tmp_path: Path) -> None:
    handle = start_ptd(port=0, log_path=tmp_path / "ptd.log")
    try:
        src = connect(handle, interval_ms=1000)
        src.open()
        src.start("s_ranging")
        src.read_sample()
        stopped: list[float] = []
        timer = threading.Timer(0.3, lambda: (stopped.append(time.monotonic()), handle.stop()))
        timer.start()
        with pytest.raises(AnalyzerLost):
            for _ in range(10):
                src.read_sample()
        assert time.monotonic() - stopped[0] < 2.0
        timer.join()
        src.close()
    finally:
        handle.stop()


def test_rl_polling_without_the_data_log(emulator: object) -> None:
    src = connect(emulator, data_log=None, interval_ms=200)
    with src:
        src.set_ranges(300, 2)
        src.start("p_testing")
        readings = [src.read_sample() for _ in range(3)]
        src.stop()
    assert all(r.usable and r.current_range_a == 2.0 for r in readings)
    polls = [m for m in src.messages if m.live]
    assert polls and all(m.cmd == "RL" for m in polls)
    assert all(m["cmd"] != "RL" or m["reply"] for m in src.ptd_messages())
    assert sum(1 for m in src.ptd_messages() if m["cmd"] == "RL") == 1  # only the one after Stop


def test_connect_to_nothing_is_lost() -> None:
    with pytest.raises(AnalyzerLost, match="cannot connect to PTDaemon"):
        open_source(f"ptd://127.0.0.1:{free_port()}").open()


def ptd_answers(**overrides: str):  # type: ignore[no-untyped-def]
    replies = {
        "Hello": "Hello, PTDaemon here!",
        "Identify": "YokogawaWT310,1000,1,1,1,1,0,0,1,version=1.11.1-x-y,OS=Linux,mode=power",
        "RR": "Ranges,1,1.000000,1,300.000000",
        "SR": "Range {which} changed",
        "Go": GO_REPLY.format(ms=1000),
        "Stop": "Stopping untimed measurement",
        "RL,*,*": "Invalid number of parameters",
        "RL": "Last 0 samples",
        "Watts": "Watts,1,1,1,1,0,1",
        "Uncertainty": "Uncertainty,-1.0,10000000.000000,0.000000,1,0,0,1",
    }
    replies.update(overrides)

    def answer(line: str) -> str | None:
        if line.startswith("SR,"):
            return replies["SR"].format(which=line.split(",")[1])
        key = line if line in replies else line.split(",")[0]
        return replies.get(key, f"Unknown command: {line}")

    return answer


def scripted(**overrides: str) -> tuple[ScriptedScpiServer, PtdSource]:
    server = ScriptedScpiServer(ptd_answers(**overrides))
    src = open_source(f"ptd://127.0.0.1:{server.port}", timeout_s=1.0)
    assert isinstance(src, PtdSource)
    return server, src


def test_something_else_than_ptdaemon_is_refused() -> None:
    server, src = scripted(Hello="SSH-2.0-OpenSSH_9.6")
    with server, pytest.raises(AnalyzerError, match="this is not PTDaemon"):
        src.open()


def test_bad_rr_reply_raises_with_raw() -> None:
    server, src = scripted(RR="Ranges,garbage")
    with server, pytest.raises(ReplyParseError) as info:
        src.open()
    assert info.value.raw == "Ranges,garbage"


def test_refused_range_is_an_error() -> None:
    server, src = scripted(SR="Error: invalid range value")
    with server:
        src.open()
        with pytest.raises(AnalyzerError, match="refused"):
            src.set_ranges(None, None)
        src.close()


def test_refused_go_is_an_error() -> None:
    server, src = scripted(Go="Error: measurement already running")
    with server:
        src.open()
        with pytest.raises(AnalyzerError, match="Go refused"):
            src.start("x_ranging")
        src.close()


def test_garbage_rl_header_raises_with_raw() -> None:
    server, src = scripted(RL="%%% nonsense")
    with server:
        src.open()
        src.start("x_ranging")
        with pytest.raises(ReplyParseError) as info:
            src.stop()
        assert info.value.raw == "%%% nonsense"
        src.close()


def test_unanswered_command_is_lost() -> None:
    server = ScriptedScpiServer(lambda line: "Hello, PTDaemon here!" if line == "Hello" else None)
    with server:
        src = open_source(f"ptd://127.0.0.1:{server.port}", timeout_s=0.5)
        t0 = time.monotonic()
        with pytest.raises(AnalyzerLost):
            src.open()
        assert time.monotonic() - t0 < 2.0


@pytest.mark.parametrize("mark", ["", "a,b", "line\nbreak"])
def test_bad_marks_are_refused(emulator: object, mark: str) -> None:
    with connect(emulator) as src:
        with pytest.raises(AnalyzerError, match="bad PTDaemon mark"):
            src.start(mark)


def test_read_before_start_is_refused(emulator: object) -> None:
    with connect(emulator) as src:
        with pytest.raises(AnalyzerError, match="no measurement running"):
            src.read_sample()


def test_too_fast_interval_is_refused() -> None:
    from mlpower.director.errors import RangeError

    with pytest.raises(RangeError):
        open_source("ptd://127.0.0.1:8888", interval_ms=50)


def test_default_command_launches_mlpower_ptd_in_front_of_the_wt310e_simulator() -> None:
    """director -> ``mlpower ptd`` (PTDaemon's flags, ``-n host:port``) -> the WT310E simulator over SCPI."""
    from mlpower.analyzer_sim import start_simulator

    with start_simulator(port=0, load="constant:400") as sim:
        src = open_source(f"ptd://127.0.0.1:{free_port()}", launch=True, interface_flag="-n",
                          device_port=f"127.0.0.1:{sim.port}", interval_ms=500)  # fmt: skip
        assert isinstance(src, PtdSource)
        with src:
            assert src.argv is not None and src.argv[1:4] == ["-m", "mlpower", "ptd"]
            assert src.argv[-3:] == ["-n", "49", f"127.0.0.1:{sim.port}"]
            src.set_ranges(300, 2.0)
            src.start("chain_testing")
            readings = [src.read_sample() for _ in range(2)]
            src.stop()
            console = src.console_text()
    assert all(r.power_w == pytest.approx(400.0, rel=0.03) and r.usable for r in readings)
    assert "Amp range set to 2.000000A" in console and "Go with mark 'chain_testing'" in console
    assert src.process is not None and src.process.returncode is not None  # terminated on close


def test_overlong_reply_without_newline_raises() -> None:
    server = ScriptedScpiServer(lambda line: "Hello, PTDaemon here!" if line == "Hello" else "x" * 70000)
    with server:
        src = open_source(f"ptd://127.0.0.1:{server.port}", timeout_s=2.0)
        with pytest.raises(ReplyParseError, match="longer than"):
            src.open()
