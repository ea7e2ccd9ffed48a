"""Director test helpers: settings for fast sessions, a director on fake analyzers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower.director.settings import DirectorSettings
from mlpower.settings import load_settings

from .fakes import FakeSource


def fast_settings(results_dir: Path, **overrides: object) -> DirectorSettings:
    values: dict[str, object] = {
        "analyzer": "fake://1", "results_dir": results_dir, "analyzer_sleep_s": 0.05, "sample_interval_s": 0.1,
        "page_interval_s": 0.2, "host": "127.0.0.1", "powerdev_port": 0, "http_port": 0, "bus": "memory",
        "api_token": "", "upstream_debug": False,
    }
    values.update(overrides)
    return load_settings(DirectorSettings, **values)


@pytest.fixture
def fake_sources() -> Iterator[list[FakeSource]]:
    """Every FakeSource a test's director opened, in order."""
    yield []


@pytest.fixture
def source_factory(fake_sources: list[FakeSource]):  # type: ignore[no-untyped-def]
    def factory(resource: str, interval_s: float) -> FakeSource:
        source = FakeSource()
        fake_sources.append(source)
        return source

    return factory
