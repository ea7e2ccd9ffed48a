"""Helpers of the figures tests: a service over a copy of the session build, and waiting."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpower import testing
from mlpower.figures.service import FiguresService


def service_over_built(built: dict[str, Any], data_dir: Path, root: Path, **kwargs: Any) -> FiguresService:
    """A service whose paper folder already holds the session's build (manifest included)."""
    shutil.copytree(built["paper"][0], root / "figures" / "paper")
    return FiguresService(data_dir, root / "figures", workers=1, **kwargs)


def wait_for(condition: Callable[[], Any], timeout_s: float = 60.0, what: str = "condition") -> Any:
    """``mlpower.testing.wait_for`` with the figures suites' longer default timeout."""
    return testing.wait_for(condition, timeout_s, what=what, poll_s=0.05)
