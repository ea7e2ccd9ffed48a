"""Every PromQL expression of deploy/: Grafana panels and variables, recording and alert rules.

Grafana's template variables are replaced by values Prometheus accepts (``$sut`` -> ``.*``,
``$__rate_interval`` -> ``20s``, ...), so each expression can be sent to a real Prometheus as is.
The coordinator's system test uses ``dashboard_queries`` and ``rule_queries`` to show that each
one returns data from a lab that ran a measurement.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"

# Values for Grafana's variables: a multi-value "All" becomes ".*" inside =~ matchers; intervals
# cover several of the 1 s scrapes a test Prometheus does.
GRAFANA_VARIABLES = {
    "__rate_interval": "20s",
    "__interval": "5s",
    "__range": "5m",
    "sut": ".*",
    "analyzer": ".*",
    "lab": ".*",
}
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
# "<vector> <comparison> <number>" at the end of an alert expression (see alerts.yml's header).
_THRESHOLD = re.compile(r"^(?P<vector>.+?)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<number>-?[0-9.]+(?:e-?[0-9]+)?)\s*$", re.S)
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


@dataclass(frozen=True)
class Query:
    where: str   # dashboard file and panel title, or rule name
    expr: str    # ready for Prometheus


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GRAFANA_VARIABLES:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]
    return _VARIABLE.sub(value, expr)


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))
    return found


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARDS.glob("*.json"))}


def dashboard_queries() -> list[Query]:
    """Panel targets and query variables (``label_values(selector, label)`` as its selector)."""
    queries = []
    for name, dashboard in load_dashboards().items():
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                queries.append(Query(f"{name}: {panel['title']} ({target['refId']})", substitute(target["expr"])))
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                text = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
                match = _LABEL_VALUES.match(text.strip())
                if match is None:
                    raise ValueError(f"{name}: variable {variable['name']}: not label_values(...): {text}")
                selector = match.group("selector")
                if selector:
                    queries.append(Query(f"{name}: variable {variable['name']}", substitute(selector)))
    return queries


def annotation_queries() -> list[Query]:
    """The dashboards' Prometheus annotations (run phases, firing alerts): they must parse, but
    may rightly return nothing (no alert fires in a healthy lab)."""
    return [Query(f"{name}: annotation {annotation['name']}", substitute(annotation["expr"]))
            for name, dashboard in load_dashboards().items()
            for annotation in dashboard.get("annotations", {}).get("list", []) if annotation.get("expr")]


def load_rules(path: Path = ALERT_RULES) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"] for rule in group["rules"]]


def alert_vector(expr: str) -> str:
    """The quantity an alert compares with its threshold (the expression without the comparison)."""
    match = _THRESHOLD.match(expr.strip())
    if match is None:
        raise ValueError(f"not '<vector> <comparison> <number>': {expr!r}")
    return match.group("vector")


def rule_queries(path: Path = ALERT_RULES) -> list[Query]:
    """Recording rules' expressions and alert rules' compared vectors: these return data in a live lab."""
    return [Query(rule.get("alert") or rule["record"], alert_vector(rule["expr"]) if "alert" in rule else rule["expr"])
            for rule in load_rules(path)]


def metric_names(expr: str) -> set[str]:
    """The mlpower_* metric names an expression reads (not recording rules' level:metric:op names)."""
    return set(re.findall(r"(?<![:\w])mlpower_[a-z_]+\b", expr))
