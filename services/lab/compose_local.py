"""The compose lab's mlpower services as local processes, from ``deploy/compose.yaml`` itself.

``mlpower lab up`` runs every service built from ``deploy/Dockerfile`` with exactly the command
and environment its container gets; only what a container namespace gives for free is mapped:
service hostnames become 127.0.0.1 (each service has its own default port, so nothing clashes),
volume and secret paths become folders and files under the lab's work folder, and listen
addresses (``MLPOWER_*_HOST``: 0.0.0.0 inside a container reaches its own network only) become
the bind address, 127.0.0.1 unless the user chose another.

The compose file is read with PyYAML (anchors and ``<<`` merges are YAML's own) and Compose's
``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``${VAR:?message}`` interpolation; the
test suite checks the result against what the real Compose binary resolves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mlpower.lab.credentials import write_secret
from mlpower.lab.errors import LabError

MLPOWER_DOCKERFILE = "deploy/Dockerfile"
LISTEN_HOST = re.compile(r"^MLPOWER_[A-Z_]+_HOST$")
PORT_SETTING = re.compile(r"^MLPOWER_[A-Z_]*PORT$")
LOCAL_PORT = re.compile(r"(127\.0\.0\.1::?)(\d+)")  # host:port, and a VISA resource's host::port
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
                       r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class LocalService:
    name: str
    argv: list[str]  # ["mlpower", <sub-command>, ...]
    env: dict[str, str]  # the service's whole environment from the compose file, remapped
    health_url: str | None  # what its health check probes; None for one-shot services
    depends_on: list[str]


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#") and "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = variables.get(name)
        if op == ":-":
            return value if value else interpolate(arg, variables)
        if op == "-":
            return value if value is not None else interpolate(arg, variables)
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise LabError(f"compose variable {name} is required: {arg}")
        return value or ""

    return _VARIABLE.sub(replace, text)


def _interpolate_tree(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables) for key, value in node.items()}
    return node


def _long_volume(volume: Any, compose_dir: Path, named: set[str]) -> dict[str, str]:
    if isinstance(volume, dict):
        return {"type": volume.get("type", "volume"), "source": str(volume.get("source", "")),
                "target": str(volume["target"])}
    source, target = str(volume).split(":")[:2]
    if source in named:
        return {"type": "volume", "source": source, "target": target}
    return {"type": "bind", "source": str((compose_dir / source).resolve()), "target": target}


def load_compose(compose_file: Path, variables: Mapping[str, str]) -> dict[str, Any]:
    """The compose model after interpolation, with volumes and depends_on in Compose's long form."""
    raw = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    config: dict[str, Any] = _interpolate_tree(raw, variables)
    named = set((config.get("volumes") or {}).keys())
    for secret in (config.get("secrets") or {}).values():
        if secret.get("file"):  # relative to the compose file, as Compose resolves it
            secret["file"] = str((compose_file.parent / secret["file"]).resolve())
    for service in config["services"].values():
        service["volumes"] = [_long_volume(v, compose_file.parent, named) for v in service.get("volumes", [])]
        depends = service.get("depends_on") or {}
        service["depends_on"] = {name: {} for name in depends} if isinstance(depends, list) else depends
        service["secrets"] = [s if isinstance(s, dict) else {"source": s} for s in service.get("secrets", [])]
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        service["environment"] = {key: "" if value is None else str(value) for key, value in environment.items()}
    return config


def dependency_order(services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name not in ordered:
            for dependency in sorted(services[name].get("depends_on", {})):
                if dependency in services:
                    visit(dependency)
            ordered.append(name)

    for name in sorted(services):
        visit(name)
    return ordered


def _lab_ports(services: Mapping[str, Mapping[str, Any]]) -> set[int]:
    """The ports the lab's services listen on: those they publish, and their own port settings."""
    ports = set()
    for service in services.values():
        for mapping in service.get("ports") or []:
            target = mapping.get("target") if isinstance(mapping, dict) else str(mapping).rsplit(":", 1)[-1]
            ports.add(int(str(target).split("/")[0]))
        ports |= {int(value) for key, value in (service.get("environment") or {}).items()
                  if PORT_SETTING.match(key) and str(value).isdigit()}
    return ports


def shift_ports(text: str, ports: set[int], offset: int) -> str:
    """``127.0.0.1:<port>`` of a lab port moved by ``offset`` (several labs on one machine)."""
    if not offset:
        return text
    return LOCAL_PORT.sub(lambda m: f"{m[1]}{int(m[2]) + offset}" if int(m[2]) in ports else m[0], text)


def local_services(config: Mapping[str, Any], workdir: Path, secret_values: Mapping[str, str],
                   overrides: Mapping[str, str] | None = None, bind_address: str = "127.0.0.1",
                   port_offset: int = 0) -> dict[str, LocalService]:
    """The services built from deploy/Dockerfile, in dependency order, ready to run as processes.

    ``port_offset`` moves every port the lab's services listen on (and every address of one)."""
    hostnames = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, sorted(config["services"], key=len, reverse=True)))
                           + r")(?=:)")
    ours = {name: service for name, service in config["services"].items()
            if (service.get("build") or {}).get("dockerfile") == MLPOWER_DOCKERFILE}
    ports = _lab_ports(ours)
    local = {}
    for name in dependency_order(ours):
        service = ours[name]
        paths: dict[str, str] = {}
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                paths[volume["target"]] = volume["source"]
            else:  # a named volume becomes a folder shared by the services that mount it
                folder = workdir / "volumes" / volume["source"]
                folder.mkdir(parents=True, exist_ok=True)
                paths[volume["target"]] = str(folder)
        for secret in service.get("secrets", []):
            defined = (config.get("secrets") or {}).get(secret["source"]) or {}
            if defined.get("file"):  # a file secret (the broker URLs): the process reads that file itself
                path = Path(defined["file"])
            else:
                path = workdir / "secrets" / secret["source"]
                write_secret(path, secret_values.get(secret["source"], ""))
            target = secret.get("target") or secret["source"]
            paths[target if target.startswith("/") else f"/run/secrets/{target}"] = str(path)

        def remap(value: str, paths: dict[str, str] = paths) -> str:
            for target, source in paths.items():
                if value == target or value.startswith(target + "/"):
                    return source + value[len(target):]
            return shift_ports(hostnames.sub("127.0.0.1", value), ports, port_offset)

        def setting(key: str, value: str) -> str:
            if LISTEN_HOST.match(key):
                return bind_address
            if port_offset and PORT_SETTING.match(key) and value.isdigit() and int(value) in ports:
                return str(int(value) + port_offset)
            return remap(value)

        env = {key: setting(key, str(value)) for key, value in (service.get("environment") or {}).items()}
        env.update(overrides or {})
        test = (service.get("healthcheck") or {}).get("test", [])
        probe = shift_ports(" ".join(test), ports, port_offset)
        urls = re.findall(r"http://127\.0\.0\.1:\d+/(?:healthz|readyz)", probe)
        local[name] = LocalService(name, ["mlpower", *service["command"]], env, urls[0] if urls else None,
                                   [dep for dep in service.get("depends_on", {}) if dep in ours])
    return local


def secret_values(config: Mapping[str, Any], variables: Mapping[str, str]) -> dict[str, str]:
    return {name: variables.get(secret.get("environment", ""), "")
            for name, secret in (config.get("secrets") or {}).items()}
