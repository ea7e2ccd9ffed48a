"""The workloads this SUT runs in bus mode: its owner's declarations, never a request's text.

A director, the bus or an HTTP client picks a workload by name (``WorkloadRequest``) and may set
the parameters that workload declares; the agent looks the name up here, refuses an unknown name
or an undeclared parameter before anything runs, and runs the command its owner wrote.

The declarations live in a TOML file on the SUT, named by ``MLPOWER_AGENT_WORKLOADS`` (or
``mlpower agent --workloads FILE``), read once at start-up::

    builtins = true                      # also offer builtin:offline|server|singlestream[:cuda] (default)

    [workloads.resnet50]
    description = "ResNet-50 on the first GPU"
    command = ["python3", "/opt/bench/resnet50.py", "--scenario", "{scenario}", "--logs", "{log_dir}"]
    params = ["duration_s", "scenario"]  # what a request may set
    scenarios = ["Offline", "Server"]    # the first one is the default
    env = { CUDA_VISIBLE_DEVICES = "0" } # the benchmark's environment, besides PATH, HOME, LANG, TMPDIR
    pass_env = ["HF_HOME"]               # passed on from the agent's environment, by name

``command`` is an argument list (run without a shell) or one string (run by ``/bin/sh``: the
owner's own shell text). Placeholders ``{log_dir}``, ``{mode}``, ``{duration_s}`` and, for a
workload that declares it, ``{scenario}`` are filled in (quoted for the shell); the same values
reach the workload as ``MLPOWER_LOADGEN_LOG_DIR``, ``MLPOWER_MODE``, ``MLPOWER_DURATION_S`` and
``MLPOWER_SCENARIO``. ``env`` and ``pass_env`` may not name the agent's own variables (``AMQP_*``,
``MLPOWER_*``). The file must not be writable by others than its owner: it says what runs here.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mlpower.logtext import client_text
from mlpower.schema import Scenario, WorkloadRequest
from mlpower.sut_agent.errors import RegistryError, WorkloadRefused
from mlpower.sut_agent.workloads import (
    AGENT_OWN_ENV,
    BUILTIN_PREFIX,
    BUILTIN_WORKLOADS,
    LOG_DIR_PLACEHOLDER,
    Workload,
    base_environment,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DECLARED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
"""A declared workload's name: the schema's workload names without ``:`` (``builtin:`` is reserved)."""
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PLACEHOLDER = re.compile(r"\{(log_dir|mode|duration_s|scenario)\}")
Param = Literal["duration_s", "scenario"]


@dataclass(frozen=True)
class DeclaredWorkload:
    """A workload its owner declared; ``scenario`` is the one a request chose (or the first declared)."""

    name: str
    argv: tuple[str, ...] | None
    shell: str | None
    params: frozenset[str] = frozenset()
    scenarios: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()
    description: str = ""
    scenario: str | None = None

    def _values(self, log_dir: Path, duration_s: float, mode: str) -> dict[str, str]:
        return {LOG_DIR_PLACEHOLDER[1:-1]: str(log_dir), "mode": mode, "duration_s": f"{duration_s:g}",
                "scenario": self.scenario or ""}

    def command(self, log_dir: Path, duration_s: float, mode: str = "") -> list[str] | str:
        values = self._values(log_dir, duration_s, mode)
        if self.argv is not None:  # no shell: each value is one argument, whatever it contains
            return [PLACEHOLDER.sub(lambda m: values[m[1]], arg) for arg in self.argv]
        assert self.shell is not None
        return PLACEHOLDER.sub(lambda m: shlex.quote(values[m[1]]), self.shell)

    def environment(self, source: Mapping[str, str]) -> dict[str, str]:
        passed = {name: source[name] for name in self.pass_env if name in source}
        return {**base_environment(source), **passed, **self.env}


class _Declaration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str | list[str] = Field(min_length=1)
    params: list[Param] = []
    scenarios: list[Scenario] = []
    env: dict[str, str] = {}
    pass_env: list[str] = []
    description: str = ""


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    builtins: bool = True
    workloads: dict[str, _Declaration] = {}


@dataclass(frozen=True)
class Registry:
    """The workloads this SUT offers: its declarations, plus the built-ins unless switched off."""

    declared: Mapping[str, DeclaredWorkload] = field(default_factory=dict)
    builtins: bool = True
    source: str = "the built-ins only (MLPOWER_AGENT_WORKLOADS not set)"

    @property
    def names(self) -> list[str]:
        return (list(BUILTIN_WORKLOADS) if self.builtins else []) + sorted(self.declared)

    def resolve(self, request: WorkloadRequest | None, default: str) -> tuple[Workload, float | None]:
        """The workload a request names (or ``default``) and its asked duration; WorkloadRefused else.

        Nothing runs before this answers: an unknown name or an undeclared parameter is refused here.
        """
        if request is None:
            try:
                request = WorkloadRequest(name=default)
            except ValidationError:
                raise WorkloadRefused(f"the default workload {client_text(default)} is not a workload name") from None
        name = request.name
        workload: Workload | None
        if name.lower().startswith(BUILTIN_PREFIX):
            workload = BUILTIN_WORKLOADS.get(name.lower()) if self.builtins else None
        else:
            workload = self.declared.get(name)
        if workload is None:
            raise WorkloadRefused(f"unknown workload {client_text(name)}: this SUT declares "
                                  f"{', '.join(self.names) or 'none'} ({self.source})")
        asked = {"duration_s": request.duration_s, "scenario": request.scenario}
        for param, value in asked.items():
            if value is not None and param not in workload.params:
                takes = ", ".join(sorted(workload.params)) or "none"
                raise WorkloadRefused(f"workload {workload.name} takes no parameter {param} (it takes: {takes})")
        if isinstance(workload, DeclaredWorkload) and workload.scenarios:
            if request.scenario is not None and request.scenario not in workload.scenarios:
                raise WorkloadRefused(f"workload {workload.name} declares scenarios {', '.join(workload.scenarios)}, "
                                      f"not {request.scenario}")
            workload = replace(workload, scenario=request.scenario or workload.scenarios[0])
        return workload, request.duration_s


def _declared(name: str, declaration: _Declaration, where: str) -> DeclaredWorkload:
    def refuse(problem: str) -> RegistryError:
        return RegistryError(f"{where}: workload {client_text(name)}: {problem}")

    if not DECLARED_NAME.match(name):
        raise refuse("a name is letters, digits and _ . - (at most 64; 'builtin:' is reserved)")
    for variable in [*declaration.env, *declaration.pass_env]:
        if not ENV_NAME.match(variable):
            raise refuse(f"{client_text(variable)} is not an environment variable name")
        if AGENT_OWN_ENV.match(variable):
            raise refuse(f"{variable} is the agent's own (its settings and credentials never reach a workload)")
    params = frozenset(declaration.params)
    if ("scenario" in params) != bool(declaration.scenarios):
        raise refuse("the scenario parameter and a scenarios list go together")
    text = declaration.command if isinstance(declaration.command, str) else " ".join(declaration.command)
    if "{scenario}" in text and "scenario" not in params:
        raise refuse("its command uses {scenario} but its params do not declare scenario")
    if isinstance(declaration.command, list) and not all(declaration.command):
        raise refuse("an empty argument in its command")
    return DeclaredWorkload(
        name=name,
        argv=tuple(declaration.command) if isinstance(declaration.command, list) else None,
        shell=declaration.command if isinstance(declaration.command, str) else None,
        params=params, scenarios=tuple(declaration.scenarios), env=dict(declaration.env),
        pass_env=tuple(declaration.pass_env), description=declaration.description,
    )


def load_registry(path: Path | None) -> Registry:
    """The SUT's declarations from ``path`` (None: the built-ins only); RegistryError names what is wrong."""
    if path is None:
        return Registry()
    where = str(path)
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            raw = tomllib.load(handle)
    except OSError as exc:
        raise RegistryError(f"{where}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{where}: not TOML ({exc})") from None
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RegistryError(f"{where}: writable by others than its owner; it says what runs on this SUT "
                            f"(chmod go-w {shlex.quote(where)})")
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(part) for part in first.get("loc", ()))
        raise RegistryError(f"{where}: {at or 'the file'}: {first.get('msg')}") from None
    declared = {name: _declared(name, entry, where) for name, entry in parsed.workloads.items()}
    return Registry(declared=declared, builtins=parsed.builtins, source=where)


def describe(registry: Registry) -> dict[str, Any]:
    """The declared workloads as the agent's /status shows them (names, parameters; never commands)."""
    return {"source": registry.source, "builtins": registry.builtins,
            "declared": {name: {"params": sorted(w.params), "scenarios": list(w.scenarios),
                                "description": w.description} for name, w in registry.declared.items()}}
