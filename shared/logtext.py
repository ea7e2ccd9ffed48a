"""Client-supplied text, made safe to log or to quote in an error: escaped and bounded.

    log.warning("unknown command %s", client_text(line))

Control characters (ANSI escape sequences, carriage returns, newlines that would forge log lines),
backslashes and anything outside printable ASCII are written as Python escapes, and the result is
cut at ``limit`` characters with a note of how much was left out. The text is shown in quotes so
that its edges are visible (a trailing space, an empty string).
"""

from __future__ import annotations

DEFAULT_LIMIT = 120


def client_text(value: str | bytes, limit: int = DEFAULT_LIMIT) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)  # bytes: each one shown
    kept, rest = text[:limit], len(text) - limit
    escaped = "".join(ch if " " <= ch <= "~" and ch != "\\" else ch.encode("unicode_escape").decode("ascii")
                      for ch in kept)
    return f"'{escaped}'" + (f" (+{rest} more characters)" if rest > 0 else "")


def terminal_text(value: str) -> str:
    """Text from a file or a message, whole, safe to print on a terminal: control characters (an ANSI
    escape sequence, a carriage return that would overwrite a line) written as Python escapes. Unlike
    ``client_text`` it is neither quoted nor cut; printable non-ASCII characters stay as they are.
    With rich, print it as a ``rich.text.Text`` (never inside markup): ``[/]`` in a crafted file
    would otherwise break the output, and ``:x:`` would turn into an emoji."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(value))
