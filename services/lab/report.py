"""The end-of-run summary a person reads: one table of the published numbers, each saying how it
was measured, the compliance verdict with the failing rules, and where the files are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpower.analytics.check import energy_text, findings_table, not_applicable_lines, verdict_line
from mlpower.logtext import terminal_text
from mlpower.schema import RunAnalyzed, RunSummary
from rich.console import Console
from rich.table import Table
from rich.text import Text


def _number(value: float | None, unit: str, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f} {unit}".strip()


# (label, how to render it from the summary): declared once, rendered the same everywhere.
SUMMARY_ROWS: tuple[tuple[str, Any], ...] = (
    ("average power", lambda s: _number(s.avg_power_w, "W") + (
        f" ± {s.avg_power_uncertainty_w:.2f} W" if s.avg_power_uncertainty_w is not None else "")),
    ("energy in window", energy_text),  # over the covered time, the coverage beside it
    ("energy (trapezoid check)", lambda s: _number(s.energy_trapezoid_j, "J", 1)),
    ("LoadGen window", lambda s: _number(s.window_s, "s")),
    ("performance", lambda s: _number(s.performance, s.performance_unit)),
    ("efficiency", lambda s: _number(s.efficiency, s.efficiency_unit, 4)),
    ("idle power", lambda s: _number(s.idle_power_w, "W")),
    ("samples in window", lambda s: f"{s.samples_in_window} ({s.flagged_samples_in_window} flagged, not averaged)"),
    ("measured by", lambda s: s.source),
    ("method", lambda s: s.method),
)


def verdict_text(analyzed: RunAnalyzed) -> str:
    """The verdict as ``mlpower check`` words it (naming the failing rules), and why a demo fails."""
    text = verdict_line(analyzed.verdict.upper(), analyzed.findings).removeprefix("verdict: ")
    if not analyzed.summary.compliant_durations:
        text += " - NON-COMPLIANT: durations shortened for a demo"
    return text


def summary_table(analyzed: RunAnalyzed) -> Table:
    summary: RunSummary = analyzed.summary
    table = Table(title=f"run {analyzed.run_id}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for label, render in SUMMARY_ROWS:
        table.add_row(label, Text(terminal_text(str(render(summary)))))  # values from the bus: plain text
    table.add_row("compliance verdict", verdict_text(analyzed))
    return table


def write_report(analyzed: RunAnalyzed, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json.loads(analyzed.model_dump_json()), indent=2) + "\n", encoding="utf-8")
    return path


def print_summary(console: Console, analyzed: RunAnalyzed, paths: dict[str, Any]) -> None:
    console.print(summary_table(analyzed))
    console.print(findings_table(analyzed.findings))
    for line in not_applicable_lines(analyzed.findings):
        console.print(Text(terminal_text(line), style="dim"), highlight=False)
    # soft_wrap: a path or URL is never broken into lines, so it can be copied whole
    for label, value in paths.items():
        if isinstance(value, list | tuple):
            console.print(f"[bold]{label}:[/bold]")
            for item in value:
                console.print(f"  {item}", soft_wrap=True, highlight=False)
        else:
            console.print(f"[bold]{label}:[/bold] {value}", soft_wrap=True, highlight=False)
