"""The attack suite's lab (``mlpower lab up`` on the real RabbitMQ, for the whole package).

Its summary is printed by ``tests/summaries.py``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.security.lab import Lab, free_offset, lab_environment, prepare


@pytest.fixture(scope="package")
def lab(tmp_path_factory: pytest.TempPathFactory, amqp_url: str) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("security-lab")
    prepare(root)
    unique, offset = uuid.uuid4().hex[:8], free_offset()
    running = Lab(root, lab_environment(root, amqp_url, unique, offset), f"sec{unique}", f"sut{unique}", offset)
    up = running.mlpower("lab", "up", timeout_s=240)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert re.search(r"lab up: 5 services", up.stdout), up.stdout
        yield running
    finally:
        down = running.mlpower("lab", "down", timeout_s=120)
        assert down.returncode == 0, down.stderr[-2000:]


@pytest.fixture(scope="package")
def measured(lab: Lab) -> dict[str, Any]:
    """One whole measurement on the lab (``mlpower lab run``): run trees, logs and answers to search."""
    done = lab.mlpower("lab", "run", "--timeout-s", "240", timeout_s=300)
    # lab run exits 1 on a FAIL verdict, which a lab's shortened run always gets; measured all the same
    measured_fail = done.returncode == 1 and "verdict FAIL" in done.stdout
    assert done.returncode == 0 or measured_fail, done.stdout[-3000:] + done.stderr[-3000:]
    runs = [p for p in lab.results.iterdir() if (p / "documents.jsonl").is_file()]
    assert len(runs) == 1, runs
    return {"run_id": runs[0].name, "run_dir": runs[0], "output": done.stdout}
