"""The paper-versus-corrected audit: every plotted value that differs, why, and the rows behind it.

Each figure is computed in both modes; every value whose number differs, or that one mode plots
and the other does not, becomes a difference with the rows behind each side and the causes the
computations tagged it with (``corrections.CAUSES``). Values a mode's rule left out (fig 10's
cut in paper mode, its benchmark-change exclusions in corrected mode) are listed with their
cause too. The report groups everything by cause, with counts and rows; ``summary_text`` prints
it in 80 columns. A difference without a cause is ``unexplained``, never silently dropped.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlpower.figures import catalogue
from mlpower.figures.corrections import BENCHMARK_CHANGES, CAUSES, UNEXPLAINED
from mlpower.figures.figuredata import MODES, FigureData, flatten, same_value
from mlpower.figures.typed import TYPED_FILE

# Key values of a histogram that summarise the plotted values rather than being one of them.
HISTOGRAM_SUMMARY_KEYS = frozenset({"histogram_counts", "histogram_edges", "n_values", "min", "max", "mean", "median"})
WIDTH = 80


def _causes(key: str, paper: FigureData, corrected: FigureData) -> list[str]:
    tagged = set(paper.points.get(key, {}).get("causes", [])) | set(corrected.points.get(key, {}).get("causes", []))
    if not tagged and key not in paper.points and key not in corrected.points:
        if key.split("[", 1)[0] in HISTOGRAM_SUMMARY_KEYS:
            tagged.add("histogram-summary")
    return sorted(tagged) or [UNEXPLAINED]


def compare(paper: FigureData, corrected: FigureData) -> list[dict[str, Any]]:
    """Every plotted value that differs between the modes, with the rows behind each side and its causes."""
    differences = []
    key_values = (flatten(paper.key_values), flatten(corrected.key_values))
    shown = set(key_values[0]) | set(key_values[1])
    # Plotted values that are not key values themselves (e.g. each histogram value with its rows).
    plotted = (
        {k: v["value"] for k, v in paper.points.items() if k not in shown},
        {k: v["value"] for k, v in corrected.points.items() if k not in shown},
    )
    for section, left, right in (("key_values", *key_values), ("plotted", *plotted)):
        for key in sorted(set(left) | set(right)):
            if key in left and key in right and same_value(left[key], right[key]):
                continue
            differences.append(
                {
                    "section": section,
                    "key": key,
                    "paper": left.get(key),
                    "corrected": right.get(key),
                    "change": "changed"
                    if key in left and key in right
                    else ("only_paper" if key in left else "only_corrected"),
                    "causes": _causes(key, paper, corrected),
                    "rows_paper": paper.points.get(key, {}).get("rows", []),
                    "rows_corrected": corrected.points.get(key, {}).get("rows", []),
                }
            )
    return differences


def audit(data_dir: Path, only: Iterable[str] | None = None) -> dict[str, Any]:
    from mlpower.figures.loader import load_results

    results = load_results(Path(data_dir))
    figures = []
    for entry in catalogue.select(list(only or ())):
        paper, corrected = entry.compute(results, "paper"), entry.compute(results, "corrected")
        differences = compare(paper, corrected)
        excluded = {"paper": paper.excluded, "corrected": corrected.excluded}
        counts: Counter[str] = Counter(c for d in differences for c in d["causes"])
        figures.append(
            {
                "figure": entry.name,
                "title": entry.title,
                "differences": differences,
                "causes": dict(sorted(counts.items())),
                "excluded": excluded,
                "notes": {"paper": paper.notes, "corrected": corrected.notes},
                "skipped_rows": {"paper": paper.skipped, "corrected": corrected.skipped},
            }
        )
    return {
        "data_dir": str(data_dir),
        "typed_values": TYPED_FILE,
        "totals": _totals(figures),
        "causes": _by_cause(figures),
        "benchmark_changes": _benchmark_changes(figures),
        "figures": figures,
    }


def _totals(figures: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "differences": sum(len(f["differences"]) for f in figures),
        "figures_differing": sum(bool(f["differences"]) for f in figures),
        "figures": len(figures),
        "excluded": sum(len(v) for f in figures for v in f["excluded"].values()),
        UNEXPLAINED: sum(UNEXPLAINED in d["causes"] for f in figures for d in f["differences"]),
    }


def _by_cause(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """Each declared cause with the values it explains, the values it excluded and the rows behind them."""
    grouped: dict[str, Any] = {}
    for declared in CAUSES:
        grouped[declared.id] = {
            "title": declared.title,
            "figures": list(declared.figures),
            "paper": declared.paper,
            "corrected": declared.corrected,
            "reason": declared.reason,
            "source": declared.source,
            "differences": [],
            "excluded": [],
            "rows": [],
        }
    grouped[UNEXPLAINED] = {"title": "no declared cause", "figures": [], "differences": [], "excluded": [], "rows": []}
    rows: dict[str, set[str]] = {key: set() for key in grouped}
    for figure in figures:
        for d in figure["differences"]:
            for cause_id in d["causes"]:
                grouped[cause_id]["differences"].append({"figure": figure["figure"], "key": d["key"]})
                rows[cause_id].update(d["rows_paper"], d["rows_corrected"])
        for mode in MODES:
            for e in figure["excluded"][mode]:
                grouped[e["cause"]]["excluded"].append(
                    {"figure": figure["figure"], "mode": mode, "key": e["key"], "why": e["why"]}
                )
                rows[e["cause"]].update(e["rows"])
    for cause_id, entry in grouped.items():
        entry["rows"] = sorted(rows[cause_id], key=_row_order)
        entry["counts"] = {
            "differences": len(entry["differences"]),
            "excluded": len(entry["excluded"]),
            "rows": len(entry["rows"]),
        }
    return grouped


def _row_order(ref: str) -> tuple[str, int]:
    name, _, line = ref.rpartition(":")
    return (name, int(line)) if line.isdigit() else (ref, 0)


def _benchmark_changes(figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    excluded = [e for f in figures for e in f["excluded"]["corrected"] if e["cause"] == "benchmark-change"]
    return [
        {
            "benchmark": change.benchmark,
            "changed_in": change.changed_in,
            "change": change.change,
            "source": change.source,
            "excluded_pairs": [
                {"key": e["key"], "value": e["value"], "rows": e["rows"]}
                for e in excluded
                if e["why"].endswith(change.describe())
            ],
        }
        for change in BENCHMARK_CHANGES
    ]


# --------------------------------------------------------------------------- reports


def _wrap(text: str, indent: str, first: str | None = None) -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent=first if first is not None else indent, subsequent_indent=indent
    ) or [first or indent]


def summary_text(report: dict[str, Any], json_path: Path | None = None) -> str:
    """The audit for a terminal: totals, one line per figure, then each cause with its counts."""
    totals = report["totals"]
    lines = _wrap(
        f"Paper mode versus corrected mode ({report['data_dir']}): {totals['differences']} plotted values "
        f"differ in {totals['figures_differing']} of {totals['figures']} figures; {totals['excluded']} values "
        f"excluded by a rule; {totals[UNEXPLAINED]} without a declared cause.",
        "",
    )
    lines += ["", f"{'figure':<8}{'differ':>7}{'excl.':>7}  causes (values)"]
    for figure in report["figures"]:
        excluded = sum(len(v) for v in figure["excluded"].values())
        causes = ", ".join(f"{k} {v}" for k, v in figure["causes"].items()) or "-"
        lines += _wrap(causes, " " * 24, f"{figure['figure']:<8}{len(figure['differences']):>7}{excluded:>7}  ")
    lines += ["", "Causes (values that differ / values excluded / rows behind them):"]
    for cause_id, entry in report["causes"].items():
        counts = entry["counts"]
        if not counts["differences"] and not counts["excluded"]:
            continue
        lines.append("")
        lines += _wrap(
            f"{cause_id}: {counts['differences']} / {counts['excluded']} / {counts['rows']} rows",
            "    ",
            "",
        )
        if cause_id == UNEXPLAINED:
            lines += _wrap(", ".join(f"{d['figure']} {d['key']}" for d in entry["differences"]), "    ")
            continue
        lines += _wrap(entry["title"], "    ")
        for label, field in (("paper", "paper"), ("corrected", "corrected"), ("why", "reason"), ("source", "source")):
            lines += _wrap(entry[field], " " * 15, f"    {label + ':':<11}")
        examples = [r for r in entry["rows"] if not r.startswith(TYPED_FILE)][:3] or entry["rows"][:3]
        if examples:
            lines += _wrap(
                ", ".join(examples) + (", ..." if counts["rows"] > len(examples) else ""),
                " " * 15,
                f"    {'rows:':<11}",
            )
    changes = report["benchmark_changes"]
    if changes:
        lines += ["", "Benchmark definition changes (fig10, corrected mode excludes pairs across them):"]
        for change in changes:
            lines += _wrap(
                f"{change['benchmark']} {change['changed_in']}: {change['change']} "
                f"({len(change['excluded_pairs'])} pairs excluded)",
                "      ",
                "    ",
            )
            lines += _wrap(change["source"], " " * 15, f"    {'source:':<11}")
    if json_path is not None:
        lines += ["", *_wrap(f"Every value with its rows: {json_path}", "")]
    return "\n".join(lines) + "\n"


def audit_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Paper mode versus corrected mode",
        "",
        f"Data: `{report['data_dir']}`. Each row is a plotted value that differs, with its causes and the "
        "rows responsible; the causes are explained at the end.",
        "",
    ]
    for figure in report["figures"]:
        lines += [f"## {figure['figure']}: {figure['title']}", ""]
        if not figure["differences"]:
            lines += ["No plotted value differs.", ""]
        else:
            lines += [
                "| section | key | paper | corrected | causes | rows (paper) | rows (corrected) |",
                "|---|---|---|---|---|---|---|",
            ]
            for d in figure["differences"]:
                lines.append(
                    f"| {d['section']} | `{d['key']}` | {d['paper']} | {d['corrected']} | {', '.join(d['causes'])} | "
                    f"{'<br>'.join(d['rows_paper'])} | {'<br>'.join(d['rows_corrected'])} |"
                )
            lines.append("")
        for mode in MODES:
            for e in figure["excluded"][mode]:
                lines.append(f"- {mode} excludes `{e['key']}` ({e['cause']}): {e['why']}")
            for note in figure["notes"][mode]:
                lines.append(f"- {mode}: {note}")
        lines.append("")
    lines += ["## Causes", ""]
    for cause_id, entry in report["causes"].items():
        counts = entry["counts"]
        if not counts["differences"] and not counts["excluded"]:
            continue
        lines.append(
            f"- **{cause_id}** ({counts['differences']} values, {counts['excluded']} excluded, {counts['rows']} rows): "
            f"{entry['title']}."
        )
        if cause_id != UNEXPLAINED:
            lines.append(
                f"  Paper: {entry['paper']}. Corrected: {entry['corrected']}. Why: {entry['reason']}. "
                f"Source: {entry['source']}."
            )
    return "\n".join(lines) + "\n"


def write_audit(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".md":
        path.write_text(audit_markdown(report))
    else:
        path.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    return path
