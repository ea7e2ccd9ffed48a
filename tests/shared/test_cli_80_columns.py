"""Every `mlpower` help page, and `mlpower check`, read whole in an 80-column terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
from mlpower.cli import _register, app

from tests.analytics.trees import TreeSpec, build_tree, edit_json

SCRIPT = """
import sys
from mlpower.cli import main
sys.argv = ["mlpower", *sys.argv[1:]]
main()
"""


def command_paths() -> list[list[str]]:
    """Every command and sub-command of `mlpower`, walked from the real command tree."""
    _register(app)
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in (getattr(command, "commands", None) or {}).items():  # a group (typer's own click)
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def at_80_columns(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
    env.pop("TERMINAL_WIDTH", None)
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


def test_every_help_page_fits_80_columns_and_cuts_no_text() -> None:
    paths = command_paths()
    assert ["lab", "run"] in paths and ["runs"] in paths and ["check"] in paths
    # one process for all pages: each is rendered as a terminal of 80 columns renders it
    script = "\n".join([
        "import os, sys", "from typer.testing import CliRunner", "from mlpower.cli import _register, app",
        "_register(app)", "runner = CliRunner()",
        f"for path in {paths!r}:",
        "    result = runner.invoke(app, [*path, '--help'], env={'COLUMNS': '80'}, terminal_width=80)",
        "    assert result.exit_code == 0, (path, result.output)",
        "    print('=== ' + ' '.join(path)); print(result.output)",
    ])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr[-3000:]
    pages = done.stdout.split("=== ")[1:]
    assert len(pages) == len(paths)
    assert all(any(len(line) == 80 for line in page.splitlines()) for page in pages)  # boxes drawn 80 wide
    for page in pages:
        name, _, text = page.partition("\n")
        assert max(len(line) for line in text.splitlines()) <= 80, (name, text)
        assert "…" not in text, f"'mlpower {name} --help' cuts text off:\n{text}"


def test_check_shows_failures_first_and_names_them_in_the_verdict(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, TreeSpec())
    edit_json(tree, "server", lambda d: d.update({"debug": True}))
    done = at_80_columns("check", str(tree))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in done.stdout, done.stdout
    rows = [line for line in lines if line.startswith("│") and line.split("│")[1].strip()]
    assert rows[0].split("│")[1].strip() == "debug_disabled" and "FAIL" in rows[0], done.stdout  # failures first
    assert lines[-1] == "verdict: fail - 1 error(s): debug_disabled", lines[-1]
