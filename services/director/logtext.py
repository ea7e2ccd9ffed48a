"""Text a client sent, made safe to log: control and format characters (ANSI escapes, CR, NUL,
bidirectional overrides, line separators) escaped, and cut to a bounded length, so that a client
can neither rewrite an operator's terminal nor fill the log. The director logs what others send
(power-dev lines, bus fields) only through ``shown``."""

from __future__ import annotations

import unicodedata

LIMIT = 200
"""Characters of client text kept in one log line."""

_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escaped(char: str) -> str:
    if unicodedata.category(char) not in _UNSAFE:
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown(text: str, limit: int = LIMIT) -> str:
    """``text`` with every unsafe character written as an escape, at most ``limit`` characters of it
    kept (the rest counted)."""
    head = "".join(_escaped(c) for c in text[:limit])
    return head if len(text) <= limit else f"{head}... ({len(text) - limit} more characters)"
