"""The settings base every service's typed Settings class derives from.

Settings come from environment variables (and ``*_FILE`` secret files for credentials), are
validated at start, and a bad value raises ``SettingsError`` with a one-line message that names
the variable. Only entry points turn that into an exit status.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from mlpower.errors import SettingsError
from mlpower.secrets import PLACEHOLDER_HINT, is_placeholder
from mlpower.topology import DeadLetterPolicy
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The repository carries its own copy of the public results and of the traces (shared/data, package
# data of ``mlpower``), so every install, the images included, works without a data mount.
PACKAGE_DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_DATA_DIR = PACKAGE_DATA_DIR / "mlperf_power"
DEFAULT_TRACES_DIR = PACKAGE_DATA_DIR / "traces"


def is_loopback(host: str) -> bool:
    """Whether a listen address reaches this machine only (a name other than localhost counts as not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServiceSettings(BaseSettings):
    """What every service needs: where the bus is, which lab it belongs to, where results go."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    # The field holding the address the service's HTTP API (with its control endpoints) listens on.
    HTTP_HOST_FIELD: ClassVar[str] = ""

    amqp_url: str = Field(default="amqp://guest:guest@127.0.0.1:5672/", validation_alias="AMQP_URL",
                          repr=False)  # holds the broker password
    bus: Literal["rabbitmq", "memory"] = Field(default="rabbitmq", validation_alias="MLPOWER_BUS")
    lab: str = Field(default="lab", validation_alias="MLPOWER_LAB", pattern=r"^[A-Za-z0-9_\-]+$")
    results_dir: Path = Field(default=Path("results"), validation_alias="MLPOWER_RESULTS_DIR")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="MLPOWER_LOG_LEVEL"
    )
    api_token: str = Field(default="", validation_alias="MLPOWER_API_TOKEN", repr=False)
    # quorum: the durable queues (run documents, commands, events) are replicated over the
    # broker cluster's nodes and survive one; a queue keeps the type it was first declared with
    queue_type: Literal["classic", "quorum"] = Field(default="classic", validation_alias="MLPOWER_QUEUE_TYPE")
    # The lab's dead-letter queue is bounded: the oldest message goes first. Every service of a lab
    # must use the same values (the broker refuses a queue redeclared with other bounds).
    dead_letter_max_messages: int = Field(default=10_000, ge=1, le=10_000_000,
                                          validation_alias="MLPOWER_DEAD_LETTER_MAX_MESSAGES")
    dead_letter_ttl_s: float = Field(default=7 * 24 * 3600.0, gt=0, le=365 * 24 * 3600.0,
                                     validation_alias="MLPOWER_DEAD_LETTER_TTL_S")

    @property
    def dead_letter(self) -> DeadLetterPolicy:
        return DeadLetterPolicy(self.dead_letter_max_messages, self.dead_letter_ttl_s)

    @field_validator("amqp_url")
    @classmethod
    def _amqp_url_is_amqp(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("must look like amqp://user:password@host:5672/vhost")
        if parts.password and is_placeholder(parts.password):
            raise ValueError(f"the broker password {PLACEHOLDER_HINT}")
        return value

    @field_validator("api_token")
    @classmethod
    def _token_is_real(cls, value: str) -> str:
        if value and is_placeholder(value):
            raise ValueError(f"the API token {PLACEHOLDER_HINT}")
        return value

    @model_validator(mode="after")
    def _network_control_needs_a_token(self) -> ServiceSettings:
        # Without a token the control endpoints are open to whoever reaches them: fine on loopback,
        # never on an address other machines reach (a lab no one else controls).
        host = str(getattr(self, self.HTTP_HOST_FIELD, "")) if self.HTTP_HOST_FIELD else ""
        if host and not is_loopback(host) and not self.api_token:
            alias = type(self).model_fields[self.HTTP_HOST_FIELD].validation_alias
            raise ValueError(f"listening on {host} ({alias}) opens the control API to the network: "
                             "set MLPOWER_API_TOKEN or MLPOWER_API_TOKEN_FILE first (README, Security)")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


S = TypeVar("S", bound=BaseSettings)


def _secret_files(settings_cls: type[BaseSettings]) -> dict[str, str]:
    """``NAME_FILE=/run/secrets/x`` supplies ``NAME`` from a file (Docker/Kubernetes secrets)."""
    values: dict[str, str] = {}
    for name, field in settings_cls.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else name.upper()
        path = os.environ.get(f"{alias}_FILE")
        if path and alias not in os.environ:
            try:
                values[alias] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SettingsError(f"invalid setting {alias}_FILE: cannot read {path}: {exc.strerror}") from exc
    return values


def load_settings(settings_cls: type[S], **overrides: object) -> S:
    """Build a service's settings from the environment; a bad value names its variable."""
    from_files = _secret_files(settings_cls)
    try:
        values: dict[str, Any] = {**from_files, **overrides}
        return settings_cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first.get("msg")).removeprefix("Value error, ")  # pydantic's prefix says nothing to a user
        if not first.get("loc"):  # a check across settings: its message names the variables itself
            raise SettingsError(f"invalid settings: {message}") from exc
        field_name = str(first["loc"][0])
        field = settings_cls.model_fields.get(field_name)
        alias = field.validation_alias if field is not None and isinstance(field.validation_alias, str) else field_name
        name = str(alias).upper()
        if name in from_files and field_name not in overrides:
            name += "_FILE"  # the value came from that file: name what the user set
        raise SettingsError(f"invalid setting {name}: {message}") from exc
