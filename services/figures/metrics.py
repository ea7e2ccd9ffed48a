"""Prometheus metrics of the figures service, on a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class FiguresMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rebuilds = Counter(
            "mlpower_figures_rebuilds_total",
            "Rebuild jobs by trigger and outcome",
            ("trigger", "outcome"),
            registry=self.registry,
        )
        self.rendered = Counter(
            "mlpower_figures_rendered_total", "Figures rendered (re-drawn) by mode", ("mode",), registry=self.registry
        )
        self.unchanged = Counter(
            "mlpower_figures_unchanged_total",
            "Figures skipped because their inputs did not change",
            ("mode",),
            registry=self.registry,
        )
        self.build_seconds = Histogram(
            "mlpower_figures_build_seconds",
            "Wall time of one rebuild job",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.jobs_in_progress = Gauge(
            "mlpower_figures_jobs_in_progress", "Rebuild jobs queued or running", registry=self.registry
        )
        self.run_figures = Counter(
            "mlpower_figures_run_figures_total", "Run figure sets rendered", registry=self.registry
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
