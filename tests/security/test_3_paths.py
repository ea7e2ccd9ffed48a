"""Path and traversal attempts on every input that names a file: the simulator's trace loads (HTTP
and CLI), the director's downloads (HTTP and power-dev), figures and analytics lookups. None
answers a byte of a file outside its folder, and no error quotes a file."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.director.powerdev_client import ProtocolClient
from tests.security.lab import SENTINEL, Lab
from tests.security.ledger import LEDGER

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

FOREIGN = (SENTINEL.encode(), b"root:x:0:0", b"root:*:", b"PATH=", b"AMQP_URL")


def trace_names(lab: Lab) -> list[str]:
    outside = lab.sentinel
    return ["/etc/passwd", "/etc/shadow", "/proc/self/environ", "/proc/self/cmdline", "../outside/sentinel.txt",
            "../../../../../../etc/passwd", str(outside), "link.csv", "escape/sentinel.txt",
            "./../outside/sentinel.txt",
            f"{lab.root}/traces/../outside/sentinel.txt", "ok.csv/../../outside/sentinel.txt", "%2e%2e/etc/passwd",
            "..\\\\outside\\\\sentinel.txt", "ok.csv\x00", "/dev/zero", "/dev/urandom", "."]


def _clean(data: bytes) -> bool:
    return not any(fragment in data for fragment in FOREIGN)


def test_trace_loads_over_http_stay_in_the_traces_folder(lab: Lab) -> None:
    for name in trace_names(lab):
        for spec in (f"trace:{name}", f"trace:{name}:1.5", f"trace:{name}:1:100"):
            answer = lab.http("PUT", "sim-control", "/load", token=lab.token, json={"spec": spec})
            refused = answer.status_code == 422 and _clean(answer.content)
            if str(lab.root) not in spec:  # nor where the server keeps its folder
                refused = refused and str(lab.root).encode() not in answer.content
            LEDGER.attempt("path: PUT :8003/load", spec, refused)
            assert refused, (spec, answer.status_code, answer.text[:300])
    good = lab.http("PUT", "sim-control", "/load", token=lab.token, json={"spec": "trace:ok.csv"})
    assert good.status_code == 200, good.text  # a trace inside the folder loads
    for spec in ("constant:nan", "constant:inf", "follow:nan:400", "profile:1:2:3:4:inf"):
        answer = lab.http("PUT", "sim-control", "/load", token=lab.token, json={"spec": spec})
        LEDGER.attempt("bad number: PUT :8003/load", spec, answer.status_code == 422)
        assert answer.status_code == 422, (spec, answer.text)
    lab.http("PUT", "sim-control", "/load", token=lab.token, json={"spec": "follow"})
    metrics = lab.http("GET", "sim-control", "/metrics").text
    assert "NaN" not in metrics and "nan" not in metrics.lower().replace("nanoseconds", "")


def test_trace_loads_on_the_command_line_stay_in_the_traces_folder(lab: Lab) -> None:
    for name in trace_names(lab):
        if "\x00" in name:
            continue  # an argument cannot carry NUL; the HTTP test covers it
        done = subprocess.run([sys.executable, "-m", "mlpower", "sim", "--port", "0", "--control-port", "-1",
                               "--load", f"trace:{name}"], env=lab.env, capture_output=True, timeout=60)
        output = done.stdout + done.stderr
        lab.answers.append(output.decode("utf-8", errors="replace"))
        refused = done.returncode == 2 and _clean(output) and len(done.stderr.strip().splitlines()) == 1
        LEDGER.attempt("path: mlpower sim --load", name, refused)
        assert refused, (name, done.returncode, output[-500:])


@pytest.mark.parametrize("resource", ["/dev/../etc/passwd", "/dev/pts/../../proc/self/environ",
                                      "ASRL/dev/../etc/shadow::INSTR", "/etc/passwd", "../../etc/passwd"])
def test_analyzer_resources_outside_dev_stop_the_director_at_start(lab: Lab, resource: str) -> None:
    # A serial path that climbs out of /dev would be opened as a meter at the first run: refused at start.
    done = subprocess.run([sys.executable, "-m", "mlpower", "director", "--no-bus", "--port", "0", "--http-port", "0",
                           "--out", str(lab.root / "director-out"), "--analyzer", f"a={resource}"],
                          env=lab.env, capture_output=True, timeout=60)
    output = done.stdout + done.stderr
    lab.answers.append(output.decode("utf-8", errors="replace"))
    refused = done.returncode == 2 and _clean(output) and len(done.stderr.strip().splitlines()) == 1
    LEDGER.attempt("path: mlpower director --analyzer", resource, refused)
    assert refused, (resource, done.returncode, output[-500:])


def test_downloads_serve_only_the_runs_own_files(lab: Lab, measured: dict[str, Any]) -> None:
    run_id, run_dir = measured["run_id"], measured["run_dir"]
    os.symlink(lab.sentinel, run_dir / "power" / "link.txt")  # planted in the run folder, pointing out
    os.symlink(lab.sentinel.parent, run_dir / "outlink")
    attempts = ["../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd",
                "power/link.txt", "outlink/sentinel.txt", "/etc/passwd", "%2Fetc%2Fpasswd", "..\\..\\etc\\passwd",
                "power/..%2f..%2f..%2foutside/sentinel.txt", "power/%00", "power/server.json%00.txt",
                f"../{run_id}/../../outside/sentinel.txt", "....//....//etc/passwd"]
    for path in attempts:
        answer = lab.http("GET", "director", f"/runs/{run_id}/files/{path}")
        refused = answer.status_code in (403, 404) and _clean(answer.content)
        LEDGER.attempt("path: GET :8000/runs/{id}/files", path, refused)
        assert refused, (path, answer.status_code)
    assert lab.http("GET", "director", f"/runs/{run_id}/files/power/server.json").status_code == 200
    for run in ("..", "../..", "%2e%2e", "..%2f..%2fetc", "x" * 300):
        answer = lab.http("GET", "director", f"/runs/{run}/files/etc/passwd")
        refused = answer.status_code in (403, 404, 422) and _clean(answer.content)
        LEDGER.attempt("path: GET :8000/runs/{id}/files", f"run id {run[:20]}", refused)
        assert refused


def test_power_dev_downloads_serve_only_the_listed_session_files(lab: Lab, measured: dict[str, Any]) -> None:
    client = ProtocolClient("127.0.0.1", lab.ports["power-dev"], timeout_s=30)
    try:
        assert client.command("mlcommons/power client v3") == "mlcommons/power server v3"
        for sid in (measured["run_id"], "*", "..", "../outside"):
            for path in ("../../../etc/passwd", "power/link.txt", "/etc/passwd", "power/../../outside/sentinel.txt",
                         "ranging/spl.txt/../../../outside/sentinel.txt", "power/server.json\x00"):
                client.send(f"download,{sid},{path}")
                reply = client._read_line_bytes() or b""
                refused = reply.startswith(b"Error") and _clean(reply)
                LEDGER.attempt("path: power-dev download", f"{sid} {path!r}", refused)
                assert refused, (sid, path, reply[:200])
    finally:
        client.close()


def test_figure_and_analytics_lookups_never_reach_a_file(lab: Lab, measured: dict[str, Any]) -> None:
    for path in ("/figures/..%2F..%2Fetc%2Fpasswd.png", "/figures/%2e%2e.json", "/figures/fig5a.png%00",
                 "/figures/fig5a.png?mode=../../etc", "/jobs/..%2F..%2Fetc%2Fpasswd"):
        answer = lab.http("GET", "figures", path)
        refused = answer.status_code in (404, 422) and _clean(answer.content)
        LEDGER.attempt("path: figures", path, refused)
        assert refused, (path, answer.status_code)
    for path in ("/runs/..%2F..%2Fetc%2Fpasswd", "/runs/../../etc/passwd/summary", "/runs/%2e%2e/findings"):
        answer = lab.http("GET", "analytics", path)
        refused = answer.status_code in (404, 422) and _clean(answer.content)
        LEDGER.attempt("path: analytics", path, refused)
        assert refused, (path, answer.status_code)
