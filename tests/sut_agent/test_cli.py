"""``mlpower agent`` and ``python -m mlpower.sut_agent``: usage errors are one line and exit status 2."""

from __future__ import annotations

import subprocess
import sys


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlpower.sut_agent", *args], capture_output=True, text=True,
                          timeout=60)


def test_without_a_mode_it_says_what_to_give() -> None:
    done = agent()
    assert done.returncode == 2
    expected = "mlpower: error: give --server HOST[:PORT] (power-dev client mode) or --bus (bus mode)"
    assert done.stderr.strip() == expected


def test_an_unknown_builtin_workload_is_refused() -> None:
    done = agent("--server", "127.0.0.1:1", "--workload", "builtin:training", "--out", "/tmp")
    assert done.returncode == 2 and "unknown built-in workload 'builtin:training'" in done.stderr


def test_a_bad_setting_names_its_variable() -> None:
    done = subprocess.run([sys.executable, "-m", "mlpower.sut_agent", "--server", "h"], capture_output=True,
                          text=True, timeout=60, env={"MLPOWER_AGENT_DURATION_S": "-1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "MLPOWER_AGENT_DURATION_S" in done.stderr
