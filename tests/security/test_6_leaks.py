"""Secrets searched for everywhere the lab wrote or answered after the attacks: every HTTP answer
of this suite, every log, every file of the run trees (parquet columns and metadata decoded), the
environment and command line of every lab process, and what a benchmark process itself sees. Logs
carry client text only escaped."""

from __future__ import annotations

import json
import queue
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from mlpower import topology
from mlpower.rabbitmq import RabbitMQBus
from mlpower.schema import Message, RunWorkloadPhase, WorkloadPhase

from tests.director.powerdev_client import ProtocolClient
from tests.reliability.procs import wait_until
from tests.security.lab import Lab
from tests.security.ledger import LEDGER

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

ESCAPE = "\x1b[2J\x1b[31mFORGED\rlog line"
AGENT_ENV_ALLOWED = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "PWD", "SHLVL", "_", "MLPOWER_LOADGEN_LOG_DIR",
                     "MLPOWER_MODE", "MLPOWER_DURATION_S"}


def _secrets(lab: Lab, amqp_url: str) -> dict[str, bytes]:
    admin_password = amqp_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    found = {"API token": lab.token.encode(), "broker password": lab.broker_password.encode(),
             "the lab's broker URL": lab.amqp_url.encode(), "the admin broker URL": amqp_url.encode()}
    if len(admin_password) >= 8:  # "guest" is everywhere; a real administrator password is searched for too
        found["the admin broker password"] = admin_password.encode()
    return found


def _leaks(data: bytes, where: str, secrets: dict[str, bytes]) -> list[str]:
    return [f"{name} in {where}" for name, value in secrets.items() if value in data]


def _file_texts(root: Path) -> list[tuple[str, bytes]]:
    texts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        texts.append((str(path), path.read_bytes()))
        if path.suffix == ".parquet":  # compressed columns could hide a string from the byte scan
            frame = pl.read_parquet(path)
            texts.append((f"{path} (rows)", (repr(frame.rows()) + repr(frame.schema)).encode()))
            texts.append((f"{path} (metadata)", repr(pq.read_metadata(path).metadata or {}).encode()))
    return texts


def _processes(lab: Lab) -> list[tuple[str, bytes]]:
    found = []
    for pid in lab.pids():
        for part in ("environ", "cmdline"):
            try:
                found.append((f"/proc/{pid}/{part}", Path(f"/proc/{pid}/{part}").read_bytes()))
            except OSError:
                continue  # ended meanwhile
    return found


def _benchmark_environment(lab: Lab) -> bytes:
    """Run the declared ``environ`` workload through the agent, as the director would ask it."""
    bus = RabbitMQBus(lab.amqp_url, lab=lab.lab, client_name="security-suite")
    received: queue.Queue[Message] = queue.Queue()
    spec = topology.QueueSpec("", topology.EVENTS_EXCHANGE, (f"workload_phase.*.{lab.sut}",), durable=False,
                              exclusive=True)
    bus.subscribe(spec, lambda message, delivery: received.put(message))
    run_id = f"environ-{uuid.uuid4().hex[:6]}"
    try:
        bus.publish(RunWorkloadPhase(run_id=run_id, sut=lab.sut, mode="ranging", workload="environ"),
                    topology.command_key("agent", lab.sut, lab=lab.lab))

        def ended() -> bool:
            try:
                message = received.get(timeout=0.5)
            except queue.Empty:
                return False
            return isinstance(message, WorkloadPhase) and message.run_id == run_id and \
                message.state in ("finished", "failed")

        wait_until(ended, 60, "the environ workload to end", every_s=0)
    finally:
        bus.close()
    return (lab.results / run_id / "ranging" / "environ.bin").read_bytes()


def _send_escapes(lab: Lab) -> None:
    """Client text with terminal escapes at the simulator and the agent (logged, if at all, escaped)."""
    import socket

    with socket.create_connection(("127.0.0.1", lab.ports["scpi"]), timeout=5) as sock:
        sock.sendall(ESCAPE.encode() + b"\n*IDN?\n")
        sock.recv(100)
    lab.http("PUT", "sim-control", "/load", token=lab.token, json={"spec": ESCAPE})
    bus = RabbitMQBus(lab.amqp_url, lab=lab.lab, client_name="security-suite")
    try:
        key = topology.command_key("agent", lab.sut, lab=lab.lab)
        raw = {"v": 1, "type": "cmd.run_workload_phase", "run_id": ESCAPE + "x" * 500, "sut": lab.sut,
               "mode": "ranging", "workload": "nope"}
        bus.publish_raw(topology.COMMANDS_EXCHANGE, key, json.dumps(raw).encode())  # past the schema: refused
        bus.publish(RunWorkloadPhase(run_id="r", sut=ESCAPE + "x" * 500, mode="ranging", workload="nope"), key)
    finally:
        bus.close()


def test_no_secret_anywhere_and_no_raw_client_text_in_logs(lab: Lab, measured: dict[str, Any], amqp_url: str) -> None:
    _send_escapes(lab)
    seen = _benchmark_environment(lab)
    variables = {item.split(b"=", 1)[0].decode() for item in seen.split(b"\0") if item}
    assert variables <= AGENT_ENV_ALLOWED, variables - AGENT_ENV_ALLOWED
    wait_until(lambda: "FORGED" in (lab.logs / "sut-agent.log").read_text(errors="replace"), 30,
             "the agent to log the refused commands")
    secrets = _secrets(lab, amqp_url)
    places: list[tuple[str, bytes]] = [(f"HTTP answer #{i}", answer.encode("utf-8", errors="replace"))
                                       for i, answer in enumerate(lab.answers)]
    places += _file_texts(lab.logs) + _file_texts(lab.results) + _processes(lab)
    places.append(("the benchmark's own /proc/self/environ", seen))
    leaks = [leak for where, data in places for leak in _leaks(data, where, secrets)]
    LEDGER.searched(len(places), leaks)
    assert leaks == []
    for name in ("analyzer-sim.log", "sut-agent.log"):
        text = (lab.logs / name).read_bytes()
        assert b"\x1b" not in text and b"\rlog line" not in text, f"raw client text in {name}"
        assert b"x" * 200 not in text, f"unbounded client text in {name}"


def test_the_director_log_carries_client_text_escaped(lab: Lab, measured: dict[str, Any]) -> None:
    client = ProtocolClient("127.0.0.1", lab.ports["power-dev"], timeout_s=30)
    try:
        assert client.command("mlcommons/power client v3") == "mlcommons/power server v3"
        client.command(ESCAPE + "y" * 1000)
    finally:
        client.close()
    log = lab.logs / "director.log"
    wait_until(lambda: b"FORGED" in log.read_bytes(), 30, "the director to log the line")
    text = log.read_bytes()
    assert b"\x1b" not in text and b"y" * 500 not in text
