"""Fixtures shared by every test: paths to the project and its data copies, and the real broker."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.summaries"]  # the ledgers' summary, whole under pytest-xdist

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

# The suite runs three workers on two cores, each starting LoadGen runs, services and brokers. A
# BLAS thread pool per process would oversubscribe the cores, and its threads wait on each other:
# the built-in Offline workload ran 2.8x slower with 2 OpenBLAS threads than with 1 beside three busy
# processes, which let a run calibrated in a quiet moment outlast a test's wait. One thread each
# (the agent passes these on to the built-ins), unless the one who runs the tests chose otherwise.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The repository's copy of the public MLPerf Power results (MLPOWER_DATA_DIR's default)."""
    from mlpower.settings import DEFAULT_DATA_DIR

    return DEFAULT_DATA_DIR


@pytest.fixture(scope="session")
def trace_csv() -> Path:
    """The repository's copy of the measured H200 NVML trace."""
    from mlpower.settings import DEFAULT_TRACES_DIR

    return DEFAULT_TRACES_DIR / "h200_nvml_trace.csv"


def _broker_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The real RabbitMQ; `make test` starts it, so a dead broker is a failure, not a skip."""
    assert _broker_answers(AMQP_URL), f"RabbitMQ does not answer at {AMQP_URL}: run 'make rabbitmq'"
    return AMQP_URL


@pytest.fixture
def unique() -> str:
    """A short unique name for queues, runs and labs, so tests never see each other's messages."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def rabbit_bus(amqp_url: str) -> Iterator[object]:
    from mlpower.rabbitmq import RabbitMQBus

    bus = RabbitMQBus(amqp_url, client_name="pytest", lab="pytest")
    yield bus
    bus.close()


# Packages whose session- or package-scoped fixtures are whole measurements or builds (the
# analytics' real runs, the figures build, the container images, the attack suite's lab): under
# ``make test``'s workers (pytest-xdist, --dist loadgroup) each of them runs on one worker, so those
# fixtures are made once; every other test file is a group of its own.
ONE_WORKER_PACKAGES = frozenset({"analytics", "figures", "deploy", "security"})


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups off the items
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(tests_dir)
        group = relative.parts[0] if relative.parts[0] in ONE_WORKER_PACKAGES else relative.as_posix()
        item.add_marker(pytest.mark.xdist_group(group))
