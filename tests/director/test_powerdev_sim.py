"""A whole power-dev session against the director service on the simulator (real pyvisa driver),
driven by the document's client side; every downloaded file parsed with the documented formats."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from mlpower.analyzer_sim.simulator import start_simulator
from mlpower.director.service import DirectorService

from .conftest import fast_settings
from .formats import parse_ptd_logs, parse_ptd_out, parse_server_json, parse_server_log
from .powerdev_client import ProtocolClient
from .test_session_sim import CURRENT_RANGES, VOLTAGE_RANGES

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
            time.sleep(1.2)
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
    from .formats import parse_spl

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
    max_v, max_a = max(r["v"] for r in ranging), max(r["a"] for r in ranging)
    expected = [min(x for x in VOLTAGE_RANGES if x >= max_v), min(x for x in CURRENT_RANGES if x >= 1.1 * max_a)]
    assert summary["mlpower"]["analyzers"][0]["ranges"]["testing"] == expected


@pytest.mark.slow
def test_cli_serves_until_sigterm_and_bad_flags_exit_2(tmp_path: Path) -> None:
    sim = start_simulator(port=0, load="constant:100")
    try:
        bad = subprocess.run([sys.executable, "-m", "mlpower", "director", "--interval", "0.01", "--no-bus"],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "MLPOWER_SAMPLE_INTERVAL_S" in bad.stderr
        proc = subprocess.Popen([sys.executable, "-m", "mlpower", "director", "--analyzer",
                                 f"TCPIP0::127.0.0.1::{sim.port}::SOCKET", "--port", "0", "--http-port", "0",
                                 "--host", "127.0.0.1", "--out", str(tmp_path), "--no-bus"],
                                stderr=subprocess.PIPE, text=True)
        try:
            line = ""
            deadline = time.monotonic() + 60
            while "power-dev on" not in line and time.monotonic() < deadline:
                line = proc.stderr.readline() if proc.stderr else ""
            port = int(line.split("power-dev on ")[1].split(",")[0].rsplit(":", 1)[1])
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
