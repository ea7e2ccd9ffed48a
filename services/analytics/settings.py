"""The analytics service's settings (environment variables)."""

from __future__ import annotations

from pathlib import Path

from mlpower.settings import ServiceSettings
from pydantic import Field


class AnalyticsSettings(ServiceSettings):
    http_host: str = Field(default="127.0.0.1", validation_alias="MLPOWER_ANALYTICS_HOST")
    http_port: int = Field(default=8001, ge=0, le=65535, validation_alias="MLPOWER_ANALYTICS_PORT")
    store_path: Path | None = Field(default=None, validation_alias="MLPOWER_ANALYTICS_STORE")
    min_duration_s: float = Field(default=600.0, ge=0, validation_alias="MLPOWER_MIN_DURATION_S")
    sources_checksums: Path | None = Field(default=None, validation_alias="MLPOWER_SOURCES_CHECKSUMS")

    @property
    def table_path(self) -> Path:
        """The tidy Parquet table of all runs (under the results folder unless set)."""
        return self.store_path or self.results_dir / "analytics" / "runs.parquet"
