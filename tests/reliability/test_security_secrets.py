"""Credentials come from the environment or secret files and never appear in logs or outputs.

A director (in process, on the simulator) runs a whole power-dev session for the SUT agent's CLI
(a subprocess), with the API token and a broker password set to unique strings; analytics and
figures start up as their CLIs do (figures with the token from a secret file). Neither secret, nor the broker
URL's credentials, may appear in any log line, any file of the run trees (server.json,
client.json, documents, spl, samples.parquet and its metadata), or any HTTP answer; settings
reprs hide them, also when the token comes from a ``*_FILE`` secret file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pyarrow.parquet as pq
import pytest
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.analyzer_sim import start_simulator
from mlpower.analyzer_sim.settings import Settings as SimulatorSettings
from mlpower.director.service import DirectorService
from mlpower.director.settings import DirectorSettings
from mlpower.figures.settings import FiguresSettings
from mlpower.settings import load_settings
from mlpower.sut_agent.settings import Settings as AgentSettings
from mlpower.testing import wait_for

TOKEN = "tok-7c1e5b9a0d34-never-print-me"
PASSWORD = "pw-41f0a6c2e8-never-print-me"
SECRETS = (TOKEN, PASSWORD, "guest:guest@")
SECRET_AMQP = f"amqp://mlpower:{PASSWORD}@127.0.0.1:5672/"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter("%(name)s %(message)s").format(record))


@pytest.fixture
def logs() -> Iterator[list[str]]:
    handler = Collect()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)


def _leaks(text: str | bytes, where: str) -> list[str]:
    data = text.encode("utf-8", errors="replace") if isinstance(text, str) else text
    return [f"{secret!r} in {where}" for secret in SECRETS if secret.encode() in data]


def _file_leaks(root: Path) -> list[str]:
    found = []
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        found += _leaks(path.read_bytes(), str(path))
        if path.suffix == ".parquet":  # compressed columns could hide a string from the byte scan
            frame = pl.read_parquet(path)
            found += _leaks(repr(frame.rows()) + repr(frame.schema), f"{path} (rows)")
            metadata = pq.read_metadata(path).metadata or {}
            found += _leaks(repr(metadata), f"{path} (metadata)")
    return found


def _start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mlpower.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _read_available(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


def _stop_cli(process: subprocess.Popen[bytes], ready: str, timeout_s: float = 60) -> str:
    """Wait until the CLI printed ``ready`` (or died), then SIGTERM it; its whole output."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    os.set_blocking(fd, False)
    output = b""

    def ready_or_exited() -> bool:
        nonlocal output
        output += _read_available(fd)
        return ready.encode() in output or process.poll() is not None

    with contextlib.suppress(AssertionError):  # not ready in time: stopped all the same, its output judged
        wait_for(ready_or_exited, timeout_s, what=f"{ready!r} from the CLI", poll_s=0.1)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    while chunk := _read_available(fd):
        output += chunk
    process.stdout.close()
    text = output.decode("utf-8", errors="replace")
    assert ready in text, text[-3000:]
    return text


def _environment(tmp_path: Path, **extra: str | None) -> dict[str, str]:
    """The test's environment without mlpower settings, plus the secrets; ``NAME=None`` leaves NAME out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPOWER_", "AMQP_"))}
    chosen = {"MLPOWER_API_TOKEN": TOKEN, "AMQP_URL": SECRET_AMQP, "MLPOWER_LOG_LEVEL": "DEBUG", **extra}
    env.update({k: v for k, v in chosen.items() if v is not None})
    return env


@pytest.mark.slow
def test_no_secret_in_logs_files_or_answers(tmp_path: Path, logs: list[str]) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN + "\n")
    # the in-memory bus: analytics' queue names are not lab-scoped, and colleagues' fault tests restart the broker
    analytics = _start_cli(["analytics"], _environment(
        tmp_path, MLPOWER_BUS="memory", MLPOWER_ANALYTICS_PORT="0", MLPOWER_RESULTS_DIR=str(tmp_path / "analytics")))
    figures = _start_cli(["figures", "serve", "--no-bus", "--port", "0"], _environment(
        tmp_path, MLPOWER_API_TOKEN=None, MLPOWER_API_TOKEN_FILE=str(token_file),  # the token from a file
        MLPOWER_FIGURES_DIR=str(tmp_path / "figures"), MLPOWER_RESULTS_DIR=str(tmp_path / "figures-results")))
    try:
        answers: list[str] = []
        with start_simulator(port=0, control_port=0, api_token=TOKEN) as simulator:
            settings = load_settings(DirectorSettings, analyzer=f"TCPIP0::127.0.0.1::{simulator.port}::SOCKET",
                                     results_dir=tmp_path / "director", powerdev_port=0, http_port=0, bus="memory",
                                     analyzer_sleep_s=0.2, sample_interval_s=0.25, api_token=TOKEN,
                                     amqp_url=SECRET_AMQP)
            service = DirectorService(settings).start()
            try:
                agent = subprocess.run(
                    [sys.executable, "-m", "mlpower.sut_agent", "--server", f"127.0.0.1:{service.powerdev_port}",
                     "--workload", "builtin:offline", "--out", str(tmp_path / "agent"), "--label", "sec",
                     "--duration-s", "1"],
                    env=_environment(tmp_path), capture_output=True, text=True, timeout=180)
                assert agent.returncode == 0, agent.stderr[-3000:]
                answers += [agent.stdout, agent.stderr]
                base = f"http://127.0.0.1:{service.http_port}"
                runs = httpx.get(f"{base}/runs", timeout=10).json()
                assert runs, "the session left no run"
                for path in ("/status", "/metrics", "/runs", f"/runs/{runs[0]['run_id']}", "/openapi.json"):
                    answers.append(httpx.get(f"{base}{path}", timeout=10).text)
                bad = httpx.post(f"{base}/runs", json={}, headers={"Authorization": "Bearer wrong"}, timeout=10)
                assert bad.status_code == 401
                answers.append(bad.text)
                sim = f"http://127.0.0.1:{simulator.control_port}"
                answers += [httpx.get(f"{sim}{p}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
                            for p in ("/state", "/metrics", "/healthz")]
            finally:
                service.stop()
        answers.append(_stop_cli(analytics, "analytics HTTP on"))
        answers.append(_stop_cli(figures, "figures HTTP on"))
    finally:
        for process in (analytics, figures):  # a failed assertion above must not leave them running
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    leaks = [leak for i, text in enumerate(answers) for leak in _leaks(text, f"answer/output #{i}")]
    leaks += [leak for line in logs for leak in _leaks(line, f"log line {line[:80]!r}")]
    leaks += _file_leaks(tmp_path / "director") + _file_leaks(tmp_path / "agent")
    assert any(p.name == "client.json" for p in (tmp_path / "agent").rglob("*"))
    assert any(p.suffix == ".parquet" for p in (tmp_path / "director").rglob("*"))
    assert leaks == []


def test_settings_reprs_hide_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    for name in list(os.environ):
        if name.startswith(("MLPOWER_", "AMQP_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AMQP_URL", SECRET_AMQP)
    for token_source in ("env", "file"):
        if token_source == "env":
            monkeypatch.setenv("MLPOWER_API_TOKEN", TOKEN)
        else:
            monkeypatch.delenv("MLPOWER_API_TOKEN")
            monkeypatch.setenv("MLPOWER_API_TOKEN_FILE", str(token_file))
        for cls in (DirectorSettings, AnalyticsSettings, FiguresSettings, SimulatorSettings, AgentSettings):
            settings = load_settings(cls)  # type: ignore[type-var]
            assert settings.api_token == TOKEN and PASSWORD in settings.amqp_url  # read ...
            for text in (repr(settings), str(settings)):
                assert _leaks(text, cls.__name__) == []  # ... but never shown
