"""`lab run` and `lab down` find the lab folder from any directory, or say where they looked."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlpower.lab import where
from mlpower.lab.credentials import write_secret
from mlpower.lab.errors import LabError
from mlpower.lab.local_lab import lab_down
from mlpower.lab.where import find_lab


def test_the_nearest_lab_folder_above_the_current_directory_is_found(tmp_path: Path) -> None:
    lab = tmp_path / "project" / ".lab"
    write_secret(lab / "secrets" / "mlpower_api_token", "a-token-made-by-lab-up-0001")
    deep = tmp_path / "project" / "services" / "lab"
    deep.mkdir(parents=True)
    assert find_lab(Path(".lab"), cwd=deep) == lab
    assert find_lab(lab) == lab  # a folder named outright is taken as it is


def test_without_a_lab_the_error_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty" / ".lab").mkdir(parents=True)  # a folder of that name that no lab up made
    monkeypatch.setattr(where, "PROJECT_ROOT", tmp_path / "checkout")  # a checkout with a lab up is no answer here
    with pytest.raises(LabError) as caught:
        find_lab(Path(".lab"), cwd=tmp_path / "empty")
    message = str(caught.value)
    assert str(tmp_path / "empty" / ".lab") in message and "every folder above it" in message
    assert str(tmp_path / "checkout" / ".lab") in message
    assert "mlpower lab up" in message and "MLPOWER_LAB_DIR" in message
    monkeypatch.chdir(tmp_path / "empty")
    monkeypatch.delenv("MLPOWER_LAB_DIR", raising=False)
    lines = list(lab_down())
    assert lines[0].startswith("no lab found: looked at") and len(lines) == 1
