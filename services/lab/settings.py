"""Settings of ``mlpower lab`` and ``mlpower demo``."""

from __future__ import annotations

from pathlib import Path

from mlpower.settings import PROJECT_ROOT, ServiceSettings
from pydantic import Field


class LabSettings(ServiceSettings):
    sut: str = Field(default="sut1", validation_alias="MLPOWER_SUT", pattern=r"^[A-Za-z0-9_\-]+$")
    director_url: str = Field(default="http://127.0.0.1:8000", validation_alias="MLPOWER_DIRECTOR_URL")
    analytics_url: str = Field(default="http://127.0.0.1:8001", validation_alias="MLPOWER_ANALYTICS_URL")
    figures_url: str = Field(default="http://127.0.0.1:8002", validation_alias="MLPOWER_FIGURES_URL")
    workdir: Path = Field(default=Path(".lab"), validation_alias="MLPOWER_LAB_DIR")
    compose_file: Path = Field(default=PROJECT_ROOT / "deploy" / "compose.yaml",
                               validation_alias="MLPOWER_COMPOSE_FILE")
    run_timeout_s: float = Field(default=1800.0, gt=0, validation_alias="MLPOWER_RUN_TIMEOUT_S")
