"""ruff and mypy stay clean, and import-linter keeps the architecture: services never import each
other (only mlpower.lab wires them), the shared library imports no service, pika only in
mlpower.rabbitmq, pure domain modules import no transport (contracts in pyproject.toml)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_is_clean_on_the_whole_tree() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "shared", "services", "tests", "bench", "deploy"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_is_clean_on_shared_and_services() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "shared", "services"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------- the architecture

ENTRY_POINTS = {"__init__", "__main__", "cli"}  # the command line wires services, as mlpower.lab does


def _package_dirs() -> dict[str, Path]:
    return {name: ROOT / folder for name, folder in
            tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].items()}


def _importable_tree(into: Path) -> Path:
    """The ``mlpower`` package laid out as one folder tree (files linked, not copied): the installed
    package maps its subpackages onto other folders (shared/, services/*), which import-linter's
    scan of one package folder does not follow."""
    for name, folder in _package_dirs().items():
        target = into.joinpath(*name.split("."))
        for source in folder.rglob("*.py"):
            if "__pycache__" in source.parts or any(
                    source.is_relative_to(other) for other in _package_dirs().values()
                    if other != folder and other.is_relative_to(folder)):
                continue
            link = target / source.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
    return into


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # ahead of the editable install's finder
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--no-cache", str(ROOT / "pyproject.toml")],
                          cwd=tree, env=env, capture_output=True, text=True)


def _contracts() -> list[dict[str, Any]]:
    contracts: list[dict[str, Any]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"]
    return contracts


def test_the_architecture_contracts_cover_every_service_and_shared_module() -> None:
    services = {name for name in _package_dirs() if name.count(".") == 1} - {"mlpower.lab"}
    by_name = {contract["name"]: contract for contract in _contracts()}
    independent = by_name["Services never import each other (only mlpower.lab wires them)"]
    assert set(independent["modules"]) == services
    shared = {f"mlpower.{p.stem}" for p in (ROOT / "shared").glob("*.py") if p.stem not in ENTRY_POINTS}
    assert set(by_name["The shared library imports no service"]["source_modules"]) == shared
    assert set(by_name["pika only in mlpower.rabbitmq"]["source_modules"]) >= (shared | services) - {"mlpower.rabbitmq"}
    assert set(by_name["One way to serve HTTP: uvicorn only in mlpower.http_serve"]["source_modules"]) >= \
        (shared | services) - {"mlpower.http_serve"}


def test_no_director_module_is_over_500_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "services" / "director").glob("*.py")}
    assert sizes and max(sizes.values()) <= 500, {name: n for name, n in sizes.items() if n > 500}


def test_import_linter_keeps_the_architecture_and_sees_a_break(tmp_path: Path) -> None:
    tree = _importable_tree(tmp_path / "tree")
    done = _lint_imports(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", done.stdout)
    assert kept and int(kept.group(1)) >= 3, done.stdout
    # one service importing another is seen, so the pass above means something
    (tree / "mlpower" / "director" / "zz_probe.py").write_text("import mlpower.analytics.rules\n")
    broken = _lint_imports(tree)
    assert broken.returncode != 0 and "Services never import each other" in broken.stdout, broken.stdout
    assert "mlpower.director.zz_probe -> mlpower.analytics" in broken.stdout, broken.stdout
