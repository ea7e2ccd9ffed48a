"""The figures service's settings (environment variables)."""

from __future__ import annotations

from pathlib import Path

from mlpower.settings import DEFAULT_DATA_DIR, ServiceSettings
from pydantic import Field

UPSTREAM_RAW_URL = (
    "https://raw.githubusercontent.com/aryatschand/MLPerf-Power-HPCA-2025/"
    "49b63de68875ca1d5d0b3fc306d20e0d8ca5e948/code/"
)


class FiguresSettings(ServiceSettings):
    HTTP_HOST_FIELD = "http_host"
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, validation_alias="MLPOWER_DATA_DIR")
    figures_dir: Path | None = Field(default=None, validation_alias="MLPOWER_FIGURES_DIR")
    http_host: str = Field(default="127.0.0.1", validation_alias="MLPOWER_FIGURES_HOST")
    http_port: int = Field(default=8002, ge=0, le=65535, validation_alias="MLPOWER_FIGURES_PORT")
    instance: str = Field(default="default", validation_alias="MLPOWER_FIGURES_INSTANCE", pattern=r"^[A-Za-z0-9_\-]+$")
    workers: int = Field(default=2, ge=1, le=16, validation_alias="MLPOWER_FIGURES_WORKERS")
    source_url: str = Field(default=UPSTREAM_RAW_URL, validation_alias="MLPOWER_FIGURES_SOURCE_URL")
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "mlpower" / "mlperf_power", validation_alias="MLPOWER_FIGURES_CACHE"
    )

    @property
    def out_root(self) -> Path:
        """Where the service keeps its figures: one folder per mode (under the results folder unless set)."""
        return self.figures_dir or self.results_dir / "figures"
