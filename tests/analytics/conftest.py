"""Fixtures of the analytics tests: output trees built once per session, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlpower.analytics.findings import CheckOptions

from .real_runs import real_bus, real_direct, real_ptd, real_scpi  # noqa: F401 - session fixtures of real runs
from .trees import SOURCES, TreeSpec, build_tree


@pytest.fixture(scope="session")
def tree_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("trees")
    return {"ptd": build_tree(base / "ptd", TreeSpec(ptdaemon=True)),
            "scpi": build_tree(base / "scpi", TreeSpec(ptdaemon=False))}


@pytest.fixture
def ptd_tree(tree_templates: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree_templates["ptd"], tmp_path / "ptd" / tree_templates["ptd"].name))


@pytest.fixture
def scpi_tree(tree_templates: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree_templates["scpi"], tmp_path / "scpi" / tree_templates["scpi"].name))


@pytest.fixture
def options() -> CheckOptions:
    return CheckOptions(sources_checksums=(SOURCES,))
