"""ruff and mypy stay clean on the shared library every service builds on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_is_clean_on_the_whole_tree() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "shared", "services", "tests", "bench", "deploy"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_is_clean_on_shared() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "shared"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
