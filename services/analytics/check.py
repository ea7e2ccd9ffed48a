"""``mlpower check``: every declared rule over one run (its output tree, with its run stream when
the tree holds one); render a table and JSON."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from mlpower.errors import InputError
from mlpower.logtext import terminal_text
from mlpower.runtree import read_json
from mlpower.runview import KIND_NAMES, RunView
from mlpower.schema import Finding, RunSummary
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .findings import CheckOptions, verdict_of
from .rules import RULES, Rule, evaluate
from .summary import summarize


class CheckReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_dir: str
    verdict: Literal["pass", "fail"]
    kind: str  # RunKind: powerdev, bus, direct
    kind_evidence: str
    uses_ptdaemon: bool
    findings: tuple[Finding, ...]
    summary: RunSummary | None = None

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status == "fail" and f.severity == "error")

    def finding(self, rule: str) -> Finding:
        return next(f for f in self.findings if f.rule == rule)


def check_view(view: RunView, options: CheckOptions | None = None, rules: tuple[Rule, ...] = RULES) -> CheckReport:
    findings = tuple(evaluate(view, options, rules))
    return CheckReport(run_dir=str(view.tree.root) if view.tree is not None else view.run_id,
                       verdict=verdict_of(findings), kind=view.kind.value, kind_evidence=view.kind_evidence,
                       uses_ptdaemon=view.uses_ptdaemon[0], findings=findings, summary=summarize(view))


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
    return check_view(RunView.read(Path(path)), options)


_STYLE = {"FAIL": "bold red", "warn": "yellow", "pass": "green", "n/a": "dim"}


def shown_status(finding: Finding) -> str:
    """Four letters at most: a failed error is FAIL, a failed warning (or info) warn."""
    if finding.status == "fail":
        return "FAIL" if finding.severity == "error" else "warn"
    return "pass" if finding.status == "pass" else "n/a"


_RANK = {"FAIL": 0, "warn": 1, "pass": 2, "n/a": 3}


def failures_first(findings: Iterable[Finding]) -> list[Finding]:
    """Failed errors, then failed warnings, then passes, then what did not apply; rule order within each."""
    return sorted(findings, key=lambda f: _RANK[shown_status(f)])


def findings_table(findings: Iterable[Finding], title: str = "compliance findings") -> Table:
    """The rules that applied, failures first, in a table that fits 80 columns (messages fold).
    A message quotes the run's files, so it is shown as plain text, never read as rich markup."""
    table = Table(title=Text(terminal_text(title)), title_justify="left")
    table.add_column("rule", overflow="fold", max_width=24)
    table.add_column("", no_wrap=True)
    table.add_column("finding", overflow="fold", ratio=1)
    for finding in failures_first(findings):
        status = shown_status(finding)
        if status != "n/a":
            table.add_row(Text(terminal_text(finding.rule)), f"[{_STYLE[status]}]{status}[/]",
                          Text(terminal_text(finding.message)))
    return table


def not_applicable_lines(findings: Iterable[Finding]) -> list[str]:
    """The rules that did not apply, grouped by why (most share one reason)."""
    why: dict[str, list[str]] = {}
    for finding in findings:
        if finding.status == "not_applicable":
            why.setdefault(finding.message, []).append(finding.rule)
    return [f"not applicable: {', '.join(rules)}: {reason}" for reason, rules in why.items()]


def verdict_line(verdict: str, findings: Iterable[Finding]) -> str:
    """The verdict and, when it is not a clean pass, the rules that failed: errors, then warnings."""
    failed = [f for f in findings if f.status == "fail"]
    errors = [f.rule for f in failed if f.severity == "error"]
    warnings = [f.rule for f in failed if f.severity != "error"]
    named = "; ".join(part for part in (
        f"{len(errors)} error(s): {', '.join(errors)}" if errors else "",
        f"{len(warnings)} warning(s): {', '.join(warnings)}" if warnings else "") if part)
    return f"verdict: {verdict}" + (f" - {named}" if named else "")


def render_table(report: CheckReport, console: Console) -> None:
    console.print(Text(terminal_text(f"{KIND_NAMES.get(report.kind, report.kind)}: {report.kind_evidence}")))
    console.print(findings_table(report.findings, title=f"mlpower check {report.run_dir}"))
    for line in not_applicable_lines(report.findings):
        console.print(Text(terminal_text(line), style="dim"), highlight=False)
    s = report.summary
    if s is not None and s.avg_power_w is not None:
        uncertainty = f" ± {s.avg_power_uncertainty_w:.3f}" if s.avg_power_uncertainty_w is not None else ""
        efficiency = f"{s.efficiency:.6g} {s.efficiency_unit}" if s.efficiency is not None else "unknown"
        console.print(f"average power {s.avg_power_w:.3f}{uncertainty} W over {s.window_s:.3f} s "
                      f"({s.samples_in_window} samples, {s.flagged_samples_in_window} flagged), energy "
                      f"{energy_text(s)}; performance {s.performance} {s.performance_unit}; efficiency {efficiency}")
        console.print(Text(terminal_text(f"{s.method}; {s.source}"), style="dim"))
    colour = "green" if report.verdict == "pass" else "red"
    console.print(f"[bold {colour}]{verdict_line(report.verdict, report.findings)}[/]")


def energy_text(summary: RunSummary) -> str:
    """Energy with the time it covers beside it: never a number without its coverage."""
    if summary.energy_j is None or summary.covered_s is None or summary.window_s is None:
        return "unknown"
    return (f"{summary.energy_j:,.1f} J over {summary.covered_s:.1f} s of {summary.window_s:.1f} s "
            f"({summary.coverage_ratio or 0.0:.1%} covered)")


def report_json(report: CheckReport) -> dict[str, Any]:
    return report.model_dump(mode="json")
