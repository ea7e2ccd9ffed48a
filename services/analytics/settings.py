"""The analytics service's settings (environment variables)."""

from __future__ import annotations

from pathlib import Path

from mlpower import topology
from mlpower.settings import ServiceSettings
from pydantic import Field, ValidationInfo, field_validator

from .live import DEFAULT_EVERY_S


class AnalyticsSettings(ServiceSettings):
    HTTP_HOST_FIELD = "http_host"
    http_host: str = Field(default="127.0.0.1", validation_alias="MLPOWER_ANALYTICS_HOST")
    http_port: int = Field(default=8001, ge=0, le=65535, validation_alias="MLPOWER_ANALYTICS_PORT")
    store_path: Path | None = Field(default=None, validation_alias="MLPOWER_ANALYTICS_STORE")
    min_duration_s: float = Field(default=600.0, ge=0, validation_alias="MLPOWER_MIN_DURATION_S")
    sources_checksums: Path | None = Field(default=None, validation_alias="MLPOWER_SOURCES_CHECKSUMS")
    # Replicas sharing a lab's runs (see service.py): this one's index, how many, and how long it
    # waits before standing by on the others' shards. A StatefulSet gives the index (pod-index label).
    replicas: int = Field(default=1, ge=1, le=topology.RUN_SHARDS, validation_alias="MLPOWER_ANALYTICS_REPLICAS")
    replica: int = Field(default=0, ge=0, validation_alias="MLPOWER_ANALYTICS_REPLICA")
    standby_s: float = Field(default=5.0, ge=0, le=600, validation_alias="MLPOWER_ANALYTICS_STANDBY_S")
    live_every_s: float = Field(default=DEFAULT_EVERY_S, gt=0, le=600, validation_alias="MLPOWER_LIVE_EVERY_S")

    @field_validator("replica")
    @classmethod
    def _replica_in_range(cls, value: int, info: ValidationInfo) -> int:
        replicas = info.data.get("replicas", 1)
        if value >= replicas:
            raise ValueError(f"must be below MLPOWER_ANALYTICS_REPLICAS ({replicas})")
        return value

    @property
    def table_path(self) -> Path:
        """The tidy Parquet table of all runs (under the results folder unless set)."""
        return self.store_path or self.results_dir / "analytics" / "runs.parquet"
