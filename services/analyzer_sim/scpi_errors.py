"""The WT310E's error numbers (Yokogawa positive codes, wt310e.md 1.9-1.10) and the exception that carries one."""

from __future__ import annotations

ERROR_MESSAGES: dict[int, str] = {
    0: "No error",
    102: "Syntax error",
    103: "Invalid separator",
    104: "Data type error",
    108: "Parameter not allowed",
    109: "Missing parameter",
    111: "Header separator error",
    112: "Program mnemonic too long",
    113: "Undefined header",
    114: "Header suffix out of range",
    120: "Numeric data error",
    124: "Too many digits",
    128: "Numeric data not allowed",
    131: "Invalid suffix",
    138: "Suffix not allowed",
    141: "Invalid character data",
    148: "Character data not allowed",
    221: "Setting conflict",
    222: "Data out of range",
    224: "Illegal parameter value",
    350: "Queue overflow",
    390: "Overrun (RS-232)",
    410: "Query INTERRUPTED",
    420: "Query UNTERMINATED",
    430: "Query DEADLOCKED",
    440: "Query UNTERMINATED after indefinite response",
    813: "Operation not allowed during integration; reset integration first",
    842: "Integration already started",
    844: "Integration not started",
    845: "Integration cannot be reset while running; stop it first",
}

ERROR_QUEUE_DEPTH = 30  # beyond this the newest entry becomes 350 "Queue overflow"


class ScpiError(Exception):
    """A command the instrument refuses; the dispatcher puts ``code`` into the error queue."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(f"{code} {ERROR_MESSAGES.get(code, 'Device error')}{': ' + detail if detail else ''}")
        self.code = code


def message_for(code: int) -> str:
    return ERROR_MESSAGES.get(code, "Device error")
