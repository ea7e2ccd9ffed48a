"""The analytics service's own Prometheus metrics, on a per-instance registry."""

from __future__ import annotations

from mlpower.schema import RunSummary
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from .live import LIVE_SEVERITIES


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

        # The lab's dead-letter queue, counted at each scrape (alert MlpowerDeadLetters); NaN while
        # the broker cannot say.
        self.dead_letters = Gauge("mlpower_dead_letter_messages", "messages waiting in the lab's dead-letter queue",
                                  ["lab"], registry=self.registry)

        # A SUT on several power supplies: each channel's average over the last analysed run's window
        # ("total": the SUT's), so a dashboard can stack the channels of a run.
        self.channel_power = Gauge("mlpower_analytics_channel_power_watts",
                                   "average power of each channel over the last analysed run's testing window "
                                   "(channel 'total': the SUT's)", ["sut", "channel"], registry=self.registry)

    def analyzed(self, sut: str, summary: RunSummary) -> None:
        """A run's per-channel averages (a channel without one is removed, never shown stale)."""
        values = {"total": summary.avg_power_w, **{c.name: c.avg_power_w for c in summary.channels}}
        shown = {sample.labels["channel"] for metric in self.channel_power.collect() for sample in metric.samples
                 if sample.labels.get("sut") == sut}
        for channel in shown:
            if values.get(channel) is None:
                self.channel_power.remove(sut, channel)
        for channel, watts in values.items():
            if watts is not None:
                self.channel_power.labels(sut=sut, channel=channel).set(watts)

    def known_sut(self, sut: str) -> None:
        """Start every live rule's counter of this SUT at zero (idempotent)."""
        for rule, severity in LIVE_SEVERITIES.items():
            self.live_findings.labels(sut=sut, rule=rule, severity=severity)

    def render(self) -> bytes:
        return generate_latest(self.registry)
