"""Fuzz the figures' results loader and every figure computation with corrupted result CSVs.

A slice of each public table (read from the repository's copy)
is corrupted line by line: truncated lines, junk and non-UTF-8 bytes, thousands separators in
the wrong places, dropped or renamed columns, quoted newlines. Loading and computing every figure
in both modes must then either succeed or raise ``FiguresError`` naming the file and a line;
and in corrected mode no plotted value may come from a row whose Result we made malformed (it
must be a recorded skip or an error, never a silently wrong number).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlpower.figures import catalogue
from mlpower.figures.errors import FiguresError
from mlpower.figures.loader import ALL_FILES, DATACENTER, EDGE, INFERENCE_COLUMNS, TINY, load_results, read_table
from mlpower.settings import DEFAULT_DATA_DIR

from tests.reliability.ledger import LEDGER

DATA_DIR = DEFAULT_DATA_DIR  # the repository's copy, read in place
PAIR_STRIDE = 3
MAX_LINE = 560  # corruptions pick a line up to here (the longest slice has ~550)
JUNK = [b"\x00", b"\xff\xfe", b"\xc3(", b"\r", b'"', b",", b";", b"\t", b"\xe2\x80\xa8", "é".encode(), b"\xef\xbb\xbf"]
MISPLACED = ["1,17002", "11,7,002", "1,1700.2", ",117002", "117002,", "1.170,02", "1,,170", "1,17,00,2"]


@dataclass(frozen=True)
class Corruption:
    file: str
    line: int  # 1-based physical line
    kind: str
    position: int
    junk: bytes


@functools.cache
def slices() -> dict[str, bytes]:
    """Every third perf/power row pair of the inference tables (rows come in adjacent pairs), the small
    tables whole: every figure still finds data, and a computation takes milliseconds."""
    out = {}
    for name in ALL_FILES:
        lines = (DATA_DIR / name).read_bytes().rstrip(b"\n").split(b"\n")
        if name in (DATACENTER, EDGE, TINY):
            lines = lines[:1] + [text for i, text in enumerate(lines[1:]) if (i // 2) % PAIR_STRIDE == 0]
        out[name] = b"\n".join(lines) + b"\n"
    return out


corruptions = st.builds(
    Corruption,
    file=st.sampled_from(ALL_FILES),
    line=st.integers(1, MAX_LINE),
    kind=st.sampled_from(["truncate", "junk", "misplaced separators", "drop column", "rename column",
                          "quoted newline", "extra field", "blank", "duplicate header", "empty file"]),
    position=st.integers(0, 400),
    junk=st.sampled_from(JUNK) | st.binary(min_size=1, max_size=4),
)


def _result_column(header: list[bytes]) -> int | None:
    for name in (b"Result", b"Avg. Result at System Name"):
        if name in header:
            return header.index(name)
    return None


def corrupt(content: bytes, c: Corruption) -> tuple[bytes, int | None]:
    """The corrupted file, and the line whose Result was made malformed (None if none was)."""
    lines = content.rstrip(b"\n").split(b"\n")
    i = min(c.line, len(lines)) - 1
    line = lines[i]
    header = lines[0].split(b",")
    malformed = None
    if c.kind == "truncate":
        lines[i] = line[:c.position % (len(line) + 1)]
    elif c.kind == "junk":
        p = c.position % (len(line) + 1)
        lines[i] = line[:p] + c.junk + line[p:]
    elif c.kind == "misplaced separators":
        column = _result_column(header)
        fields = line.split(b",")
        if column is not None and i > 0 and len(fields) == len(header):
            fields[column] = b'"' + MISPLACED[c.position % len(MISPLACED)].encode() + b'"'
            lines[i] = b",".join(fields)
            malformed = i + 1
    elif c.kind in ("drop column", "rename column"):
        column = c.position % len(header)
        for k, text in enumerate(lines):
            fields = text.split(b",")
            if column < len(fields):
                if c.kind == "drop column":
                    del fields[column]
                elif k == 0:
                    fields[column] = b"x" + fields[column]
            lines[k] = b",".join(fields)
    elif c.kind == "quoted newline":
        lines[i] = b'"' + line[:c.position % (len(line) + 1)] + b'\n' + line[c.position % (len(line) + 1):] + b'"'
    elif c.kind == "extra field":
        lines[i] = line + b"," + c.junk
    elif c.kind == "blank":
        lines[i] = b""
    elif c.kind == "duplicate header":
        lines.insert(i, lines[0])
    elif c.kind == "empty file":
        return b"", None
    return b"\n".join(lines) + b"\n", malformed


def _check_error(exc: FiguresError, c: Corruption) -> None:
    message = str(exc)
    if c.file in message:
        assert re.search(re.escape(c.file) + r":\d+", message), f"names the file but no line: {message}"
    else:  # a figure that had too little data left names the figure, not a file
        assert re.match(r"^fig\w+: ", message) or "nothing to plot" in message, f"names no file: {message}"


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(c=corruptions)
def test_corrupted_tables_give_an_error_with_file_and_line_or_a_recorded_skip(
        tmp_path_factory: pytest.TempPathFactory, c: Corruption) -> None:
    LEDGER.fuzzed("figures loader")
    folder = tmp_path_factory.mktemp("data")
    for name, content in slices().items():
        (folder / name).write_bytes(content)
    corrupted, malformed_line = corrupt(slices()[c.file], c)
    (folder / c.file).write_bytes(corrupted)
    try:
        results = load_results(folder)
        for mode in ("paper", "corrected"):
            for entry in (e for e in catalogue.CATALOGUE if c.file in e.inputs):
                try:
                    data = entry.compute(results, mode)
                except FiguresError as exc:
                    _check_error(exc, c)
                    continue
                if mode == "corrected" and malformed_line is not None:
                    bad = f"{c.file}:{malformed_line}"
                    used = [key for key, point in data.points.items() if bad in point["rows"]]
                    assert not used, f"{entry.name} plots {used} from malformed {bad}"
    except FiguresError as exc:
        _check_error(exc, c)
    except Exception as exc:
        LEDGER.crash(f"figures loader: {type(exc).__name__}: {exc} ({c})")
        raise


@settings(max_examples=2000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(c=corruptions.filter(lambda c: c.file == ALL_FILES[0]))
def test_read_table_refuses_with_file_and_line(tmp_path: Path, c: Corruption) -> None:
    """The loader alone, at a larger budget: a structural fault never loads as a shifted or null-filled row."""
    LEDGER.fuzzed("figures read_table")
    corrupted, _ = corrupt(slices()[c.file], c)
    path = tmp_path / c.file
    path.write_bytes(corrupted)
    try:
        frame = read_table(path, INFERENCE_COLUMNS)
    except FiguresError as exc:
        _check_error(exc, c)
        return
    except Exception as exc:
        LEDGER.crash(f"figures read_table: {type(exc).__name__}: {exc} ({c})")
        raise
    width = len(corrupted.split(b"\n", 1)[0].split(b","))
    assert frame.width == width + 2  # the header's columns plus _file and _line
    if c.kind in ("truncate", "extra field") and corrupted != slices()[c.file]:
        # a line that lost or gained fields loaded anyway: only fine if it still parses to the header's width
        import csv
        import io
        rows = list(csv.reader(io.StringIO(corrupted.decode("utf-8"), newline="")))
        assert all(len(r) in (0, width) for r in rows), "a ragged line was loaded"
