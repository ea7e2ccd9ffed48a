"""The power-dev protocol end to end over TCP, with a client written from the document."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower.director.director import Director
from mlpower.director.powerdev_server import PowerDevServer
from mlpower.testing import wait_for

from .conftest import fast_settings
from .fakes import FakeSource
from .formats import SPL_RE, rule_ranges
from .powerdev_client import ProtocolClient

CLIENT = "mlcommons/power client v3"
SERVER = "mlcommons/power server v3"
FILES = ("power/ptd_logs.txt", "ranging/spl.txt", "power/server.json", "power/server.log", "run_1/spl.txt",
         "run_1/ptd_out.txt")


@pytest.fixture
def server(tmp_path: Path, source_factory) -> Iterator[PowerDevServer]:  # type: ignore[no-untyped-def]
    director = Director(fast_settings(tmp_path, max_line_bytes=256), source_factory=source_factory)
    srv = PowerDevServer(director, host="127.0.0.1", port=0, max_line_bytes=256).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: PowerDevServer) -> Iterator[ProtocolClient]:
    c = ProtocolClient("127.0.0.1", server.port)
    assert c.command(CLIENT) == SERVER
    yield c
    c.close()


def _new(client: ProtocolClient, label: str = "lbl") -> str:
    reply = client.command(f"new,{label},{uuid.uuid4()}")
    assert reply is not None and reply.startswith("OK "), reply
    sid, server_uuid = reply[3:].split(",")
    uuid.UUID(server_uuid)
    return sid


def samples(server: PowerDevServer, mode: str, n: int) -> None:
    wait_for(lambda: server.session is not None and len(server.session.readings(mode)) >= n,  # type: ignore[arg-type]
             what=f"{n} {mode} samples")


def test_full_session_downloads_every_file_with_documented_replies(server: PowerDevServer, client: ProtocolClient,
                                                                   fake_sources: list[FakeSource]) -> None:
    remote = float(client.command("time") or "nan")
    assert abs(remote - time.time()) < 1.0
    client_uuid = str(uuid.uuid4())
    reply = client.command(f"new,mylabel,{client_uuid}")
    assert reply is not None and reply.startswith("OK ")
    sid = reply[3:].split(",")[0]
    assert sid.endswith("_mylabel") and len(sid) == len("2026-11-28_18-47-18_mylabel")
    for mode in ("ranging", "testing"):
        assert client.command(f"session,{sid},start,{mode}") == "OK"
        assert client.command(f"session,{sid},start,{mode}") == "OK"  # idempotent
        samples(server, mode, 4)
        assert client.command(f"session,{sid},stop,{mode}") == "OK"
        assert client.command(f"session,{sid},stop,{mode}") == "OK"
    assert client.command(f"session,{sid},done") == "OK"
    files = {name: client.download(sid, name) for name in FILES}
    assert client.command(f"cleanup,{sid}") == "OK"

    summary = json.loads(files["power/server.json"])
    assert not files["power/server.json"].endswith(b"\n")
    assert list(summary)[:11] == ["version", "timezone", "modules", "sources", "messages", "uuid", "session_name",
                                  "results", "phases", "ptd_messages", "ptd_config"]
    assert summary["debug"] is True  # 0.05 s sleeps: honestly not compliant
    assert summary["uuid"]["client"] == client_uuid and summary["session_name"] == sid
    cmds = [m["cmd"] for m in summary["messages"]]
    assert cmds[0] == CLIENT and summary["messages"][0]["reply"] == SERVER
    assert f"session,{sid},done" not in cmds and cmds[-1] == f"session,{sid},stop,testing"
    assert all(len(points) == 4 for points in summary["phases"].values())
    assert set(summary["results"]) >= {"power/ptd_logs.txt", "power/server.log", "ranging/spl.txt", "run_1/spl.txt"}

    for mode, name in (("ranging", "ranging/spl.txt"), ("testing", "run_1/spl.txt")):
        text = files[name].decode()
        assert text.endswith("\n\n")
        rows = [SPL_RE.match(line) for line in text.splitlines() if line]
        assert len(rows) >= 4 and all(rows) and {r["mark"] for r in rows if r} == {f"{sid}_{mode}"}
    ptd_out = files["run_1/ptd_out.txt"].decode().splitlines()
    assert ptd_out[0] == "Analyzer 1:" and ptd_out[1].startswith("Power: Watts,") and ptd_out[1].endswith(" ")
    assert ptd_out[2].startswith("Uncertainty: Uncertainty,")
    logs = files["power/ptd_logs.txt"].decode()
    assert logs.startswith("Analyzer 1\n") and f": Go with mark '{sid}_ranging'" in logs and ": Completed test" in logs
    assert all(line.startswith("ptd-server ") for line in files["power/server.log"].decode().splitlines())
    # ranges for testing came from the ranging readings (rule: V max -> 300 V range, 1.1 x A max -> range)
    ranging = [{"v": float(r["v"]), "a": float(r["a"])} for r in
               (SPL_RE.match(line) for line in files["ranging/spl.txt"].decode().splitlines() if line) if r]
    assert fake_sources[0].calls.count(("set_ranges", *rule_ranges(ranging))) == 1


@pytest.mark.parametrize(("line", "reply"), [
    ("bogus", "Error"),
    ("session,nosuchsid,start,ranging", "Error: unknown session"),
    ("new,bad label!,00000000-0000-0000-0000-000000000000", "Error: invalid label"),
    ("new,ok,not-a-uuid", "Error: exception"),
    ("new,onlytwo", "Error"),
    ("download,x", "Error: exception"),
    ("cleanup,nosuchsid", "Error"),
    ("", "Error"),
])
def test_malformed_commands_get_the_documented_reply_and_the_connection_survives(
        client: ProtocolClient, line: str, reply: str) -> None:
    assert client.command(line) == reply
    assert client.command("time") is not None and float(client.command("time") or "x") > 0


def test_session_errors_and_wildcard(client: ProtocolClient) -> None:
    sid = _new(client)
    assert client.command(f"session,{sid},frobnicate") == "Error Unknown session command"
    assert client.command(f"session,{sid}") == "Error"
    assert client.command(f"session,{sid},stop,ranging") == "Error"  # out of order
    assert client.command(f"session,{sid},start,testing") == "Error"  # no ranging to derive ranges from
    assert client.command("session,*,start,ranging") == "OK"
    assert client.command("session,*,stop,ranging") == "OK"
    assert client.command("session,*,done") == "OK"


def test_manual_ranges_skip_ranging(server: PowerDevServer, client: ProtocolClient,
                                   fake_sources: list[FakeSource]) -> None:
    sid = _new(client)
    assert client.command(f"session,{sid},start,testing,230.0,2.0") == "OK"
    samples(server, "testing", 1)
    assert client.command(f"session,{sid},stop,testing") == "OK"
    assert client.command(f"session,{sid},done") == "OK"
    assert ("set_ranges", 230.0, 2.0) in fake_sources[0].calls
    assert client.command(f"session,{sid},start,testing,abc,1") == "Error: exception"


def test_download_refuses_unlisted_names_and_traversal(client: ProtocolClient) -> None:
    sid = _new(client)
    assert client.command(f"session,{sid},done") == "OK"
    for name in ("../../etc/passwd", "power/../power/server.json", "samples.parquet", "/etc/passwd",
                 "power/ptd_logs_analyzer_1.txt"):
        assert client.command(f"download,{sid},{name}") == "Error"
    assert client.command("download,othersid,power/server.json") == "Error"
    assert json.loads(client.download(sid, "power/server.json"))["session_name"] == sid


def test_overlong_line_is_refused_and_session_survives(client: ProtocolClient) -> None:
    sid = _new(client)
    client.send(b"x" * 5000)  # max_line_bytes is 256 in this fixture
    assert client.read_line() == "Error"
    assert client.command(f"session,{sid},start,ranging") == "OK"
    assert client.command(f"session,{sid},done") == "OK"


def test_wrong_magic_gets_server_magic_then_close(server: PowerDevServer) -> None:
    c = ProtocolClient("127.0.0.1", server.port)
    try:
        assert c.command("mlcommons/power client v2") == SERVER
        assert c.read_line() is None
    finally:
        c.close()


def test_lost_connection_ends_the_session_and_keeps_files(server: PowerDevServer, tmp_path: Path) -> None:
    c = ProtocolClient("127.0.0.1", server.port)
    assert c.command(CLIENT) == SERVER
    sid = _new(c)
    assert c.command(f"session,{sid},start,ranging") == "OK"
    samples(server, "ranging", 2)
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    session = server.session
    assert session is not None and session.wait_ended(5)
    assert session.state.value == "aborted"
    summary = json.loads((tmp_path / sid / "power" / "server.json").read_text())
    assert summary["mlpower"]["status"] == "aborted" and summary["mlpower"]["reason"] == "client disconnected"
    assert (tmp_path / sid / "ranging" / "spl.txt").read_text().count("Time,") >= 2


def test_stop_command_stops_the_server_after_disconnect(tmp_path: Path, source_factory) -> None:  # type: ignore[no-untyped-def]
    director = Director(fast_settings(tmp_path), source_factory=source_factory)
    stopped: list[bool] = []
    srv = PowerDevServer(director, host="127.0.0.1", port=0,
                         on_stop_requested=lambda: stopped.append(True)).start()
    try:
        c = ProtocolClient("127.0.0.1", srv.port)
        assert c.command(CLIENT) == SERVER
        assert c.command("stop") == "OK"
        assert c.command("set_ntp") == "Error: exception"  # no NTP command configured: no false OK
        c.close()
        wait_for(lambda: stopped, 5, what="the server to stop after 'stop'")
        assert stopped == [True]
    finally:
        srv.stop()
