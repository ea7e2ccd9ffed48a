"""Prometheus metrics of the SUT agent, on a per-instance registry.

``mlpower_clock_offset_seconds{sut}`` is the name ecosystem.md §1.3 gives the director <-> SUT
offset (remote minus local, so positive means the director's clock is ahead); the alert
``MlpowerClockOffsetHigh`` reads it. It is set each time the agent measures the offset (before
each phase in bus mode when the director's power-dev server is known, and in client mode).
"""

from __future__ import annotations

import threading

from mlpower.schema import WorkloadPhase
from mlpower.sut_agent.clock import ClockOffset
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# "idle" before the first phase; the rest are WorkloadPhase states (CONTRIBUTING.md, contracts).
PHASE_STATES = ("idle", "started", "power_begin", "power_end", "finished", "failed")
ENDED = ("finished", "failed")


class AgentMetrics:
    def __init__(self, sut: str = "sut") -> None:
        self.sut = sut
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.clock_offset = Gauge("mlpower_clock_offset_seconds",
                                  "director <-> SUT clock offset, director minus SUT (latest measurement)",
                                  ["sut"], registry=r)
        self.clock_round_trip = Gauge("mlpower_agent_clock_round_trip_seconds",
                                      "round trip of the best offset probe (the offset's error is at most half)",
                                      ["sut"], registry=r)
        self.phase_state = Enum("mlpower_agent_workload_phase", "state of the current (or last) workload phase",
                                ["sut"], states=list(PHASE_STATES), registry=r)
        self.phases = Counter("mlpower_agent_phases", "workload phases run to their end (finished or failed)",
                              ["sut", "mode"], registry=r)
        self.phases_failed = Counter("mlpower_agent_phases_failed", "workload phases that failed",
                                     ["sut", "mode"], registry=r)
        self.phase_state.labels(sut).state("idle")
        self._lock = threading.Lock()
        self.last_offset: ClockOffset | None = None
        self.last_event: WorkloadPhase | None = None

    def observe_offset(self, offset: ClockOffset) -> None:
        with self._lock:
            self.last_offset = offset
            self.clock_offset.labels(self.sut).set(offset.offset_s)
            self.clock_round_trip.labels(self.sut).set(offset.round_trip_s)

    def observe_phase(self, event: WorkloadPhase) -> None:
        with self._lock:
            self.last_event = event
            self.phase_state.labels(self.sut).state(event.state)
            if event.state in ENDED:
                self.phases.labels(self.sut, event.mode or "").inc()
                if event.state == "failed":
                    self.phases_failed.labels(self.sut, event.mode or "").inc()

    def status(self) -> dict[str, object]:
        """What ``/status`` shows: the latest phase event and clock offset."""
        with self._lock:
            event, offset = self.last_event, self.last_offset
        return {
            "sut": self.sut,
            "phase": None if event is None else {"run_id": event.run_id, "mode": event.mode, "state": event.state,
                                                 "t_utc_s": event.t_utc_s},
            "clock_offset": None if offset is None else offset.as_dict(),
        }

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
