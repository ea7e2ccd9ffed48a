"""``mlpower check``: run every declared rule on one output tree; render a table and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mlpower.schema import Finding, RunSummary
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.table import Table

from .errors import InputError
from .rules import RULES, CheckOptions, Rule, run_rule
from .run_tree import RunTree, read_json, read_tree
from .summary import analyze_tree


class CheckReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_dir: str
    verdict: Literal["pass", "fail"]
    uses_ptdaemon: bool
    findings: tuple[Finding, ...]
    summary: RunSummary | None = None

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status == "fail" and f.severity == "error")

    def finding(self, rule: str) -> Finding:
        return next(f for f in self.findings if f.rule == rule)


def verdict_of(findings: tuple[Finding, ...] | list[Finding]) -> Literal["pass", "fail"]:
    """A run fails on any failed error; warnings and not-applicable checks do not fail it."""
    return "fail" if any(f.status == "fail" and f.severity == "error" for f in findings) else "pass"


def check_tree(tree: RunTree, options: CheckOptions | None = None,
               rules: tuple[Rule, ...] = RULES) -> CheckReport:
    options = options or CheckOptions()
    findings = tuple(run_rule(rule, tree, options) for rule in rules)
    summary = analyze_tree(tree).summary
    return CheckReport(run_dir=str(tree.root), verdict=verdict_of(findings), uses_ptdaemon=tree.uses_ptdaemon[0],
                       findings=findings, summary=summary)


def load_sources_checksums(path: Path) -> tuple[dict[str, str], ...]:
    """``sources_checksums.json``: a list of {relative path: sha1} dicts (one per accepted release)."""
    data = read_json(path)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(entry, dict) for entry in data):
        raise InputError(f"{path}: expected a list of {{path: sha1}} objects")
    return tuple(data)


def check_run_dir(path: Path, options: CheckOptions | None = None) -> CheckReport:
    """Check one run folder (mlpower's output tree, or an MLPerf ``performance/`` folder)."""
    return check_tree(read_tree(Path(path)), options)


_STYLE = {"pass": "green", "fail": "red", "not_applicable": "dim"}


def render_table(report: CheckReport, console: Console) -> None:
    table = Table(title=f"mlpower check {report.run_dir}", show_lines=False)
    for column in ("rule", "status", "severity", "finding"):
        table.add_column(column, overflow="fold")
    for finding in report.findings:
        status = finding.status if finding.status != "fail" or finding.severity == "error" else "warning"
        style = "yellow" if status == "warning" else _STYLE[finding.status]
        table.add_row(finding.rule, f"[{style}]{status}[/]", finding.severity, finding.message)
    console.print(table)
    s = report.summary
    if s is not None and s.avg_power_w is not None:
        uncertainty = f" ± {s.avg_power_uncertainty_w:.3f}" if s.avg_power_uncertainty_w is not None else ""
        efficiency = f"{s.efficiency:.6g} {s.efficiency_unit}" if s.efficiency is not None else "unknown"
        console.print(f"average power {s.avg_power_w:.3f}{uncertainty} W over {s.window_s:.3f} s "
                      f"({s.samples_in_window} samples, {s.flagged_samples_in_window} flagged), energy "
                      f"{s.energy_j:.1f} J; performance {s.performance} {s.performance_unit}; efficiency {efficiency}")
        console.print(f"[dim]{s.method}; {s.source}[/]")
    colour = "green" if report.verdict == "pass" else "red"
    console.print(f"[bold {colour}]verdict: {report.verdict}[/] ({len(report.errors)} error(s))")


def report_json(report: CheckReport) -> dict[str, Any]:
    return report.model_dump(mode="json")
