"""Alterations of an output tree, one per compliance rule, each breaking exactly that rule.

They are written against times and files, not line numbers, so they apply to the trees built in
fixtures and to the real trees made by the director, the agent and the simulator alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from mlpower.loadgen_log import parse_stamp

from .trees import edit_json, stamp


def edit_lines(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    path.write_text("\n".join(change(path.read_text().split("\n"))))


def window_of(session: Path) -> tuple[float, float]:
    text = (session / "run_1" / "mlperf_log_detail.txt").read_text()
    begin = json.loads(next(r for r in text.splitlines() if "power_begin" in r)[8:])["value"]
    end = json.loads(next(r for r in text.splitlines() if "power_end" in r)[8:])["value"]
    return parse_stamp(begin), parse_stamp(end)


def set_detail(session: Path, key: str, value: object) -> None:
    def change(lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            if line.startswith(":::MLLOG") and json.loads(line[8:])["key"] == key:
                record = json.loads(line[8:])
                record["value"] = value
                line = ":::MLLOG " + json.dumps(record)
            out.append(line)
        return out
    edit_lines(session / "run_1" / "mlperf_log_detail.txt", change)


def spl_watts(session: Path, change: Callable[[int, float, float], float | None], folder: str = "run_1") -> None:
    """Rewrite (or drop, when ``change`` returns None) the Watts of each row: change(index, t, watts)."""
    def lines(rows: list[str]) -> list[str]:
        out = []
        for i, line in enumerate(rows):
            if line.startswith("Time"):
                fields = line.split(",")
                new = change(i, parse_stamp(fields[1]), float(fields[3]))
                if new is None:
                    continue
                fields[3] = f"{new:.6f}"
                line = ",".join(fields)
            out.append(line)
        return out
    edit_lines(session / folder / "spl.txt", lines)


def shift_time_replies(data: dict) -> None:
    for message in data["messages"]:
        if message["cmd"] == "time":
            message["reply"] = repr(float(message["reply"]) + 0.6)


def set_phase(data: dict, mode: str, index: int, wall: float) -> None:
    data["phases"][mode][index][0] = wall


def move_phase1_after_begin(s: Path) -> None:
    begin, _ = window_of(s)
    for side in ("client", "server"):
        edit_json(s, side, lambda d: set_phase(d, "testing", 1, begin + 1.0))


def documents_overrange(s: Path) -> None:
    begin, end = window_of(s)
    lines = (s / "documents.jsonl").read_text().splitlines()
    for i, line in enumerate(lines):
        doc = json.loads(line)
        if doc["type"] == "run.page" and doc["mode"] == "testing":
            # the first testing page can end before LoadGen's window opens: take the first page with
            # a sample inside the window
            j = next((k for k, t in enumerate(doc["t_utc_s"]) if begin < t < end), None)
            if j is None:
                continue
            doc["flags"][j] |= 1
            lines[i] = json.dumps(doc)
            break
    else:
        raise AssertionError("no testing sample inside the power window to flag")
    (s / "documents.jsonl").write_text("\n".join(lines) + "\n")


def documents_dead_psu(s: Path) -> None:
    """The run's stream becomes the sum of two PSU channels, one of which carries 1 % of the power."""
    shares = {"psu1": 0.99, "psu2": 0.01}
    out: list[dict] = []
    for line in (s / "documents.jsonl").read_text().splitlines():
        doc = json.loads(line)
        out.append(doc)
        if doc["type"] == "run.descriptor":
            out += [{**doc, "stream": name} for name in shares]
            doc["source"] = {**doc["source"], "kind": "merged", "channel": 0}
        elif doc["type"] == "run.page":
            out += [{**doc, "stream": name, "power_w": [None if w is None else w * share for w in doc["power_w"]],
                     "uncertainty_w": [None if u is None else u * share for u in doc["uncertainty_w"]]}
                    for name, share in shares.items()]
    for seq, doc in enumerate(out):
        doc["seq"] = seq
    (s / "documents.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in out))


def middle(s: Path) -> float:
    begin, end = window_of(s)
    return (begin + end) / 2


def near_middle(s: Path, half_width_s: float, watts: float | None) -> None:
    """Set (or drop, with None) the testing samples within half_width_s of the window's middle."""
    m = middle(s)
    spl_watts(s, lambda i, t, w: watts if abs(t - m) < half_width_s else w)


def ptd_warning(s: Path) -> None:
    with open(s / "power" / "ptd_logs.txt", "a") as handle:
        handle.write(f"{stamp(middle(s))}: WARNING: Uncertainty 1.23%, which is above 1.00% limit for the last "
                     "sample!\n")


def usb_error(s: Path) -> None:
    with open(s / "power" / "ptd_logs.txt", "a") as handle:
        handle.write(f"{stamp(middle(s))}: ERROR: USB.\n")


def corrupt_row(s: Path, line: int | None = None) -> None:
    def change(rows: list[str]) -> list[str]:
        target = len(rows) // 2 if line is None else line - 1
        return [r.replace("Watts", "Wat#s") if i == target else r for i, r in enumerate(rows)]
    edit_lines(s / "run_1" / "spl.txt", change)


def ranging_window_s(s: Path) -> float:
    text = (s / "ranging" / "mlperf_log_detail.txt").read_text()
    values = {json.loads(r[8:])["key"]: json.loads(r[8:])["value"] for r in text.splitlines()
              if r.startswith(":::MLLOG") and "power_" in r}
    return parse_stamp(values["power_end"]) - parse_stamp(values["power_begin"])


def change_a_non_time_reply(data: dict) -> None:
    message = next(m for m in data["messages"][1:] if m["cmd"] != "time")
    message["reply"] = message["reply"] + " (edited)"


def replace_uncertainty(s: Path) -> None:
    path = s / "run_1" / "ptd_out.txt"
    worse = "Uncertainty: Uncertainty,0.0080,0.0023,0.0123,10,0,10,0"
    path.write_text(re.sub(r"Uncertainty: Uncertainty,[^\n]*", worse, path.read_text()))


# rule id -> (what the tree needs: any / ptd (PTDaemon run) / docs (documents.jsonl), alteration,
#            re-record hashes afterwards, evidence keys the failing finding must carry)
FAILURES: dict[str, tuple[str, Callable[[Path], None], bool, tuple[str, ...]]] = {
    "client_sources_checksum": ("any", lambda s: edit_json(s, "client", lambda d: d["sources"].update(
        {"lib/client.py": "f" * 40})), False, ("differing_files",)),
    "server_sources_checksum": ("any", lambda s: edit_json(s, "server", lambda d: d["sources"].pop(
        sorted(d["sources"])[0])), False, ("differing_files",)),
    "ptd_messages": ("ptd", lambda s: edit_json(s, "server", lambda d: d["ptd_messages"][14].update(
        {"reply": "Error: measurement already running"})), False, ("index", "cmd", "reply", "expected")),
    "uuid": ("any", lambda s: edit_json(s, "client", lambda d: d["uuid"].update(
        {"server": "00000000-0000-4000-8000-000000000000"})), False, ("client", "server")),
    "session_name": ("any", lambda s: edit_json(s, "client", lambda d: d.update({"session_name": "other"})), False,
                     ("client", "server")),
    "phase_time_difference": ("any", lambda s: edit_json(s, "server", lambda d: set_phase(
        d, "testing", 2, d["phases"]["testing"][2][0] + 1.5)), False, ("mode", "phase", "delta_s")),
    "loadgen_window_in_phases": ("any", move_phase1_after_begin, False, ("file", "marker", "marker_utc_s")),
    "ranging_testing_duration": ("any", lambda s: set_detail(
        s, "power_end", stamp(window_of(s)[0] + 0.3 * ranging_window_s(s))),
                                 True, ("ranging_s", "testing_s")),
    "ranging_vs_testing_power": ("any", lambda s: spl_watts(s, lambda i, t, w: w * 0.9), True,
                                 ("ranging_avg_power_w", "testing_avg_power_w", "delta_pct")),
    "client_server_messages": ("any", lambda s: edit_json(s, "server", change_a_non_time_reply), False,
                               ("index", "client", "server")),
    "results_checksum": ("any", lambda s: (s / "run_1" / "mlperf_log_summary.txt").write_text("edited\n"), False,
                         ("files",)),
    "ptd_log_messages": ("ptd", ptd_warning, True, ("file", "line", "text")),
    "ptd_log_warnings": ("ptd", usb_error, True, ("file", "line", "text")),
    "ptd_config": ("ptd", lambda s: edit_json(s, "server", lambda d: d["ptd_config"][0].update({"device_type": 1})),
                   False, ("device_type",)),
    "debug_disabled": ("any", lambda s: edit_json(s, "server", lambda d: d.update({"debug": True})), False,
                       ("debug",)),
    "files_readable": ("any", corrupt_row, True, ("problems",)),
    "loadgen_result_valid": ("any", lambda s: set_detail(s, "result_validity", "INVALID"), True, ("file",)),
    "samples_in_window": ("any", lambda s: spl_watts(s, lambda i, t, w: -1.0), True,
                          ("samples_in_window", "flagged")),
    "flagged_samples": ("any", lambda s: near_middle(s, 1.5, -1.0), True, ("flagged", "samples_in_window")),
    "sample_interval": ("any", lambda s: spl_watts(s, lambda i, t, w: None if i % 2 else w), True,
                        ("median_interval_s",)),
    "coverage": ("any", lambda s: near_middle(s, 1.6, None), True, ("inner_gaps", "uncovered", "coverage_ratio")),
    "uncertainty": ("any", replace_uncertainty, False, ("max_relative",)),
    "overrange": ("docs", documents_overrange, False, ("first_t_utc_s", "count")),
    "channel_imbalance": ("docs", documents_dead_psu, False, ("weak", "shares", "averages_w")),
    "clock_offset": ("any", lambda s: edit_json(s, "client", shift_time_replies), False, ("max_offset_s",)),
    "min_duration": ("any", lambda s: set_detail(s, "power_end", stamp(window_of(s)[0] + 1.0)), True,
                     ("window_s", "min_duration_s")),
}


