"""Grafana provisioning and dashboards; every PromQL expression checked by a real Prometheus.

Prometheus answers HTTP 400 to an expression that does not parse, so each panel's and each rule's
expression is sent to a Prometheus started with the repository's configuration. A stand-in
exporter then serves every metric the contract names (tests/deploy/metrics_contract.py), remapped
as the director's and analytics' targets, and every expression must return data from it: that
catches a wrong label in a ``by`` clause or a misspelt metric, which parse fine.
"""

from __future__ import annotations

import importlib
import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from .conftest import DEPLOY, PromQLError
from .metrics_contract import METRICS_MODULES, PENDING, REQUIRED_METRICS
from .promql import (
    annotation_queries,
    dashboard_queries,
    load_dashboards,
    load_rules,
    metric_names,
    rule_queries,
    substitute,
)

PROVISIONING = DEPLOY / "grafana" / "provisioning"


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def test_provisioning_points_the_dashboards_at_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"]
    uids = {source["uid"] for source in datasources if source["type"] == "prometheus"}
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "mlpower.yml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/etc/grafana/dashboards"  # where compose and k8s mount them
    dashboards = load_dashboards()
    assert dashboards, "no dashboard JSON"
    for name, dashboard in dashboards.items():
        assert dashboard["uid"] and dashboard["title"], name
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        # one datasource variable, defaulting to the provisioned Prometheus; every query uses it
        source = variables["datasource"]
        assert source["type"] == "datasource" and source["query"] == "prometheus"
        assert source["current"]["value"] in uids
        for panel in all_panels(dashboard):
            assert panel["datasource"]["uid"] == "${datasource}", (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}" and target["expr"].strip()
        for item in [*variables.values(), *dashboard["annotations"]["list"]]:
            if item.get("type") != "datasource" and item.get("builtIn") != 1:
                assert item["datasource"]["uid"] == "${datasource}", (name, item["name"])


def test_every_query_follows_the_lab_variable_and_phases_and_alerts_are_annotated() -> None:
    for name, dashboard in load_dashboards().items():
        assert "lab" in {v["name"] for v in dashboard["templating"]["list"]}, name
        for panel in all_panels(dashboard):
            for target in panel["targets"]:
                assert 'lab=~"$lab"' in target["expr"], (name, panel["title"])
        annotations = {a["name"]: a["expr"] for a in dashboard["annotations"]["list"] if a.get("expr")}
        assert any("mlpower_run_info" in expr and "phase" in expr for expr in annotations.values()), name
        assert any(expr.startswith("ALERTS{") for expr in annotations.values()), name


def test_panels_do_not_overlap() -> None:
    for name, dashboard in load_dashboards().items():
        taken: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, (name, panel["title"])
            cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                     for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & taken, f"{name}: {panel['title']} overlaps another panel"
            taken |= cells


def test_the_dashboard_shows_what_the_lab_needs_to_see() -> None:
    used = {metric for query in dashboard_queries() for metric in metric_names(query.expr)}
    # live power and energy; voltage and current against their ranges; uncertainty; sample rate and
    # gaps; run phases; findings; the analyzer link
    required = set(REQUIRED_METRICS)
    assert used == required, f"missing {required - used}, unknown {used - required}"


def test_rules_read_only_contract_metrics() -> None:
    used = {metric for rule in load_rules() for metric in metric_names(rule["expr"])}
    assert used <= set(REQUIRED_METRICS), used - set(REQUIRED_METRICS)


def test_grafana_variables_are_all_known() -> None:
    with pytest.raises(KeyError, match="nope"):
        substitute("up{x=~\"$nope\"}")


# ---- the services expose what the dashboards read --------------------------------------------

def registered(metrics: Any) -> dict[str, frozenset[str]]:
    """Names (as scraped) and label names of the prometheus_client collectors on an object."""
    found = {}
    for value in vars(metrics).values():
        name = getattr(value, "_name", None)
        if name is None or not hasattr(value, "_labelnames"):
            continue
        suffix = "_total" if getattr(value, "_type", "") == "counter" else ""
        found[name + suffix] = frozenset(value._labelnames)
    return found


@pytest.mark.parametrize("service", sorted(METRICS_MODULES))
def test_services_expose_the_metrics_the_dashboards_read(service: str) -> None:
    module_name, class_name = METRICS_MODULES[service]
    module = pytest.importorskip(module_name, reason=f"{module_name} has not landed")
    exposed = registered(getattr(module, class_name)())
    required = {name: labels for name, (owner, _, labels) in REQUIRED_METRICS.items() if owner == service}
    missing = {name for name in required if name not in exposed}
    assert missing == PENDING[service], (
        f"{service} does not expose {sorted(missing - PENDING[service])}" if missing - PENDING[service] else
        f"{service} now exposes {sorted(PENDING[service] - missing)}: remove it from PENDING in metrics_contract.py")
    for name, labels in required.items():
        if name in exposed:
            assert labels <= exposed[name], f"{name} lacks labels {set(labels - exposed[name])}"


# ---- a real Prometheus --------------------------------------------------------------------------

# Both severities, because the alert rules select each one.
LABEL_VALUES = {"sut": ["sut1"], "analyzer": ["analyzer1"], "channel": ["1"], "phase": ["testing"],
                "run_id": ["run1"], "benchmark": ["resnet50"], "scenario": ["Offline"], "rule": ["sample_gap"],
                "severity": ["warning", "error"], "lab": ["lab1"]}


class StandInExporter:
    """Serves every contract metric with made-up values; counters grow at each scrape."""

    def __init__(self, owner: str) -> None:
        self.registry = CollectorRegistry()
        self.series: list[tuple[Any, str]] = []
        for name, (service, kind, labels) in REQUIRED_METRICS.items():
            if service == owner:
                ordered = sorted(labels)
                metric: Counter | Gauge
                if kind == "counter":
                    metric = Counter(name.removesuffix("_total"), name, ordered, registry=self.registry)
                else:
                    metric = Gauge(name, name, ordered, registry=self.registry)
                for combination in itertools.product(*(LABEL_VALUES[label] for label in ordered)):
                    self.series.append((metric.labels(**dict(zip(ordered, combination, strict=True))), kind))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                for child, kind in exporter.series:
                    if kind == "counter":
                        child.inc(1.0)
                    else:
                        child.set(0.5)
                body = generate_latest(exporter.registry)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def exporters() -> Iterator[dict[str, StandInExporter]]:
    started = {name: StandInExporter(name) for name in ("director", "analytics", "sut_agent")}
    yield started
    for exporter in started.values():
        exporter.close()


def test_every_expression_parses_and_returns_data(prometheus_server: Any,
                                                  exporters: dict[str, StandInExporter]) -> None:
    prom = prometheus_server({"director:8000": exporters["director"].address,
                              "analytics:8001": exporters["analytics"].address,
                              "sut-agent:8004": exporters["sut_agent"].address})
    queries = dashboard_queries() + rule_queries()
    raw_alerts = [rule["expr"] for rule in load_rules()]
    for expr in [query.expr for query in queries + annotation_queries()] + raw_alerts:
        prom.query(expr)  # PromQLError when it does not parse
    with pytest.raises(PromQLError):
        prom.query("sum by (sut (mlpower_analyzer_power_watts)")
    prom.wait_for_targets()
    for query in queries:
        assert prom.wait_for(query.expr, timeout_s=20), query.where
    # Prometheus loaded the repository's rules, not just the test's copy of them
    assert {rule["name"] for rule in prom.rules()} == {rule.get("alert") or rule["record"] for rule in load_rules()}


def test_dashboard_json_is_stable() -> None:
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2) + "\n", f"{path.name}: keep it 2-space formatted"


def test_metrics_modules_table_names_real_packages() -> None:
    for module_name, _ in METRICS_MODULES.values():
        assert importlib.util.find_spec(module_name.rsplit(".", 1)[0]) is not None, module_name
