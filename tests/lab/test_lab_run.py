"""`mlpower lab run` on a real local lab (processes, RabbitMQ): the live line moves while the run is
in progress, the summary says where the run tree, compliance.json and the run figures are, the
exit status follows the verdict, and a run the director ends, or a director that vanishes, ends
`lab run` with one line naming why."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower.lab import procs
from mlpower.lab.local_lab import lab_down, lab_up
from mlpower.lab.run_client import lab_run
from mlpower.lab.settings import LabSettings
from mlpower.settings import load_settings
from mlpower.testing import wait_for
from rich.console import Console

from tests.ports import free_port_offset

LIVE = re.compile(r"^(\S[\w ]*?)\s+load: .* (\d+) samples, \d+ flagged$")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, amqp_url: str) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("lab") / ".lab"
    tag = secrets.token_hex(4)
    offset = free_port_offset()  # its own ports: other labs may run on this machine
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"MLPOWER_LAB_DIR": str(folder), "AMQP_URL": amqp_url, "MLPOWER_LAB": f"lab{tag}",
                            "MLPOWER_SUT": f"sut{tag}", "MLPOWER_AGENT_DURATION_S": "2",
                            "MLPOWER_ANALYZER_SLEEP_S": "0.3", "RABBITMQ_PASSWORD": secrets.token_urlsafe(32),
                            "MLPOWER_API_TOKEN": secrets.token_urlsafe(32),
                            "MLPOWER_LAB_PORT_OFFSET": str(offset)}.items():
            env.setenv(name, value)
        try:
            lines = list(lab_up())
            assert any("API token:" in line for line in lines), lines  # lab up says where the token is
            env.delenv("MLPOWER_API_TOKEN")  # from here on, found in the lab folder like a user would
            yield folder
        finally:
            list(lab_down())


class Watched:
    """`mlpower lab run` as a user starts it, its output read line by line as it comes."""

    def __init__(self, cwd: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "mlpower", "lab", "run"], cwd=cwd, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env={**os.environ, "COLUMNS": "80"})
        self.lines: list[str] = []
        self.samples_seen = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            live = LIVE.match(line.strip())
            if live and int(live.group(2)) > 0 and live.group(1) in ("ranging", "testing"):
                self.samples_seen.set()

    def run_id(self) -> str:
        return next(m.group(1) for line in self.lines if (m := re.match(r"run (\S+) started", line)))

    def finish(self, timeout_s: float = 240) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()


@pytest.mark.slow
def test_lab_run_shows_the_run_live_says_where_its_files_are_and_exits_by_the_verdict(lab: Path,
                                                                                      tmp_path: Path) -> None:
    elsewhere = tmp_path / "some" / "folder"  # not the lab's: lab run finds it (MLPOWER_LAB_DIR here)
    elsewhere.mkdir(parents=True)
    watched = Watched(elsewhere)
    assert watched.samples_seen.wait(timeout=180), watched.lines  # the live line moved during the run
    code, errors = watched.finish()
    text = "\n".join(watched.lines)
    assert code == 1, (text, errors)  # demo durations: never a compliant run, so FAIL and exit status 1
    words = " ".join(text.split())  # the console wraps at 80 columns wherever the paths' length puts a break
    assert "verdict FAIL" in words and "exit status 1" in words
    run_id = watched.run_id()
    run_dir = lab / "volumes" / "results" / run_id
    assert f"run tree: {run_dir}" in text
    assert f"compliance report: {run_dir / 'compliance.json'}" in text
    assert json.loads((run_dir / "compliance.json").read_text())["run_id"] == run_id
    assert re.search(rf"http://127\.0\.0\.1:\d+/runs/{run_id}/figures/trace\.png", text), text
    live = [line for line in text[:text.index("compliance verdict")].splitlines() if LIVE.match(line.strip())]
    assert len({LIVE.match(line.strip()).group(2) for line in live}) >= 2, live  # type: ignore[union-attr]
    assert "Traceback" not in errors


@pytest.mark.slow
def test_a_workload_the_lab_refuses_ends_lab_run_with_the_reason(lab: Path, tmp_path: Path) -> None:
    """Refused at once (HTTP 422) or failed in ranging by the agent: one line, the reason, exit status 2."""
    done = subprocess.run([sys.executable, "-m", "mlpower", "lab", "run", "--workload", "builtin:bogus"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlpower: error: "), done.stderr
    # the director refuses an unknown built-in itself (refuse early); the agent names any other unknown workload
    assert re.search(r"unknown (built-in )?workload 'builtin:bogus'", lines[0]), lines[0]
    assert re.search(r"the director refused POST \S+: HTTP 422|run \S+ failed: ", lines[0]), lines[0]


@pytest.mark.slow
def test_a_run_the_director_aborts_ends_lab_run_with_the_directors_reason(lab: Path) -> None:
    console = Console(record=True, width=80)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = lab_run(console, timeout_s=240, poll_s=0.5)
        except Exception as exc:  # the assertion below reads it
            outcome["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    match = wait_for(lambda: re.search(r"run (\S+) started", console.export_text(clear=False)), timeout_s=60,
                     what="the run to start")
    run_id = match.group(1)
    token = (lab / "secrets" / "mlpower_api_token").read_text().strip()
    director_url = load_settings(LabSettings).director_url
    request = urllib.request.Request(f"{director_url}/runs/{run_id}/stop", data=b"", method="POST",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["stopped"] is True
    runner.join(timeout=120)
    error = outcome.get("error")
    assert error is not None and f"run {run_id} aborted: stopped over HTTP" in str(error), outcome


@pytest.mark.slow
def test_ctrl_c_on_lab_run_stops_the_run_in_the_lab(lab: Path, tmp_path: Path) -> None:
    """Interrupting lab run used to leave the measurement going (workload and all) behind exit 130."""
    watched = Watched(tmp_path)
    wait_for(lambda: any(re.match(r"run \S+ started", line) for line in watched.lines), timeout_s=60,
             what="the run to start")
    watched.process.send_signal(signal.SIGINT)
    code, errors = watched.finish(timeout_s=60)
    run_id = watched.run_id()
    assert code == 2, ("\n".join(watched.lines), errors)
    assert errors.strip() == f"mlpower: error: run {run_id} stopped: lab run was interrupted", errors
    director_url = load_settings(LabSettings).director_url

    def ended() -> dict | None:
        with urllib.request.urlopen(f"{director_url}/runs/{run_id}", timeout=10) as response:
            status = json.loads(response.read())
        return status if status["state"] == "ended" else None

    status = wait_for(ended, timeout_s=60, what="the interrupted run to end")
    assert status["status"] == "aborted" and status["reason"] == "stopped over HTTP", status


@pytest.mark.slow
def test_a_director_that_vanishes_ends_lab_run_with_one_line(lab: Path, tmp_path: Path) -> None:
    """Last in this module: it kills the lab's director."""
    watched = Watched(tmp_path)
    assert watched.samples_seen.wait(timeout=180), watched.lines
    director = next(s for s in procs.load_state(lab) if s.name == "director")
    os.kill(director.pid, signal.SIGKILL)
    code, errors = watched.finish()
    assert code == 2, ("\n".join(watched.lines), errors)
    lines = errors.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlpower: error: the director at http://127.0.0.1:"), errors
    assert "does not answer" in lines[0]
