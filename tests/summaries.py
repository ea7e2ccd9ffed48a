"""The suite's own summaries (security and reliability ledgers), whole under pytest-xdist too.

Tests record into the process-wide ledgers of ``tests.security.ledger`` and
``tests.reliability.ledger``. With ``make test`` the tests run in several worker processes, so each
worker hands its ledgers to the controller when it finishes (``workeroutput``), the controller adds
them up, prints one summary and fails the run when any leak or crash was recorded by a test that
otherwise passed. This plugin is loaded by the root ``conftest.py``: the controller collects no
tests, so hooks in the packages' own conftest files would never run there.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability.ledger import LEDGER as RELIABILITY
from tests.security.ledger import LEDGER as SECURITY

LEDGERS = {"security": SECURITY, "reliability": RELIABILITY}
WORKER_KEY = "mlpower_ledgers"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: a worker finished; add its ledgers to ours."""
    states = getattr(node, "workeroutput", {}).get(WORKER_KEY, {})
    for name, state in states.items():
        LEDGERS[name].merge(state)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SECURITY.attempts or SECURITY.places_searched:
        terminalreporter.section("security summary")
        for line in SECURITY.lines():
            terminalreporter.write_line(line)
    if RELIABILITY.faults_injected or RELIABILITY.inputs_fuzzed or RELIABILITY.samples_sent or RELIABILITY.crashes \
            or RELIABILITY.notes:
        terminalreporter.section("reliability summary")
        for line in RELIABILITY.lines():
            terminalreporter.write_line(line)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leaks and crashes must be 0: one recorded by a test that otherwise passed still fails the run."""
    if _is_worker(session.config):
        session.config.workeroutput[WORKER_KEY] = {name: ledger.state() for name, ledger in LEDGERS.items()}  # type: ignore[attr-defined]
        return  # the controller judges the whole run
    if (SECURITY.leaks or RELIABILITY.crashes) and session.exitstatus == 0:
        session.exitstatus = 1
