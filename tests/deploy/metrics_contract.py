"""The metrics deploy/ reads, which service exposes each, and the labels the queries group by.

Dashboards and alert rules use exactly these names (a test checks it); a test also compares the
table with what each service's metrics module really registers, so a renamed or missing metric
shows up here before it shows up as an empty panel.
"""

from __future__ import annotations

ANALYZER = frozenset({"sut", "analyzer", "channel"})

# metric -> (service that exposes it, Prometheus type, labels the queries need)
REQUIRED_METRICS: dict[str, tuple[str, str, frozenset[str]]] = {
    "mlpower_analyzer_power_watts": ("director", "gauge", ANALYZER),
    "mlpower_analyzer_energy_joules_total": ("director", "counter", ANALYZER),
    "mlpower_analyzer_voltage_volts": ("director", "gauge", ANALYZER),
    "mlpower_analyzer_current_amperes": ("director", "gauge", ANALYZER),
    "mlpower_analyzer_power_factor_ratio": ("director", "gauge", ANALYZER),
    "mlpower_analyzer_uncertainty_ratio": ("director", "gauge", ANALYZER),
    "mlpower_analyzer_range_current_amperes": ("director", "gauge", ANALYZER),
    "mlpower_analyzer_range_voltage_volts": ("director", "gauge", ANALYZER),
    "mlpower_analyzer_samples_total": ("director", "counter", ANALYZER),
    "mlpower_analyzer_sample_gaps_total": ("director", "counter", ANALYZER),
    # 1 while the director can read its analyzer, 0 once it has lost it (alert MlpowerAnalyzerLost)
    "mlpower_analyzer_up": ("director", "gauge", frozenset({"sut", "analyzer"})),
    "mlpower_run_info": ("director", "gauge", frozenset({"run_id", "sut", "benchmark", "scenario", "phase"})),
    # live compliance findings by rule and severity ("error" | "warning")
    "mlpower_live_findings_total": ("analytics", "counter", frozenset({"sut", "rule", "severity"})),
    # messages waiting in the lab's dead-letter queue (alert MlpowerDeadLetters)
    "mlpower_dead_letter_messages": ("analytics", "gauge", frozenset({"lab"})),
    # director <-> SUT clock offset as the agent measures it
    "mlpower_clock_offset_seconds": ("sut_agent", "gauge", frozenset({"sut"})),
}

# The services' metrics modules: module -> class with a ``registry`` attribute.
METRICS_MODULES = {
    "director": ("mlpower.director.metrics", "DirectorMetrics"),
    "analytics": ("mlpower.analytics.metrics", "AnalyticsMetrics"),
    "sut_agent": ("mlpower.sut_agent.metrics", "AgentMetrics"),
}

# What a service does not expose yet, as of this commit. The test fails both ways: when one of
# these appears (remove it here) and when anything else is missing.
PENDING: dict[str, set[str]] = {
    "director": set(),
    "analytics": set(),
    "sut_agent": set(),
}
