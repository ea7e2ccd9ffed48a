"""The power-dev client against a minimal server written from the protocol document."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from mlpower.sut_agent.client_outputs import hash_tree
from mlpower.sut_agent.errors import ClockOffsetError, ConnectionLost, ProtocolError
from mlpower.sut_agent.powerdev_client import (
    CLIENT_MAGIC,
    FETCH_FILES,
    ClientOptions,
    PowerDevConnection,
    run_client_session,
)
from mlpower.sut_agent.workloads import parse_workload

from .conftest import Events
from .fake_powerdev import FakePowerDevServer

SUMMARY_KEYS = ["version", "timezone", "modules", "sources", "messages", "uuid", "session_name", "results",
                "phases", "ptd_config", "mlpower"]
LAYOUT = ["power/client.json", "power/client.log", "power/ptd_logs.txt", "power/server.json", "power/server.log",
          "ranging/mlperf_log_detail.txt", "ranging/mlperf_log_summary.txt", "ranging/spl.txt",
          "run_1/mlperf_log_detail.txt", "run_1/mlperf_log_summary.txt", "run_1/ptd_out.txt", "run_1/spl.txt"]


def options(server: FakePowerDevServer, out: Path, **changes: object) -> ClientOptions:
    return ClientOptions(**{"host": "127.0.0.1", "port": server.port, "out_dir": out, "label": "t1",
                            "duration_s": 0.5, "reply_timeout_s": 10.0, **changes})


def test_full_session_produces_the_documented_tree(tmp_path: Path, events: Events) -> None:
    with FakePowerDevServer() as server:
        result = run_client_session(options(server, tmp_path / "out"), parse_workload("builtin:singlestream"),
                                    events.append)
    session = result.session_dir
    assert session.parent == tmp_path / "out" and session.name.endswith("_t1")
    assert sorted(p.relative_to(session).as_posix() for p in session.rglob("*") if p.is_file()) == LAYOUT
    client = json.loads((session / "power" / "client.json").read_text())
    server_json = json.loads((session / "power" / "server.json").read_text())
    assert list(client) == SUMMARY_KEYS and not (session / "power" / "client.json").read_text().endswith("\n")
    assert client["uuid"] == server_json["uuid"]
    assert client["session_name"] == server_json["session_name"] == session.name
    # Both sides record the same exchanges, from the handshake to the last time check.
    assert [m["cmd"] for m in client["messages"]] == [m["cmd"] for m in server_json["messages"]]
    assert client["messages"][0]["cmd"] == CLIENT_MAGIC
    assert [c for c in server.commands if c.startswith("session,")] == [
        f"session,{session.name},{a}"
        for a in ("start,ranging", "stop,ranging", "start,testing", "stop,testing", "done")]
    assert [c.split(",", 2)[2] for c in server.commands if c.startswith("download,")] == list(FETCH_FILES)
    assert server.commands[-1] == f"cleanup,{session.name}"
    # Four phase stamps per mode, in order; the LoadGen window inside phases 1..2 as the checker wants.
    for mode, folder in (("ranging", "ranging"), ("testing", "run_1")):
        walls = [p[0] for p in client["phases"][mode]]
        assert len(walls) == 4 and walls == sorted(walls)
        run = client["mlpower"]["runs"][mode]["loadgen"]
        assert walls[1] < run["power_begin_utc_s"] < run["power_end_utc_s"] < walls[2]
        assert (session / folder / "mlperf_log_detail.txt").read_bytes() == (
            result.outcomes[0 if mode == "ranging" else 1].log_dir / "mlperf_log_detail.txt").read_bytes()
    # results: the client's files hashed before done (so without the downloads and client.json).
    on_disk = hash_tree(session)
    assert set(client["results"]) == {"power/client.log", "ranging/mlperf_log_detail.txt",
                                      "ranging/mlperf_log_summary.txt", "run_1/mlperf_log_detail.txt",
                                      "run_1/mlperf_log_summary.txt"}
    assert all(on_disk[path] == digest for path, digest in client["results"].items())
    extra = client["mlpower"]
    assert extra["loadgen_timezone"] == "UTC" and extra["compliant_durations"] is False
    assert extra["clock_within_limit"] is True and abs(extra["clock"][0]["offset_s"]) < 0.4
    assert "sources" in client and "powerdev_client.py" in client["sources"]
    assert client["modules"]["mlpower.sut_agent.powerdev_client"] == "powerdev_client.py"
    log_text = (session / "power" / "client.log").read_text()
    assert log_text.startswith("client ") and "TZ=UTC" in log_text
    assert events.states() == ["started", "power_begin", "power_end", "finished"] * 2
    assert [e.mode for e in events] == ["ranging"] * 4 + ["testing"] * 4
    assert {e.run_id for e in events} == {session.name}


def test_refuses_to_start_when_the_clock_is_off(tmp_path: Path) -> None:
    with FakePowerDevServer(clock_skew_s=2.0) as server:
        with pytest.raises(ClockOffsetError, match=r"is \+\d+\.\d ms") as refused:
            run_client_session(options(server, tmp_path), parse_workload("builtin:singlestream"))
    # The skew is 2 s; the measured offset is that less half a round trip, so +1999.9 ms is as right as +2000.0.
    offset_ms = float(re.search(r"is \+(\d+\.\d) ms", str(refused.value)).group(1))
    assert offset_ms == pytest.approx(2000.0, abs=50.0)
    assert not any(c.startswith("new,") for c in server.commands)


def test_allowed_clock_offset_is_recorded(tmp_path: Path) -> None:
    with FakePowerDevServer(clock_skew_s=-1.0) as server:
        result = run_client_session(options(server, tmp_path, allow_clock_offset=True, label=""),
                                    parse_workload("builtin:singlestream"))
    extra = json.loads((result.session_dir / "power" / "client.json").read_text())["mlpower"]
    assert extra["clock_within_limit"] is False and extra["allow_clock_offset"] is True
    assert extra["clock"][0]["offset_s"] == pytest.approx(-1.0, abs=0.1)


def test_lost_connection_during_the_workload_stops_it(tmp_path: Path, events: Events) -> None:
    # Hangs up one second after start,ranging: while the workload runs.
    with FakePowerDevServer(close_after="session,", close_delay_s=1.0) as server:
        started = time.monotonic()
        with pytest.raises(ConnectionLost, match="lost during the ranging workload"):
            run_client_session(options(server, tmp_path), parse_workload("sleep 60"), events.append)
        assert time.monotonic() - started < 15
    assert events.states() == ["started", "failed"]
    client_log = next(tmp_path.glob("*/power/client.log")).read_text()
    assert "session failed" in client_log


def test_lost_connection_on_a_command(tmp_path: Path) -> None:
    with FakePowerDevServer(close_after="new,") as server:
        with pytest.raises(ConnectionLost, match="closed the connection"):
            run_client_session(options(server, tmp_path), parse_workload("builtin:singlestream"))


def test_a_reset_reads_as_the_server_closing_the_connection() -> None:
    # The race behind a flaky CI run: the server hangs up while our next command is in flight, and TCP
    # answers that unread command with RST instead of FIN. SO_LINGER 0 makes the reset certain here.
    import socket
    import struct
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    got_line = threading.Event()

    def reset_after_one_line() -> None:
        conn, _ = listener.accept()
        conn.recv(100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        got_line.set()
        conn.close()

    thread = threading.Thread(target=reset_after_one_line)
    thread.start()
    try:
        connection = PowerDevConnection("127.0.0.1", listener.getsockname()[1], reply_timeout_s=5.0)
        connection.send_line("time")
        assert got_line.wait(5)
        thread.join(5)
        with pytest.raises(ConnectionLost, match=r"lost during 'time': the server closed the connection \("):
            connection.read_line("'time'")
    finally:
        thread.join(5)
        listener.close()


def test_no_server_is_a_clear_error(tmp_path: Path) -> None:
    with FakePowerDevServer() as server:
        port = server.port
    with pytest.raises(ConnectionLost, match="cannot connect"):
        run_client_session(options(server, tmp_path, port=port), parse_workload("true"))


def test_bad_label_is_refused_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="invalid label"):
        run_client_session(ClientOptions(host="127.0.0.1", port=1, out_dir=tmp_path, label="a,b"),
                           parse_workload("true"))


def test_a_wrong_server_magic(tmp_path: Path) -> None:
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(100)
            conn.sendall(b"mlcommons/power server v2\r\n")

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        with pytest.raises(ProtocolError, match="not a power-dev v3 server"):
            run_client_session(ClientOptions(host="127.0.0.1", port=listener.getsockname()[1], out_dir=tmp_path),
                               parse_workload("true"))
    finally:
        thread.join(5)
        listener.close()
