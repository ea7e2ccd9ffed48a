"""The analytics service on the bus: live findings while a run is in progress, ``RunAnalyzed``
when it stops, and the tidy table of all runs.

A run's verdict is ``rules.evaluate`` over its ``RunView`` (the run's output folder with its
``documents.jsonl``, else the documents as they arrived): exactly what ``mlpower check`` computes
for that folder. Live findings are early warnings published as ``LiveFinding`` and served by the
API; the verdict is the rules' over the whole run.

Consumes the run documents of its lab from the run shards (``mlpower.<lab>.analytics.runs.sNN``,
see ``topology``) and the events exchange (``mlpower.<lab>.analytics.events``: ``WorkloadPhase`` whose
detail states the agent's clock offset). Documents are handled idempotently by (run_id, seq); a run's
``run.stop`` (the one end-of-run fact, naming the output folder) triggers its analysis.

Replicas: several analytics processes share a lab's runs through the shards, each shard delivered
to one of them at a time. A run's documents stay unacknowledged until the run is analysed, so a
replica that dies mid-run leaves the whole run, from ``run.start``, to the replica the broker
makes the shard's next consumer, which analyses it once. Replica ``i`` of ``n`` consumes its own
shards (``shard % n == i``) at once and stands by on the others after ``standby_s``, so replicas
started together split the shards evenly and a missing one's shards are still served.
``RunAnalyzed`` comes at least once: one published just before its replica died is published
again by the next (the same verdict from the same documents). Its consumers take that into
account: figures skip a repeat (``FiguresService._on_run_analyzed``), ``lab run`` takes the first.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlpower import topology
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.errors import InputError, MlpowerError
from mlpower.runview import RunView
from mlpower.schema import (
    Finding,
    LiveFinding,
    Message,
    RunAnalyzed,
    RunDocument,
    RunStart,
    RunStop,
    WorkloadPhase,
)
from mlpower.timeutil import now_utc_s

from .check import load_sources_checksums
from .errors import AnalyticsError
from .findings import CheckOptions, verdict_of
from .live import LiveChecker
from .metrics import AnalyticsMetrics
from .rules import evaluate
from .sample_checks import clock_offset_in
from .settings import AnalyticsSettings
from .store import RunStore
from .summary import summarize

log = logging.getLogger(__name__)

EVENTS = ("workload_phase",)


def lab_events_queue(lab: str) -> topology.QueueSpec:
    """``mlpower.<lab>.analytics.events``: this lab's workload-phase events only."""
    return topology.service_queue("analytics", topology.EVENTS_EXCHANGE,
                                  tuple(topology.event_pattern(name, lab) for name in EVENTS), lab=lab)


KEEP_FINISHED_RUNS = 32  # documents of recent runs, so that a redelivered run.stop finds them


def stream_view(live: LiveChecker) -> RunView:
    """A run as its documents show it, for its verdict: ``RunView.from_documents`` of the documents in
    ``seq`` order. When they arrived in that order (a shard delivers a run's documents in order) the live
    view is that very view, with the samples already in arrays and the closed window's coverage already
    computed by the live rules at ``power_end``; otherwise it is built again."""
    view = live.view
    if view.in_seq_order:
        return view
    return RunView.from_documents([view.documents[k] for k in sorted(view.documents)], live.run_id)


@dataclass
class _Run:
    run_id: str
    live: LiveChecker
    lab: str = ""
    sut: str = ""
    analyzed: bool = False
    unsettled: list[Callable[[], None]] = field(default_factory=list)  # acks of the run's documents


class AnalyticsService:
    def __init__(self, settings: AnalyticsSettings, bus: Bus, *, store: RunStore | None = None,
                 metrics: AnalyticsMetrics | None = None, runs_queue: topology.QueueSpec | None = None,
                 events_queue: topology.QueueSpec | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.store = store or RunStore(settings.table_path)
        self.metrics = metrics or AnalyticsMetrics()
        checksums = load_sources_checksums(settings.sources_checksums) if settings.sources_checksums else None
        self.options = CheckOptions(sources_checksums=checksums, min_duration_s=settings.min_duration_s)
        self._lock = threading.RLock()
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self._subscriptions: list[Subscription] = []
        self._stopping = threading.Event()
        self._standby: threading.Thread | None = None
        # Tests pass their own (exclusive) queue instead of the shards; labs sharing a broker are
        # apart by the lab's name in every queue and binding.
        self.runs_queues = (runs_queue,) if runs_queue is not None else topology.run_shard_queues("analytics",
                                                                                                   settings.lab)
        self.events_queue = events_queue or lab_events_queue(settings.lab)

    # ----------------------------------------------------------------------- wiring
    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions)

    def own_shard(self, index: int) -> bool:
        return len(self.runs_queues) == 1 or index % self.settings.replicas == self.settings.replica

    def start(self) -> None:
        own = [q for i, q in enumerate(self.runs_queues) if self.own_shard(i)]
        others = [q for i, q in enumerate(self.runs_queues) if not self.own_shard(i)]
        for spec in own:
            self._subscriptions.append(self.bus.subscribe(spec, self._on_document))
        self._subscriptions.append(self.bus.subscribe(self.events_queue, self._on_event))
        if others:
            self._standby = threading.Thread(target=self._stand_by, args=(others,), name="analytics-standby",
                                             daemon=True)
            self._standby.start()

    def _stand_by(self, specs: list[topology.QueueSpec]) -> None:
        """Join the other replicas' shards as a standby consumer (active only while their owner is away)."""
        if self._stopping.wait(self.settings.standby_s):
            return
        for spec in specs:
            if self._stopping.is_set():
                return
            self._subscriptions.append(self.bus.subscribe(spec, self._on_document))

    def stop(self) -> None:
        self._stopping.set()
        if self._standby is not None:
            self._standby.join(timeout=30)
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()

    def _on_document(self, message: Message, delivery: Delivery) -> None:
        if isinstance(message, RunDocument):
            self.handle_document(message, delivery.settle)
        else:
            delivery.settle()

    def _on_event(self, message: Message, delivery: Delivery) -> None:
        if isinstance(message, WorkloadPhase):
            offset = clock_offset_in(message.detail)
            if offset is not None:
                with self._lock:
                    run = self._run(message.run_id)
                    run.sut = run.sut or message.sut
                    found = run.live.clock_offset(offset, f"agent {message.state} event")
                self._publish_live(run, found)

    # ----------------------------------------------------------------------- runs
    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run(run_id, LiveChecker(run_id, options=self.options,
                                                                every_s=self.settings.live_every_s))
            finished = [r for r in self._runs.values() if r.analyzed]
            for old in finished[:max(0, len(finished) - KEEP_FINISHED_RUNS)]:
                del self._runs[old.run_id]
        return run

    def handle_document(self, document: RunDocument, settle: Callable[[], None] = lambda: None) -> None:
        """Take one document; ``settle`` acknowledges it, called once the run is analysed."""
        with self._lock:
            run = self._run(document.run_id)
            if run.analyzed and not isinstance(document, RunStop):
                settle()
                return
            run.unsettled.append(settle)
            if document.seq in run.live.view.documents:
                return  # a redelivery: already handled
            self.metrics.documents.inc()
            if isinstance(document, RunStart):
                run.lab, run.sut = document.lab, document.sut
                self.metrics.known_sut(document.sut)
            found = run.live.feed(document)
        self._publish_live(run, found)
        if isinstance(document, RunStop):
            if run.live.view.start is None and not document.output_dir:
                # refused before it started: nothing was measured, so there is nothing to analyse
                log.info("run %s ended before it started: %s", run.run_id, document.reason)
                with self._lock:
                    run.analyzed = True
            else:
                self.analyze(run.run_id, Path(document.output_dir) if document.output_dir else None)
            with self._lock:
                unsettled, run.unsettled = run.unsettled, []
            for done in unsettled:
                done()

    def _publish_live(self, run: _Run, findings: list[Finding]) -> None:
        for finding in findings:
            self.metrics.live_findings.labels(sut=run.sut, rule=finding.rule, severity=finding.severity).inc()
            message = LiveFinding(run_id=run.run_id, sut=run.sut, finding=finding, t_utc_s=now_utc_s())
            self.bus.publish(message, topology.event_key(message, lab=run.lab or self.settings.lab))

    def analyze(self, run_id: str, folder: Path | None = None) -> RunAnalyzed:
        """Summary + findings + verdict of one run, published and stored."""
        with self._lock:
            run = self._run(run_id)
            documents = [run.live.view.documents[k] for k in sorted(run.live.view.documents)]
        view = None
        if folder is not None and folder.is_dir():
            try:
                view = RunView.read(folder, documents)
            except InputError as exc:
                log.warning("run %s: output folder unusable: %s", run_id, exc)
        if view is None:
            if not documents:
                raise AnalyticsError(f"run {run_id}: no documents and no output folder to analyse")
            # no other thread adds to this run's view now: its documents come from one shard, one at a time
            view = stream_view(run.live)
        findings = tuple(evaluate(view, self.options))
        message = RunAnalyzed(run_id=run_id, lab=run.lab, sut=run.sut, summary=summarize(view), findings=findings,
                              verdict=verdict_of(findings), t_utc_s=now_utc_s())
        with self._lock:
            run.analyzed = True
        self.store.put(message)
        self.metrics.runs_analyzed.labels(verdict=message.verdict).inc()
        self.metrics.analyzed(run.sut, message.summary)
        self.bus.publish(message, topology.event_key(message, lab=run.lab or self.settings.lab))
        log.info("run %s analysed: %s, %s W", run_id, message.verdict, message.summary.avg_power_w)
        return message

    def count_dead_letters(self) -> int | None:
        """Put the depth of this lab's dead-letter queue on the gauge (NaN when the broker cannot say)."""
        gauge = self.metrics.dead_letters.labels(lab=self.settings.lab)
        try:
            depth = self.bus.dead_letter_depth()
        except MlpowerError as exc:
            log.warning("cannot count the dead letters: %s", exc)
            gauge.set(float("nan"))
            return None
        gauge.set(depth)
        return depth

    def live_findings(self, run_id: str) -> list[Finding] | None:
        with self._lock:
            run = self._runs.get(run_id)
            return list(run.live.findings) if run is not None else None
