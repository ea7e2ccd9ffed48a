"""Settings of ``mlpower lab`` and ``mlpower demo``."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from mlpower.settings import PROJECT_ROOT, ServiceSettings
from pydantic import Field, field_validator, model_validator


class LabSettings(ServiceSettings):
    sut: str = Field(default="sut1", validation_alias="MLPOWER_SUT", pattern=r"^[A-Za-z0-9_\-]+$")
    director_url: str = Field(default="http://127.0.0.1:8000", validation_alias="MLPOWER_DIRECTOR_URL")
    analytics_url: str = Field(default="http://127.0.0.1:8001", validation_alias="MLPOWER_ANALYTICS_URL")
    figures_url: str = Field(default="http://127.0.0.1:8002", validation_alias="MLPOWER_FIGURES_URL")
    workdir: Path = Field(default=Path(".lab"), validation_alias="MLPOWER_LAB_DIR")
    compose_file: Path = Field(default=PROJECT_ROOT / "deploy" / "compose.yaml",
                               validation_alias="MLPOWER_COMPOSE_FILE")
    run_timeout_s: float = Field(default=1800.0, gt=0, validation_alias="MLPOWER_RUN_TIMEOUT_S")
    # Where `lab up`'s services listen: loopback unless you open the lab to a network on purpose.
    bind_address: str = Field(default="127.0.0.1", validation_alias="MLPOWER_BIND_ADDRESS")
    # create: the lab's own RabbitMQ user (rabbitmqctl, local broker); given: AMQP_URL's own account.
    broker_account: Literal["create", "given"] = Field(default="create", validation_alias="MLPOWER_LAB_BROKER_ACCOUNT")
    rabbitmqctl: str = Field(default="rabbitmqctl", validation_alias="MLPOWER_LAB_RABBITMQCTL",
                             description="how to run rabbitmqctl, e.g. 'sudo rabbitmqctl'")
    # Moves every port of `lab up`'s services (8000 -> 8000 + N, ...), for a second lab on one machine.
    port_offset: int = Field(default=0, ge=0, le=50000, validation_alias="MLPOWER_LAB_PORT_OFFSET")

    @model_validator(mode="after")
    def _urls_follow_the_offset(self) -> LabSettings:
        if self.port_offset:
            from mlpower.lab.compose_local import shift_ports

            for name, port in (("director_url", 8000), ("analytics_url", 8001), ("figures_url", 8002)):
                if name not in self.model_fields_set:  # a URL set by hand is taken as given
                    object.__setattr__(self, name, shift_ports(getattr(self, name), {port}, self.port_offset))
        return self

    @field_validator("bind_address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        if value != "localhost":
            ipaddress.ip_address(value)  # ValueError names the bad text
        return value

    @property
    def loopback_only(self) -> bool:
        return self.bind_address == "localhost" or ipaddress.ip_address(self.bind_address).is_loopback
