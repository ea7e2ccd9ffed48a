"""The repository's copies of the public results and the trace are the published bytes."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from mlpower.settings import DEFAULT_DATA_DIR, DEFAULT_TRACES_DIR, PROJECT_ROOT


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_public_results_match_the_checksums_download_uses() -> None:
    from mlpower.figures.download import expected_files

    files = expected_files()
    assert sorted(p.name for p in DEFAULT_DATA_DIR.glob("*.csv")) == sorted(files)
    for name, expected in files.items():
        path = DEFAULT_DATA_DIR / name
        assert path.stat().st_size == expected["bytes"], name
        assert _sha256(path) == expected["sha256"], name


def test_every_data_folder_readme_states_the_sums_of_its_files() -> None:
    for folder in (DEFAULT_DATA_DIR, DEFAULT_TRACES_DIR):
        readme = (folder / "README.md").read_text(encoding="utf-8")
        stated = set(re.findall(r"`([0-9a-f]{64})`", readme))
        actual = {_sha256(p) for p in folder.iterdir() if p.name != "README.md"}
        assert stated == actual, folder


def test_nothing_tracked_refers_to_a_sibling_shared_folder() -> None:
    """Users never have the reference folder beside their clone."""
    if not (PROJECT_ROOT / ".git").exists():
        return  # an installed copy has no git tree to scan
    found = subprocess.run(["git", "grep", "-n", r"\.\./shared", "--", ".", ":!tests/shared/test_data_copies.py"],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    assert found.returncode == 1, found.stdout
