"""Parsers of the power-dev server-side files, written in the tests from power-dev-protocol.md
(§3.4, §3.7, §3.8, §4.3, §4.4): the line shapes as regular expressions from the document,
independent of the director's formatting code; timestamps are read with ``mlpower.ptdformat``,
whose own tests pin it to the document's example."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mlpower.ptdformat import parse_ptd_time

PTD_TS = r"\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}\.\d{3}"
NUM = r"-?\d+\.\d{6}"
SPL_RE = re.compile(rf"^Time,(?P<ts>{PTD_TS}),Watts,(?P<w>{NUM}),Volts,(?P<v>{NUM}),Amps,(?P<a>{NUM}),"
                    rf"PF,(?P<pf>{NUM}),Mark,(?P<mark>[A-Za-z0-9_\-]+)$")
CONSOLE_RE = re.compile(rf"^{PTD_TS}: .*$")
SERVER_LOG_RE = re.compile(r"^ptd-server \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} \[(DEBUG|INFO|WARNING|ERROR)\] .*$")
WATTS_RE = re.compile(r"^Watts,(-?\d+\.\d+),(-?\d+\.\d+),(-?\d+\.\d+),(\d+),(\d+),(\d+)$")
UNC_RE = re.compile(r"^Uncertainty,(-?\d+\.\d+),(-?\d+\.\d+),(-?\d+\.\d+),(\d+),(\d+),(\d+),(\d+)$")
VOLTAGE_RANGES = (15.0, 30.0, 60.0, 150.0, 300.0, 600.0)  # WT310E, crest factor 3 (wt310e.md §1.6)
CURRENT_RANGES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
SERVER_JSON_KEYS = ["version", "timezone", "modules", "sources", "messages", "uuid", "session_name", "results",
                    "phases", "ptd_messages", "ptd_config"]


def parse_spl(path: Path) -> list[dict[str, Any]]:
    """spl.txt: one `Time,…,Mark,…` line per sample and one empty line at the end (§3.7)."""
    text = path.read_text()
    assert text.endswith("\n\n"), f"{path}: must end with one extra empty line"
    rows = []
    for line in text[:-1].splitlines():
        m = SPL_RE.match(line)
        assert m, f"{path}: bad spl line {line!r}"
        rows.append({"t": parse_ptd_time(m["ts"]), "w": float(m["w"]), "v": float(m["v"]), "a": float(m["a"]),
                     "pf": float(m["pf"]), "mark": m["mark"]})
    return rows


def rule_ranges(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """The MLPerf rule, from the document: the smallest V range >= max V, A range >= 1.1 x max A."""
    max_v = max(r["v"] for r in rows)
    max_a = max(r["a"] for r in rows)
    return min(x for x in VOLTAGE_RANGES if x >= max_v), min(x for x in CURRENT_RANGES if x >= 1.1 * max_a)


def parse_ptd_out(path: Path) -> list[tuple[re.Match[str], re.Match[str]]]:
    lines = path.read_text().split("\n")
    assert lines[-1] == "", "ptd_out.txt ends with a newline"
    result = []
    for i in range(0, len(lines) - 1, 3):
        assert lines[i] == f"Analyzer {i // 3 + 1}:"
        assert lines[i + 1].startswith("Power: ") and lines[i + 1].endswith(" "), "trailing space after Watts"
        watts = WATTS_RE.match(lines[i + 1][len("Power: "):-1])
        unc = UNC_RE.match(lines[i + 2].removeprefix("Uncertainty: "))
        assert watts and unc, lines[i:i + 3]
        result.append((watts, unc))
    return result


def parse_ptd_logs(path: Path) -> list[str]:
    """ptd_logs.txt: `Analyzer <i>` then console lines; WARNING/ERROR lines must carry a timestamp (§5.2)."""
    lines = path.read_text().splitlines()
    assert lines[0] == "Analyzer 1"
    for line in lines[1:]:
        if "WARNING:" in line or "ERROR:" in line:
            assert CONSOLE_RE.match(line), f"untimestamped problem line {line!r}"
    return lines


def parse_server_log(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    assert lines and all(SERVER_LOG_RE.match(line) for line in lines), lines[:3]
    return lines


def parse_server_json(path: Path) -> dict[str, Any]:
    text = path.read_text()
    assert not text.endswith("\n"), "json.dump writes no trailing newline"
    summary = json.loads(text)
    assert list(summary)[:len(SERVER_JSON_KEYS)] == SERVER_JSON_KEYS
    assert text == json.dumps(summary, indent=4), "indent=4, default separators"
    assert summary["version"] == "1.0" and isinstance(summary["timezone"], int)
    for m in summary["messages"]:
        assert set(m) == {"cmd", "cmd_time", "reply", "reply_time"}
    for points in summary["phases"].values():
        assert all(len(p) == 2 for p in points)
    assert isinstance(summary["ptd_config"], list)
    return summary
