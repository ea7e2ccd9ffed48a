"""``mlpower sim`` as a process: ready line, serving, clean stop on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_mlpower_sim_prints_its_port_serves_and_stops_cleanly(stop_signal: int) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "mlpower.cli", "sim", "--port", "0", "--control-port", "-1",
                             "--load", "constant:300", "--seed", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.strip().rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"*IDN?\n")
            assert sock.recv(100).startswith(b"YOKOGAWA,WT310E,")
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_load_is_one_line_and_status_2() -> None:
    result = subprocess.run([sys.executable, "-m", "mlpower.analyzer_sim", "--port", "0", "--load", "nope:1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("mlpower: error: invalid setting MLPOWER_SIM_LOAD")


@pytest.mark.parametrize("spec", ["trace:/etc/passwd", "trace:/etc/shadow", "trace:../../../../etc/passwd",
                                  "trace:/proc/self/environ", "constant:nan"])
def test_a_load_outside_the_traces_folder_or_not_finite_is_refused_without_quoting_a_file(spec: str) -> None:
    result = subprocess.run([sys.executable, "-m", "mlpower.analyzer_sim", "--port", "0", "--control-port", "-1",
                             "--load", spec], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlpower: error: invalid setting MLPOWER_SIM_LOAD"), lines
    assert "root:" not in result.stderr and "PATH=" not in result.stderr and "daemon:" not in result.stderr


@pytest.mark.parametrize("args, expected", [
    (["--model", "WT333E", "--split", "0.5"], "mlpower: error: invalid settings: MLPOWER_SIM_MODEL/"),
    (["--model", "WT333E,x\nEVIL"], "mlpower: error: invalid setting MLPOWER_SIM_MODEL: String should match"),
])
def test_settings_that_do_not_fit_name_their_variables_in_one_line(args: list[str], expected: str) -> None:
    # a check across settings has no one variable: it used to say "invalid setting ?"; a model name
    # goes into *IDN?, so one with a comma or a newline would forge the meter's identity
    done = subprocess.run([sys.executable, "-m", "mlpower", "sim", "--port", "0", "--control-port", "-1", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), done.stderr
