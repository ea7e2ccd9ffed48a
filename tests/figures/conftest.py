"""Fixtures of the figures tests: the public tables, and one build per mode for the whole session.

Rendering is the only slow part (seconds), so every test that needs rendered files shares these
two builds; tests that need a build of their own build one or two cheap figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlpower.figures.audit import audit
from mlpower.figures.build import BuildReport, build
from mlpower.figures.loader import Results, load_results


@pytest.fixture(scope="session")
def results(data_dir: Path) -> Results:
    return load_results(data_dir)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, tuple[Path, BuildReport]]:
    """All 12 figures in both modes, each into its own folder."""
    out = {}
    for mode in ("paper", "corrected"):
        folder = tmp_path_factory.mktemp(f"figures-{mode}")
        out[mode] = (folder, build(folder, data_dir, mode=mode))
    return out


@pytest.fixture(scope="session")
def figure_json(built: dict[str, tuple[Path, BuildReport]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``figure_json[mode][name]``: the JSON a build wrote."""
    return {
        mode: {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json") if not p.name.startswith(".")}
        for mode, (folder, _) in built.items()
    }


@pytest.fixture(scope="session")
def audit_report(data_dir: Path) -> dict[str, Any]:
    return audit(data_dir)
