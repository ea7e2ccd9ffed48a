"""Text mutations for the fuzz tests: valid protocol text, then fields swapped, dropped, doubled or
cut, and characters inserted, deleted or replaced. Deterministic under ``derandomize=True``."""

from __future__ import annotations

from hypothesis import strategies as st

NASTY_FIELDS = ["", " ", "-1", "0", "NaN", "sNaN", "-nan", "inf", "Infinity", "1e999", "-1e-999", "9.91E+37",
                "1,5", "1.000,5", "1_000", "١٢", "²", "0x10", "x", "\x00", "\ufffd", "é", "*", "?", "..", "9" * 60]
NASTY_CHARS = [",", ";", ":", " ", "\t", "\r", "\"", "'", "\x00", "\ufffd", "\u2028", "é", "-", ".", "e", "9"]


@st.composite
def mutated(draw: st.DrawFn, texts: st.SearchStrategy[str], separator: str = ",", max_steps: int = 3) -> str:
    """One text from ``texts`` with up to ``max_steps`` field- or character-level mutations."""
    text = draw(texts)
    for _ in range(draw(st.integers(0, max_steps))):
        fields = text.split(separator)
        op = draw(st.sampled_from(["field", "drop", "double", "truncate", "insert", "delete", "replace"]))
        i = draw(st.integers(0, len(fields) - 1))
        pos = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from(NASTY_CHARS) | st.text(max_size=3))
        if op == "field":
            fields[i] = draw(st.sampled_from(NASTY_FIELDS) | st.text(max_size=6))
            text = separator.join(fields)
        elif op == "drop" and len(fields) > 1:
            text = separator.join(fields[:i] + fields[i + 1:])
        elif op == "double":
            text = separator.join(fields[:i + 1] + fields[i:])
        elif op == "truncate":
            text = text[:pos]
        elif op == "insert":
            text = text[:pos] + junk + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1:]
        else:
            text = text[:pos] + junk + text[pos + 1:]
    return text
