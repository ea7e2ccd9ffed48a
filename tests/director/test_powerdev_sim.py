"""A whole power-dev session against the director service on the simulator (real pyvisa driver),
driven by the document's client side; every downloaded file parsed with the documented formats."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from mlpower.analyzer_sim.simulator import start_simulator
from mlpower.director.service import DirectorService
from mlpower.testing import wait_for

from .conftest import fast_settings
from .formats import parse_ptd_logs, parse_ptd_out, parse_server_json, parse_server_log, parse_spl, rule_ranges
from .powerdev_client import ProtocolClient

FILES = ("power/ptd_logs.txt", "ranging/spl.txt", "power/server.json", "power/server.log", "run_1/spl.txt",
         "run_1/ptd_out.txt")


def test_powerdev_session_on_the_simulator(tmp_path: Path) -> None:
    sim = start_simulator(port=0, load="constant:180", seed=3)
    service = DirectorService(fast_settings(tmp_path / "results", analyzer=f"TCPIP0::127.0.0.1::{sim.port}::SOCKET",
                                            sample_interval_s=0.25), serve_http=False).start()
    out = tmp_path / "client"
    try:
        client = ProtocolClient("127.0.0.1", service.powerdev_port)
        assert client.command("mlcommons/power client v3") == "mlcommons/power server v3"
        reply = client.command(f"new,simrun,{uuid.uuid4()}") or ""
        sid = reply[3:].split(",")[0]
        for mode in ("ranging", "testing"):
            assert client.command("time") is not None
            assert client.command(f"session,{sid},start,{mode}") == "OK"
            session = service.director.active
            wait_for(lambda: session is not None and len(session.readings(mode)) >= 4,  # noqa: B023
                     what=f"4 {mode} samples")
            assert client.command(f"session,{sid},stop,{mode}") == "OK"
        assert client.command(f"session,{sid},done") == "OK"
        for name in FILES:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(client.download(sid, name))
        assert client.command(f"cleanup,{sid}") == "OK"
        client.close()
    finally:
        service.stop()
        sim.stop()
    ranging, testing = parse_spl(out / "ranging" / "spl.txt"), parse_spl(out / "run_1" / "spl.txt")
    assert len(ranging) >= 3 and len(testing) >= 3
    assert all(abs(r["w"] - 180) < 5 for r in ranging + testing)
    parse_ptd_out(out / "run_1" / "ptd_out.txt")
    parse_ptd_logs(out / "power" / "ptd_logs.txt")
    parse_server_log(out / "power" / "server.log")
    summary = parse_server_json(out / "power" / "server.json")
    # server.json's results hashes are those of the files the client downloaded
    import hashlib

    for name in ("power/ptd_logs.txt", "power/server.log", "ranging/spl.txt", "run_1/spl.txt", "run_1/ptd_out.txt"):
        assert summary["results"][name] == hashlib.sha1((out / name).read_bytes()).hexdigest()
    # the testing ranges the director chose: the rule applied to the ranging samples the client received
    assert summary["mlpower"]["analyzers"][0]["ranges"]["testing"] == list(rule_ranges(ranging))


@pytest.mark.slow
def test_cli_serves_until_sigterm_and_bad_flags_exit_2(tmp_path: Path, amqp_url: str, unique: str) -> None:
    sim = start_simulator(port=0, load="constant:100")
    try:
        bad = subprocess.run([sys.executable, "-m", "mlpower", "director", "--interval", "0.01", "--no-bus"],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "MLPOWER_SAMPLE_INTERVAL_S" in bad.stderr
        proc = subprocess.Popen([sys.executable, "-m", "mlpower", "director", "--analyzer",
                                 f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", "--port", "0", "--http-port", "0",
                                 "--host", "127.0.0.1", "--out", str(tmp_path), "--sut", f"cli{unique}"],
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "AMQP_URL": amqp_url})
        try:
            assert proc.stderr is not None
            before = [proc.stderr.readline()]
            while not before[-1].startswith("mlpower director for SUT "):  # what it serves, at once: not
                assert len(before) < 4 and before[-1], before  # after pages of connection logging
                before.append(proc.stderr.readline())
            lines = [proc.stderr.readline() for _ in range(5)]
            assert lines[0].split() == ["analyzer", f"TCPIP0::127.0.0.1::{sim.port}::SOCKET"]
            assert re.fullmatch(r"  power-dev  127\.0\.0\.1:\d+\n", lines[1]), lines
            assert re.fullmatch(r"  HTTP API   http://127\.0\.0\.1:\d+ \(.+\)\n", lines[2]), lines
            assert lines[3] == f"  bus        StartRun/StopRun for cli{unique}\n"  # connected, quietly
            assert lines[4] == f"  results    {tmp_path}\n"
            port = int(lines[1].rsplit(":", 1)[1])
            client = ProtocolClient("127.0.0.1", port)
            assert client.command("mlcommons/power client v3") == "mlcommons/power server v3"
            client.close()
            proc.terminate()
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        sim.stop()
