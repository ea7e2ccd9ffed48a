"""The director's settings: which analyzer, where to listen, how fast to sample, where results go."""

from __future__ import annotations

import os
from pathlib import Path

from mlpower.settings import ServiceSettings
from pydantic import Field, field_validator, model_validator

from .channels import ChannelSpec, parse_channels
from .recorder import DEFAULT_PAGE_INTERVAL_S

UPSTREAM_SLEEP_S = 10.0
"""power-dev's ANALYZER_SLEEP_SECONDS: the pause inside every start (before Go) and every stop."""

DEBUG_SLEEP_S = 0.5
"""The sleep upstream uses when ``MLPP_DEBUG`` is set (and then marks server.json ``debug``)."""


class DirectorSettings(ServiceSettings):
    HTTP_HOST_FIELD = "host"
    analyzer: str = Field(default="", validation_alias="MLPOWER_ANALYZER",
                          description="analyzer channel(s), comma-separated [name=]resource[#element]: a VISA "
                                      "resource, serial path, ptd://host:port, nvml or rapl; several channels are "
                                      "one SUT measurement (their sum is the SUT's power)")
    analyzer_name: str = Field(default="analyzer1", validation_alias="MLPOWER_ANALYZER_NAME",
                               pattern=r"^[A-Za-z0-9_\-]+$")
    sut: str = Field(default="sut", validation_alias="MLPOWER_SUT", pattern=r"^[A-Za-z0-9_\-]+$")
    host: str = Field(default="127.0.0.1", validation_alias="MLPOWER_DIRECTOR_HOST",
                      description="listen address of power-dev and HTTP; 0.0.0.0 to accept other machines")
    powerdev_port: int = Field(default=4950, ge=0, le=65535, validation_alias="MLPOWER_POWERDEV_PORT")
    http_port: int = Field(default=8000, ge=0, le=65535, validation_alias="MLPOWER_DIRECTOR_HTTP_PORT")
    sample_interval_s: float = Field(default=1.0, ge=0.1, le=60.0, validation_alias="MLPOWER_SAMPLE_INTERVAL_S")
    page_interval_s: float = Field(default=DEFAULT_PAGE_INTERVAL_S, gt=0, le=60.0,
                                   validation_alias="MLPOWER_PAGE_INTERVAL_S",
                                   description="a sample page is published at least this often")
    page_max_samples: int = Field(default=50, ge=1, le=10_000, validation_alias="MLPOWER_PAGE_MAX_SAMPLES")
    analyzer_sleep_s: float | None = Field(default=None, ge=0, le=60, validation_alias="MLPOWER_ANALYZER_SLEEP_S",
                                           description="pause in every start/stop; default 10 s (0.5 s with "
                                                       "MLPP_DEBUG); anything under 10 s marks server.json debug")
    upstream_debug: bool = Field(default=False, validation_alias="MLPOWER_MLPP_DEBUG",
                             description="set by the presence of MLPP_DEBUG (any value, as upstream)")
    max_line_bytes: int = Field(default=4096, ge=64, le=1_048_576, validation_alias="MLPOWER_MAX_LINE_BYTES")
    powerdev_handshake_timeout_s: float = Field(default=10.0, gt=0, le=600,
                                                validation_alias="MLPOWER_POWERDEV_HANDSHAKE_TIMEOUT_S",
                                                description="a power-dev client must send its magic line this soon")
    powerdev_idle_timeout_s: float = Field(default=120.0, gt=0, le=86_400,
                                           validation_alias="MLPOWER_POWERDEV_IDLE_TIMEOUT_S",
                                           description="a power-dev client without an open session that is "
                                                       "silent this long is disconnected")
    powerdev_max_connections: int = Field(default=64, ge=1, le=4096,
                                          validation_alias="MLPOWER_POWERDEV_MAX_CONNECTIONS",
                                          description="power-dev connections served at once; one more is "
                                                      "answered 'Error: busy' and closed")
    ntp_command: str = Field(default="", validation_alias="MLPOWER_NTP_COMMAND",
                             description="run for set_ntp (e.g. 'ntpdate -b -- pool.ntp.org'); empty = refuse")
    cleanup_deletes: bool = Field(default=False, validation_alias="MLPOWER_CLEANUP_DELETES",
                                  description="cleanup deletes the session folder (upstream) instead of keeping it")
    phase_timeout_s: float = Field(default=3600.0, gt=0, validation_alias="MLPOWER_PHASE_TIMEOUT_S",
                                   description="bus mode: the longest a phase may last while its agent is alive")
    heartbeat_s: float = Field(default=2.0, gt=0, le=60, validation_alias="MLPOWER_HEARTBEAT_S",
                               description="bus mode: the agent's heartbeat interval; the run fails after "
                                           "3 intervals without a sign of life from the agent")
    analyzer_probe_s: float = Field(default=10.0, ge=0, le=3600, validation_alias="MLPOWER_ANALYZER_PROBE_S",
                                    description="between runs, open the analyzer this often so "
                                                "mlpower_analyzer_up stays true (0: never)")
    ptd_launch: bool = Field(default=False, validation_alias="MLPOWER_PTD_LAUNCH",
                             description="for a ptd:// analyzer: launch PTDaemon per session (as power-dev does)")
    ptd_command: str = Field(default="", validation_alias="MLPOWER_PTD_COMMAND",
                             description="the PTDaemon executable (default: mlpower's emulator)")
    ptd_device_type: int = Field(default=49, validation_alias="MLPOWER_PTD_DEVICE_TYPE")
    ptd_interface_flag: str = Field(default="", validation_alias="MLPOWER_PTD_INTERFACE_FLAG",
                                    pattern=r"^(|-n|-g|-y|-U)$", description="PTDaemon's interface flag (-n: network)")
    ptd_device_port: str = Field(default="", validation_alias="MLPOWER_PTD_DEVICE_PORT",
                                 description="what PTDaemon talks to, e.g. the simulator's host:port or /dev/usbtmc0")
    bus_mode: bool = Field(default=True, validation_alias="MLPOWER_DIRECTOR_BUS_MODE")
    spool_dir: Path | None = Field(default=None, validation_alias="MLPOWER_SPOOL_DIR",
                                   description="folder of the bus spool: publishes the broker has not confirmed "
                                               "are kept there (across a restart too) and replayed in order")

    @property
    def spool_path(self) -> Path | None:
        return None if self.spool_dir is None else self.spool_dir / f"director-{self.sut}.jsonl"

    @model_validator(mode="before")
    @classmethod
    def _upstream_debug_from_environment(cls, values: object) -> object:
        # upstream: MLPP_DEBUG with any value (even empty) switches debug on
        if isinstance(values, dict) and not {"upstream_debug", "MLPOWER_MLPP_DEBUG"} & set(values) \
                and "MLPP_DEBUG" in os.environ:
            values = {**values, "upstream_debug": True}
        return values

    @field_validator("analyzer")
    @classmethod
    def _strip(cls, value: str) -> str:
        from .errors import ResourceError

        try:
            parse_channels(value)
        except ResourceError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @property
    def sleep_s(self) -> float:
        if self.analyzer_sleep_s is not None:
            return self.analyzer_sleep_s
        return DEBUG_SLEEP_S if self.upstream_debug else UPSTREAM_SLEEP_S

    @property
    def debug(self) -> bool:
        """Honest marking: any shortened sleep makes the session non-compliant, as MLPP_DEBUG does upstream."""
        return self.upstream_debug or self.sleep_s < UPSTREAM_SLEEP_S

    @property
    def analyzers(self) -> tuple[str, ...]:
        """The channels as declared (``[name=]resource[#element]``), one per entry."""
        return tuple(part.strip() for part in self.analyzer.split(",") if part.strip())

    @property
    def channels(self) -> tuple[ChannelSpec, ...]:
        return parse_channels(self.analyzer, self.analyzer_name)
