from __future__ import annotations

from typing import Any

from tests.reliability.ledger import LEDGER


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not (LEDGER.faults_injected or LEDGER.inputs_fuzzed or LEDGER.samples_sent or LEDGER.crashes or LEDGER.notes):
        return
    terminalreporter.section("reliability summary")
    for line in LEDGER.lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    """Crashes must be 0: one recorded by a test that otherwise passed still fails the run."""
    if LEDGER.crashes and exitstatus == 0:
        session.exitstatus = 1
