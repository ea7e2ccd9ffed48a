"""The SUT's own workload declarations: what a request may name, with which parameters, in which
environment; everything else refused before anything runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from mlpower.schema import WorkloadRequest
from mlpower.sut_agent.errors import RegistryError, WorkloadRefused
from mlpower.sut_agent.registry import DeclaredWorkload, describe, load_registry
from mlpower.sut_agent.workloads import BUILTIN_WORKLOADS, parse_workload, run_workload, workload_environment

SECRETS = {"AMQP_URL": "amqp://agent:pw-never-to-a-benchmark@127.0.0.1/", "MLPOWER_API_TOKEN": "tok-never-either",
           "AMQP_URL_FILE": "/run/secrets/amqp", "MLPOWER_API_TOKEN_FILE": "/run/secrets/token"}
DECLARED = """
[workloads.resnet50]
description = "ResNet-50"
command = ["python3", "bench.py", "--scenario", "{scenario}", "--logs", "{log_dir}", "--seconds", "{duration_s}"]
params = ["duration_s", "scenario"]
scenarios = ["Server", "Offline"]
env = { OMP_NUM_THREADS = "4" }
pass_env = ["HF_HOME"]

[workloads."shell-one"]
command = "echo {mode} > {log_dir}/mode.txt"
"""


def _file(tmp_path: Path, text: str, mode: int = 0o644) -> Path:
    path = tmp_path / "workloads.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_declared_workloads_are_found_by_name_with_their_parameters(tmp_path: Path) -> None:
    registry = load_registry(_file(tmp_path, DECLARED))
    assert registry.names == [*BUILTIN_WORKLOADS, "resnet50", "shell-one"]
    workload, duration_s = registry.resolve(WorkloadRequest(name="resnet50", duration_s=30), "builtin:offline")
    assert isinstance(workload, DeclaredWorkload) and duration_s == 30
    assert workload.scenario == "Server"  # the first declared one
    assert workload.command(Path("/r/x y"), 30.0, "testing") == [
        "python3", "bench.py", "--scenario", "Server", "--logs", "/r/x y", "--seconds", "30"]
    chosen, _ = registry.resolve(WorkloadRequest(name="resnet50", scenario="Offline"), "builtin:offline")
    assert chosen.scenario == "Offline"
    default, none = registry.resolve(None, "shell-one")
    assert default.name == "shell-one" and none is None
    builtin, _ = registry.resolve(WorkloadRequest(name="builtin:server", duration_s=2), "shell-one")
    assert builtin is BUILTIN_WORKLOADS["builtin:server"]
    status = describe(registry)
    assert status["declared"]["resnet50"] == {"params": ["duration_s", "scenario"], "scenarios": ["Server", "Offline"],
                                             "description": "ResNet-50"}
    assert "bench.py" not in repr(status)  # names and parameters, never commands


@pytest.mark.parametrize("request_, reason", [
    (WorkloadRequest(name="nothing"), "unknown workload 'nothing'"),
    (WorkloadRequest(name="builtin:training"), "unknown workload 'builtin:training'"),
    (WorkloadRequest(name="shell-one", duration_s=3), "shell-one takes no parameter duration_s"),
    (WorkloadRequest(name="shell-one", scenario="Offline"), "shell-one takes no parameter scenario"),
    (WorkloadRequest(name="resnet50", scenario="SingleStream"), "declares scenarios Server, Offline, not SingleStream"),
    (WorkloadRequest(name="builtin:offline", scenario="Offline"), "builtin:offline takes no parameter scenario"),
])
def test_unknown_names_and_undeclared_parameters_are_refused(tmp_path: Path, request_: WorkloadRequest,
                                                             reason: str) -> None:
    registry = load_registry(_file(tmp_path, DECLARED))
    with pytest.raises(WorkloadRefused, match=reason):
        registry.resolve(request_, "builtin:offline")


def test_the_owner_can_switch_the_builtins_off(tmp_path: Path) -> None:
    registry = load_registry(_file(tmp_path, "builtins = false\n" + DECLARED))
    assert registry.names == ["resnet50", "shell-one"]
    with pytest.raises(WorkloadRefused, match="unknown workload 'builtin:offline'"):
        registry.resolve(None, "builtin:offline")


def test_without_a_file_only_the_builtins() -> None:
    registry = load_registry(None)
    assert registry.names == list(BUILTIN_WORKLOADS)
    with pytest.raises(WorkloadRefused, match="MLPOWER_AGENT_WORKLOADS not set"):
        registry.resolve(WorkloadRequest(name="resnet50"), "builtin:offline")
    with pytest.raises(WorkloadRefused, match="not a workload name"):
        registry.resolve(None, "echo hi; touch /tmp/x")  # a client-mode command is no bus-mode default


@pytest.mark.parametrize("text, problem", [
    ('[workloads."bad name"]\ncommand = "true"\n', "a name is letters, digits"),
    ('[workloads."builtin:x"]\ncommand = "true"\n', "a name is letters, digits"),
    ('[workloads.a]\ncommand = "true"\npass_env = ["AMQP_URL"]\n', "AMQP_URL is the agent's own"),
    ('[workloads.a]\ncommand = "true"\nenv = { MLPOWER_API_TOKEN = "x" }\n', "MLPOWER_API_TOKEN is the agent's own"),
    ('[workloads.a]\ncommand = "true"\npass_env = ["NOT-A-NAME"]\n', "not an environment variable name"),
    ('[workloads.a]\ncommand = "run {scenario}"\n', "uses {scenario} but its params do not declare scenario"),
    ('[workloads.a]\ncommand = "true"\nparams = ["scenario"]\n', "scenario parameter and a scenarios list"),
    ('[workloads.a]\ncommand = "true"\nparams = ["gpus"]\n', "workloads.a.params.0"),
    ('[workloads.a]\ncommand = "true"\nshell = true\n', "workloads.a.shell"),
    ('[workloads.a]\ncommand = []\n', "workloads.a.command"),
    ('[workloads.a]\ncommand = ["run", ""]\n', "an empty argument"),
    ("[workloads.a\n", "not TOML"),
])
def test_bad_declarations_stop_the_start_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(RegistryError, match="workloads.toml") as raised:
        load_registry(path)
    assert problem in str(raised.value)


def test_a_declaration_file_others_may_write_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="writable by others than its owner"):
        load_registry(_file(tmp_path, DECLARED, mode=0o666))
    with pytest.raises(RegistryError, match="cannot be read"):
        load_registry(tmp_path / "missing.toml")


def test_a_declared_workload_gets_only_its_declared_environment(tmp_path: Path) -> None:
    registry = load_registry(_file(tmp_path, DECLARED))
    workload, _ = registry.resolve(WorkloadRequest(name="resnet50"), "builtin:offline")
    source = {**SECRETS, "PATH": "/usr/bin", "HOME": "/home/sut", "HF_HOME": "/models", "OTHER": "not declared",
              "RABBITMQ_PASSWORD": "no"}
    env = workload_environment(workload, tmp_path, "ranging", 12.0, source)
    assert env == {"PATH": "/usr/bin", "HOME": "/home/sut", "HF_HOME": "/models", "OMP_NUM_THREADS": "4", "TZ": "UTC",
                   "MLPOWER_LOADGEN_LOG_DIR": str(tmp_path), "MLPOWER_MODE": "ranging", "MLPOWER_DURATION_S": "12",
                   "MLPOWER_SCENARIO": "Server"}
    builtin = workload_environment(BUILTIN_WORKLOADS["builtin:offline"], tmp_path, "testing", 1.0, source)
    assert set(builtin) == {"PATH", "HOME", "TZ", "MLPOWER_LOADGEN_LOG_DIR", "MLPOWER_MODE", "MLPOWER_DURATION_S"}
    # the machine's thread counts reach the built-ins (its math libraries read them), nothing else does
    threads = workload_environment(BUILTIN_WORKLOADS["builtin:offline"], tmp_path, "testing", 1.0,
                                   {**source, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "2"})
    assert set(threads) - set(builtin) == {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"}
    assert threads["OPENBLAS_NUM_THREADS"] == "1" and threads["OMP_NUM_THREADS"] == "2"
    owner = workload_environment(parse_workload("my-bench --fast"), tmp_path, "testing", 1.0, source)
    assert owner["HF_HOME"] == "/models" and owner["OTHER"] == "not declared"  # the owner's own command
    assert not set(SECRETS) & set(owner) and not set(SECRETS) & set(builtin)


def test_what_the_benchmark_process_sees_holds_no_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HF_HOME", "/models")
    registry = load_registry(_file(tmp_path, DECLARED + """
[workloads.environ]
command = ["sh", "-c", "cat /proc/self/environ > \\"$MLPOWER_LOADGEN_LOG_DIR/environ\\""]
pass_env = ["HF_HOME"]
"""))
    workload, _ = registry.resolve(WorkloadRequest(name="environ"), "builtin:offline")
    run_workload(workload, tmp_path / "logs", "testing", 1.0)
    seen = (tmp_path / "logs" / "environ").read_bytes()
    for value in SECRETS.values():
        assert value.encode() not in seen
    variables = {item.split(b"=", 1)[0].decode() for item in seen.split(b"\0") if item}
    assert variables <= {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "HF_HOME", "TZ", "PWD", "SHLVL", "_",
                         "MLPOWER_LOADGEN_LOG_DIR", "MLPOWER_MODE", "MLPOWER_DURATION_S"}, variables


def test_placeholders_are_quoted_for_the_shell(tmp_path: Path) -> None:
    registry = load_registry(_file(tmp_path, DECLARED))
    workload, _ = registry.resolve(WorkloadRequest(name="shell-one"), "builtin:offline")
    marker = tmp_path / "PWNED"
    log_dir = tmp_path / f"$(touch {marker}); `touch {marker}`"
    run_workload(workload, log_dir, "testing", 1.0)
    assert (log_dir / "mode.txt").read_text().strip() == "testing"
    assert not marker.exists()


def test_the_cli_refuses_a_bad_declaration_file_with_one_line(tmp_path: Path) -> None:
    import subprocess

    path = _file(tmp_path, '[workloads.a]\ncommand = "true"\npass_env = ["AMQP_URL"]\n')
    env = {**os.environ, "MLPOWER_BUS": "memory", "MLPOWER_AGENT_HTTP_PORT": "0"}
    done = subprocess.run([sys.executable, "-m", "mlpower", "agent", "--bus", "--workloads", str(path)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"mlpower: error: {path}: workload 'a': AMQP_URL is the agent's own (its settings and credentials never "
        "reach a workload)"]
    done = subprocess.run([sys.executable, "-m", "mlpower", "agent", "--bus", "--workload", "nothing"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and "unknown workload 'nothing'" in done.stderr
