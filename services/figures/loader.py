"""Read the public MLPerf Power result tables into polars frames, every cell kept as text.

Upstream's figures differ from a careful reading of the same tables mostly in how text becomes
numbers, so the loader does not convert anything: it keeps ``Result`` as written, records each
row's file and line (the audit names them), and offers the parsing rules of both modes
(``parse``) and the two ways of pairing a performance row with its power row (``pairing``).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from mlpower.figures.errors import DataError
from mlpower.figures.files import ALL_FILES, DATACENTER, EDGE, PERFORMANCE, TINY, TRAINING, file_digest

__all__ = [
    "ALL_FILES",
    "DATACENTER",
    "EDGE",
    "PERFORMANCE",
    "TINY",
    "TRAINING",
    "Results",
    "file_digest",
    "load_results",
    "read_table",
    "row_ref",
]

# The columns the figures read; a table without them is not one of the public exports.
INFERENCE_COLUMNS = (
    "Public ID",
    "Organization",
    "SystemName",
    "Model MLC",
    "Scenario",
    "Result",
    "accelerator_model_name",
    "version",
    "date",
    "Units",
    "Total Accelerators",
)
TRAINING_COLUMNS = (
    "Public ID",
    "System Name",
    "Model MLC",
    "Units",
    "Avg. Result at System Name",
    "Total Accelerators",
)

FILE_COLUMN = "_file"
LINE_COLUMN = "_line"


@dataclass(frozen=True)
class Results:
    """The five public tables as read, plus their content hashes (for incremental rebuilds)."""

    datacenter: pl.DataFrame
    edge: pl.DataFrame
    tiny: pl.DataFrame
    training: pl.DataFrame
    performance: pl.DataFrame
    data_dir: Path

    def inference(self, table: str) -> pl.DataFrame:
        return {"datacenter": self.datacenter, "edge": self.edge, "tiny": self.tiny}[table]


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(
            f"{path}: missing (set MLPOWER_DATA_DIR to the folder of the public CSVs, "
            "or fetch them with 'mlpower figures download')"
        )
    return path


# One physical line of an export: fields unquoted (no quote, comma or CR) or wholly quoted ("" escapes).
_FIELD = r'(?:"(?:[^"]|"")*"|[^",\r]*)'
_LINE = re.compile(rf"{_FIELD}(?:,{_FIELD})*")


def _check_structure(path: Path, content: bytes) -> None:
    """UTF-8, and every line a well-quoted record as wide as the header; else ``DataError`` naming the line.

    polars alone would fill a short (truncated) line with nulls, read a stray quote as the start
    of a field running to the end of the file, and report a bad byte without a line number; a row
    that silently lost its Result or Units is worse than an error. The exports have no quoted
    newlines, so the check goes line by line.
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_number = content.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line_number}: not UTF-8 text (byte {content[exc.start]:#04x})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise DataError(f"{path}:1: empty file, expected a header line")
    width = 0
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix("\r")
        if '"' not in line and "\r" not in line:
            fields = line.count(",") + 1  # no quoting: every comma separates (most lines; the regex is slow)
        elif not _LINE.fullmatch(line):
            raise DataError(f"{path}:{number}: a quote out of place or unclosed, or a carriage return inside the line")
        else:
            fields = len(next(csv.reader([line])))
        if number == 1:
            width = fields
        elif line and fields != width:
            raise DataError(f"{path}:{number}: {fields} fields, the header has {width}")


def read_table(path: Path, required: tuple[str, ...]) -> pl.DataFrame:
    """One CSV as text columns, with ``_file`` and ``_line`` (the line number in the file, header = 1).

    The exports have no quoted newlines, so data row ``i`` (from 0) sits on line ``i + 2``; the
    check below fails loudly if a future export breaks that assumption instead of mis-numbering.
    """
    _require(path)
    content = path.read_bytes()
    _check_structure(path, content)
    try:
        frame = pl.read_csv(content, infer_schema=False, truncate_ragged_lines=False)
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"{path}: not a readable CSV: {exc}") from exc
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise DataError(f"{path}:1: header lacks column(s) {', '.join(missing)}")
    # Lines after the header; polars keeps a blank line as an all-null row, so rows and lines agree.
    physical_lines = content.count(b"\n") + (0 if content.endswith(b"\n") else 1) - 1
    if physical_lines != frame.height:
        raise DataError(
            f"{path}: {frame.height} rows but {physical_lines} data lines (a quoted newline?); "
            "line numbers would be wrong"
        )
    frame = frame.with_columns(
        pl.lit(path.name).alias(FILE_COLUMN),
        pl.int_range(2, frame.height + 2, dtype=pl.Int64).alias(LINE_COLUMN),
    )
    data_columns = [c for c in frame.columns if c not in (FILE_COLUMN, LINE_COLUMN)]
    return frame.filter(~pl.all_horizontal(pl.col(data_columns).is_null()))  # blank lines carry nothing


def read_performance(path: Path) -> pl.DataFrame:
    """``data_performance.csv`` is sideways: one row per benchmark, one column per date."""
    frame = read_table(path, ("Dates",))
    if frame.width < 4:
        raise DataError(f"{path}:1: expected a 'Dates' column followed by date columns")
    return frame


def load_results(data_dir: Path) -> Results:
    data_dir = Path(data_dir)
    return Results(
        datacenter=read_table(data_dir / DATACENTER, INFERENCE_COLUMNS),
        edge=read_table(data_dir / EDGE, INFERENCE_COLUMNS),
        tiny=read_table(data_dir / TINY, INFERENCE_COLUMNS),
        training=read_table(data_dir / TRAINING, TRAINING_COLUMNS),
        performance=read_performance(data_dir / PERFORMANCE),
        data_dir=data_dir,
    )


def row_ref(file: str, line: int) -> str:
    return f"{file}:{line}"
