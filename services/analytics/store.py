"""The tidy table of all analysed runs: one row per run, kept as Parquet under the results folder.

Rows are replaced by run id (a re-analysis supersedes the earlier one). The full ``RunAnalyzed``
message is kept in a column beside the tidy ones, so the API can serve findings unchanged.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import polars as pl
from mlpower.errors import InputError
from mlpower.schema import RunAnalyzed, RunSummary, decode, encode

_SUMMARY_FLOATS = [name for name, f in RunSummary.model_fields.items() if "float" in str(f.annotation)]
_SUMMARY_INTS = ["samples_in_window", "flagged_samples_in_window"]
_SUMMARY_STRS = ["source", "method", "scenario", "performance_unit", "efficiency_unit"]
SCHEMA: dict[str, Any] = {
    "run_id": pl.Utf8, "lab": pl.Utf8, "sut": pl.Utf8, "verdict": pl.Utf8, "analyzed_utc_s": pl.Float64,
    "errors": pl.Int64, "warnings": pl.Int64, "not_applicable": pl.Int64,
    **{name: pl.Float64 for name in _SUMMARY_FLOATS}, **{name: pl.Int64 for name in _SUMMARY_INTS},
    **{name: pl.Utf8 for name in _SUMMARY_STRS}, "compliant_durations": pl.Boolean, "message_json": pl.Utf8,
}


def row_of(message: RunAnalyzed) -> dict[str, Any]:
    summary = message.summary.model_dump()
    findings = message.findings
    return {
        "run_id": message.run_id, "lab": message.lab, "sut": message.sut, "verdict": message.verdict,
        "analyzed_utc_s": message.t_utc_s,
        "errors": sum(f.status == "fail" and f.severity == "error" for f in findings),
        "warnings": sum(f.status == "fail" and f.severity == "warning" for f in findings),
        "not_applicable": sum(f.status == "not_applicable" for f in findings),
        **{k: summary[k] for k in (*_SUMMARY_FLOATS, *_SUMMARY_INTS, *_SUMMARY_STRS, "compliant_durations")},
        "message_json": encode(message).decode("utf-8"),
    }


class RunStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._runs: dict[str, RunAnalyzed] = {}
        if self.path.exists():
            try:
                frame = pl.read_parquet(self.path)
            except Exception as exc:  # polars raises several types for a damaged file
                raise InputError(f"{self.path}: not a readable Parquet table: {exc}") from exc
            for text in frame.get_column("message_json").to_list():
                message = decode(text)
                if isinstance(message, RunAnalyzed):
                    self._runs[message.run_id] = message

    def put(self, message: RunAnalyzed) -> None:
        with self._lock:
            self._runs[message.run_id] = message
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        frame = pl.DataFrame([row_of(m) for m in self._runs.values()], schema=SCHEMA, orient="row")
        tmp = self.path.with_name(self.path.name + ".tmp")
        frame.write_parquet(tmp)
        os.replace(tmp, self.path)  # readers never see a half-written table

    def get(self, run_id: str) -> RunAnalyzed | None:
        with self._lock:
            return self._runs.get(run_id)

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = [row_of(m) for m in self._runs.values()]
        for row in rows:
            row.pop("message_json")
        return sorted(rows, key=lambda r: r["analyzed_utc_s"])

    def frame(self) -> pl.DataFrame:
        return pl.read_parquet(self.path) if self.path.exists() else pl.DataFrame(schema=SCHEMA)

    def __len__(self) -> int:
        return len(self._runs)
