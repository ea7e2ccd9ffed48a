"""scripts/lib/apt.sh: the set-up scripts wait for the package manager's locks instead of failing.

A fresh-clone ``make test`` once ran ``install_deploy_tools.sh`` while another apt-get held the
lists lock, and 19 deploy tests errored. These tests put a stand-in ``apt-get`` first on PATH that
answers with apt's own lock messages a few times before it succeeds, and check that both scripts'
helper retries (and passes dpkg's lock timeout on), and that any other failure is not retried.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

HELPER = ROOT / "scripts" / "lib" / "apt.sh"
LOCK_MESSAGES = [
    "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)",
    "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\n"
    "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?",
]


def fake_apt_get(folder: Path, failures: list[str], final_status: int = 0) -> Path:
    """An apt-get that logs its arguments, fails with each message of ``failures`` in turn, then exits."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, message in enumerate(failures):
        (folder / f"failure{index}").write_text(message + "\n")
    script = folder / "apt-get"
    script.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {folder}/calls
n=$(wc -l < {folder}/calls)
if [ -f {folder}/failure$((n - 1)) ]; then cat {folder}/failure$((n - 1)) >&2; exit 100; fi
echo "installed"
exit {final_status}
""")
    script.chmod(0o755)
    return folder / "calls"


def run_helper(folder: Path, *args: str, wait_s: int = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", "APT_LOCK_RETRY_S": "0",
           "APT_LOCK_WAIT_S": str(wait_s)}
    # as the scripts use it: sourced under `set -euo pipefail`
    command = f'set -euo pipefail; . {HELPER}; apt_get "$@"; echo "after:$?"'
    return subprocess.run(["bash", "-c", command, "apt_get", *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("message", LOCK_MESSAGES, ids=["lists-lock", "dpkg-frontend-lock"])
def test_a_held_lock_is_waited_for_and_the_command_then_runs(tmp_path: Path, message: str) -> None:
    calls = fake_apt_get(tmp_path, [message, message])
    result = run_helper(tmp_path, "install", "-y", "-qq", "prometheus")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["installed", "after:0"]
    lines = calls.read_text().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("-o DPkg::Lock::Timeout=") and line.endswith("install -y -qq prometheus")
               for line in lines)
    assert result.stderr.count("another package manager holds a lock; waiting") == 2
    assert message.splitlines()[0] in result.stderr  # apt's own words reach the user


def test_other_failures_are_not_retried_and_keep_their_status(tmp_path: Path) -> None:
    calls = fake_apt_get(tmp_path, ["E: Unable to locate package prometheus"])
    result = run_helper(tmp_path, "install", "-y", "prometheus")
    assert result.returncode == 100
    assert "after:" not in result.stdout  # set -e in the caller stops there
    assert len(calls.read_text().splitlines()) == 1
    assert "E: Unable to locate package prometheus" in result.stderr


def test_the_wait_has_an_end(tmp_path: Path) -> None:
    calls = fake_apt_get(tmp_path, [LOCK_MESSAGES[0]] * 1000)
    result = run_helper(tmp_path, "update", wait_s=0)
    assert result.returncode == 100
    assert len(calls.read_text().splitlines()) == 1
    assert "Could not get lock" in result.stderr


@pytest.mark.parametrize("script", ["install_deploy_tools.sh", "ensure_rabbitmq.sh"])
def test_both_set_up_scripts_install_through_the_helper(script: str) -> None:
    text = (ROOT / "scripts" / script).read_text()
    assert ". " in text and "lib/apt.sh" in text
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any("apt-get " in line and "apt_get" not in line for line in code), "a bare apt-get call"
