"""The simulator's settings (environment variables); command-line options override them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlpower.settings import DEFAULT_TRACES_DIR, ServiceSettings
from pydantic import Field, ValidationInfo, field_validator, model_validator

if TYPE_CHECKING:
    from mlpower.analyzer_sim.split import ElementFeed


class Settings(ServiceSettings):
    HTTP_HOST_FIELD = "host"
    host: str = Field(default="127.0.0.1", validation_alias="MLPOWER_SIM_HOST")
    port: int = Field(default=10001, ge=0, le=65535, validation_alias="MLPOWER_SIM_PORT")
    control_port: int = Field(default=8003, ge=-1, le=65535, validation_alias="MLPOWER_SIM_CONTROL_PORT",
                              description="control API and /metrics; 0 = any free port, -1 = none")
    pty: bool = Field(default=False, validation_alias="MLPOWER_SIM_PTY")
    # before load: the load's validator reads it
    traces_dir: Path = Field(default=DEFAULT_TRACES_DIR, validation_alias="MLPOWER_SIM_TRACES_DIR",
                             description="the folder trace:CSV loads are read from (nothing outside it)")
    load: str = Field(default="constant:250", validation_alias="MLPOWER_SIM_LOAD")
    seed: int = Field(default=0, validation_alias="MLPOWER_SIM_SEED")
    sut: str = Field(default="*", validation_alias="MLPOWER_SIM_SUT", pattern=r"^(\*|[A-Za-z0-9_\-]+)$",
                     description="the SUT whose workload phases the follow load listens to; * = any")

    model: str = Field(default="WT310E", validation_alias="MLPOWER_SIM_MODEL", pattern=r"^[A-Za-z0-9_\-]{1,32}$",
                       description="WT310E (1 element), WT332E (2) or WT333E (3); other names act as a WT310E "
                       "(the name goes into *IDN?, so no commas, spaces or newlines)")
    # How the SUT's load divides over its PSUs, and which PSUs this meter's elements measure
    # (mlpower.analyzer_sim.split): e.g. two WT310Es on one SUT: both --split 0.5,0.5, --psus 1 / 2.
    split: str = Field(default="", validation_alias="MLPOWER_SIM_SPLIT", pattern=r"^[0-9.eE+\-, ]*$",
                       description="PSU shares of the SUT's load, e.g. 0.5,0.5 (default: equal over the elements)")
    imbalance: float = Field(default=0.0, ge=0, le=1, validation_alias="MLPOWER_SIM_IMBALANCE",
                             description="moves imbalance/n of the load from the last PSU to the first")
    psus: str = Field(default="", validation_alias="MLPOWER_SIM_PSUS", pattern=r"^[0-9, ]*$",
                      description="the PSUs (from 1) this meter's elements measure, e.g. 3,4 (default: 1..elements)")
    serial: str = Field(default="C2PH13047V", validation_alias="MLPOWER_SIM_SERIAL", pattern=r"^[A-Za-z0-9]{1,16}$")
    firmware: str = Field(default="F1.03", validation_alias="MLPOWER_SIM_FIRMWARE")

    mains_voltage_v: float = Field(default=230.0, gt=0, le=600, validation_alias="MLPOWER_SIM_MAINS_V")
    mains_freq_hz: float = Field(default=50.0, gt=0, le=1000, validation_alias="MLPOWER_SIM_MAINS_HZ")
    power_factor: float = Field(default=0.95, gt=0, le=1, validation_alias="MLPOWER_SIM_POWER_FACTOR")
    current_crest_factor: float = Field(default=1.414, ge=1, le=20, validation_alias="MLPOWER_SIM_CURRENT_CREST")
    range_switch_gap_updates: int = Field(default=1, ge=0, le=10, validation_alias="MLPOWER_SIM_RANGE_GAP_UPDATES")
    range_settle_updates: int = Field(default=0, ge=0, le=10, validation_alias="MLPOWER_SIM_RANGE_SETTLE_UPDATES",
                                      description="updates lost after a commanded (fixed) range change")

    stall_s: float = Field(default=0.0, ge=0, le=600, validation_alias="MLPOWER_SIM_FAULT_STALL_S")
    clock_drift_ppm: float = Field(default=0.0, validation_alias="MLPOWER_SIM_FAULT_CLOCK_DRIFT_PPM")
    error_code: int = Field(default=0, ge=0, le=999, validation_alias="MLPOWER_SIM_FAULT_ERROR_CODE")

    # Connection limits (SCPI and the PTD emulator): silent clients, or many, cannot hold the meter.
    max_connections: int = Field(default=4, ge=1, le=64, validation_alias="MLPOWER_SIM_MAX_CONNECTIONS",
                                 description="SCPI connections at once; more are closed at once (PTD: one)")
    handshake_timeout_s: float = Field(default=10.0, gt=0, le=3600, validation_alias="MLPOWER_SIM_HANDSHAKE_TIMEOUT_S",
                                       description="a new connection must send its first command within this")
    idle_timeout_s: float = Field(default=300.0, gt=0, le=86400, validation_alias="MLPOWER_SIM_IDLE_TIMEOUT_S",
                                  description="a connection silent this long is closed (PTD: outside a measurement)")

    ptd_range_ack_delay_s: float = Field(default=0.0, ge=0, le=10, validation_alias="MLPOWER_PTD_RANGE_ACK_DELAY_S",
                                         description="real PTD answers SR about 1.5 s after the console line")

    @model_validator(mode="after")
    def _feed_fits(self) -> Settings:
        from mlpower.analyzer_sim.errors import LoadSpecError

        try:
            self.element_feed()
        except LoadSpecError as exc:  # a ValueError: pydantic reports it, naming the settings involved
            raise ValueError(f"MLPOWER_SIM_MODEL/SPLIT/IMBALANCE/PSUS (--model/--split/--imbalance/--psus) do "
                             f"not fit together: {exc}") from None
        return self

    def element_feed(self) -> ElementFeed:
        from mlpower.analyzer_sim.models import meter_model
        from mlpower.analyzer_sim.split import element_feed, parse_psus, parse_shares

        return element_feed(meter_model(self.model).elements,
                            parse_shares(self.split) if self.split.strip() else None, self.imbalance,
                            parse_psus(self.psus) if self.psus.strip() else None)

    @field_validator("load")
    @classmethod
    def _load_parses(cls, value: str, info: ValidationInfo) -> str:
        from mlpower.analyzer_sim.loads import parse_load

        if not value.lower().startswith("follow"):
            parse_load(value, info.data.get("traces_dir", DEFAULT_TRACES_DIR))  # LoadSpecError is a ValueError
        return value
