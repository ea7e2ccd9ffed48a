"""The SUT agent's settings (environment variables; the CLI's flags override them)."""

from __future__ import annotations

from pathlib import Path

from mlpower.settings import ServiceSettings
from mlpower.sut_agent.errors import AgentError
from pydantic import Field


class Settings(ServiceSettings):
    HTTP_HOST_FIELD = "http_host"
    sut: str = Field(default="sut", validation_alias="MLPOWER_SUT", pattern=r"^[A-Za-z0-9_\-]+$")
    # Client mode: a built-in or the owner's shell command. Bus mode: the default workload's name,
    # one of those the SUT declares (MLPOWER_AGENT_WORKLOADS) or a built-in.
    workload: str = Field(default="builtin:offline", validation_alias="MLPOWER_AGENT_WORKLOAD")
    workloads_file: Path | None = Field(default=None, validation_alias="MLPOWER_AGENT_WORKLOADS",
                                        description="TOML file declaring the workloads bus mode may run")
    # 600 s is the rules' minimum run length; shorter runs are marked non-compliant in the outputs.
    duration_s: float = Field(default=600.0, gt=0, validation_alias="MLPOWER_AGENT_DURATION_S")
    # The director's power-dev server, HOST[:PORT]: the client-mode peer, and in bus mode the clock reference.
    server: str = Field(default="", validation_alias="MLPOWER_AGENT_SERVER")
    ntp: str = Field(default="", validation_alias="MLPOWER_AGENT_NTP")
    label: str = Field(default="", validation_alias="MLPOWER_AGENT_LABEL", pattern=r"^[A-Za-z0-9_\-]*$")
    allow_clock_offset: bool = Field(default=False, validation_alias="MLPOWER_AGENT_ALLOW_CLOCK_OFFSET")
    reply_timeout_s: float = Field(default=120.0, gt=0, validation_alias="MLPOWER_AGENT_REPLY_TIMEOUT_S")
    workload_timeout_s: float = Field(default=7200.0, gt=0, validation_alias="MLPOWER_AGENT_WORKLOAD_TIMEOUT_S")
    # Bus mode: how often the agent says it is alive while it runs a phase (the director's
    # MLPOWER_HEARTBEAT_S must match), and how long a workload asked to stop gets before SIGKILL.
    heartbeat_s: float = Field(default=2.0, gt=0, le=60, validation_alias="MLPOWER_HEARTBEAT_S")
    stop_grace_s: float = Field(default=5.0, ge=0, le=600, validation_alias="MLPOWER_AGENT_STOP_GRACE_S")
    # The HTTP app (/healthz, /metrics, /status). Loopback by default; containers set 0.0.0.0.
    http_host: str = Field(default="127.0.0.1", validation_alias="MLPOWER_AGENT_HOST")
    http_port: int = Field(default=8004, ge=0, le=65535, validation_alias="MLPOWER_AGENT_HTTP_PORT")


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:port`` too) to a host and a port."""
    text = address.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host or (port_text and not port_text.isdigit()):
        raise AgentError(f"bad server address {address!r}: expected HOST[:PORT]")
    return host, int(port_text) if port_text else default_port
