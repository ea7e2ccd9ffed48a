"""Helpers for the SUT agent's tests: a recorder of published workload phase events."""

from __future__ import annotations

import pytest
from mlpower.schema import WorkloadPhase


class Events(list[WorkloadPhase]):
    def states(self) -> list[str]:
        return [e.state for e in self]


@pytest.fixture
def events() -> Events:
    return Events()
