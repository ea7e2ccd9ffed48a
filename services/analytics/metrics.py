"""The analytics service's own Prometheus metrics, on a per-instance registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest


class AnalyticsMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.documents = Counter("mlpower_analytics_documents_total", "run documents consumed",
                                 registry=self.registry)
        # The lab-wide name (deploy/ alerts and dashboards read it): findings by SUT, rule and severity.
        self.live_findings = Counter("mlpower_live_findings_total", "live compliance findings published",
                                     ["sut", "rule", "severity"], registry=self.registry)
        self.runs_analyzed = Counter("mlpower_analytics_runs_analyzed_total", "RunAnalyzed events published",
                                     ["verdict"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
