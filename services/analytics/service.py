"""The analytics service on the bus: live findings while a run is in progress, ``RunAnalyzed``
when it stops, and the tidy table of all runs.

Consumes the run documents (``mlpower.analytics.runs``) and the events exchange
(``mlpower.analytics.events``: ``RunCompleted``, and ``WorkloadPhase`` whose detail states the
agent's clock offset). Documents are handled idempotently by (run_id, seq).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from mlpower import topology
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.schema import (
    Finding,
    LiveFinding,
    Message,
    PhaseMark,
    RunAnalyzed,
    RunCompleted,
    RunDocument,
    RunStart,
    RunStop,
    WorkloadPhase,
)
from mlpower.timeutil import now_utc_s

from .check import check_tree, load_sources_checksums, verdict_of
from .errors import AnalyticsError
from .live import LiveChecker, clock_offset_in
from .loadgen import DetailLog, read_detail, read_summary
from .metrics import AnalyticsMetrics
from .rules import RULES_BY_ID, CheckOptions, run_rule
from .run_tree import read_tree
from .settings import AnalyticsSettings
from .store import RunStore
from .summary import analyze_documents, analyze_tree, duration_finding, stream_findings

log = logging.getLogger(__name__)

RUNS_QUEUE = topology.service_queue("analytics", topology.RUNS_EXCHANGE)
EVENTS_QUEUE = topology.service_queue("analytics", topology.EVENTS_EXCHANGE, ("run_completed.#", "workload_phase.#"))
SERVER_SIDE_RULES = ("ptd_messages", "ptd_config", "debug_disabled")  # need only power/server.json
KEEP_FINISHED_RUNS = 32  # documents of recent runs, for a re-analysis when RunCompleted brings the tree


def loadgen_logs_from_marks(documents: list[RunDocument]) -> tuple[DetailLog | None, dict[str, str] | None]:
    """In bus mode the agent's ``power_end`` event names its LoadGen detail log (the director keeps
    it as the mark's detail); where that file is reachable, performance comes from it."""
    for mark in reversed(documents):
        if (isinstance(mark, PhaseMark) and mark.name == "power_end" and mark.mode in ("testing", None)
                and mark.detail.endswith("mlperf_log_detail.txt")):
            path = Path(mark.detail)
            try:
                detail = read_detail(path)
                summary_path = path.with_name("mlperf_log_summary.txt")
                return detail, read_summary(summary_path) if summary_path.is_file() else None
            except AnalyticsError as exc:
                log.info("LoadGen log named by run %s is not readable here: %s", mark.run_id, exc)
                return None, None
    return None, None


@dataclass
class _Run:
    run_id: str
    lab: str = ""
    sut: str = ""
    documents: dict[int, RunDocument] = field(default_factory=dict)
    live: LiveChecker | None = None
    analyzed_with_tree: bool = False
    analyzed: bool = False


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
        # Tests and labs sharing a broker pass their own (exclusive, lab-scoped) queues.
        self.runs_queue = runs_queue or RUNS_QUEUE
        self.events_queue = events_queue or EVENTS_QUEUE

    # ----------------------------------------------------------------------- wiring
    def start(self) -> None:
        self._subscriptions.append(self.bus.subscribe(self.runs_queue, self._on_document))
        self._subscriptions.append(self.bus.subscribe(self.events_queue, self._on_event))

    def stop(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()

    def _on_document(self, message: Message, delivery: Delivery) -> None:
        if isinstance(message, RunDocument):
            self.handle_document(message)

    def _on_event(self, message: Message, delivery: Delivery) -> None:
        if isinstance(message, RunCompleted):
            self.handle_completed(message)
        elif isinstance(message, WorkloadPhase):
            offset = clock_offset_in(message.detail)
            if offset is not None:
                with self._lock:
                    run = self._run(message.run_id)
                    run.sut = run.sut or message.sut
                    found = run.live.clock_offset(offset, f"agent {message.state} event")  # type: ignore[union-attr]
                self._publish_live(run, found)

    # ----------------------------------------------------------------------- runs
    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run(run_id, live=LiveChecker(run_id))
            finished = [r for r in self._runs.values() if r.analyzed]
            for old in finished[:max(0, len(finished) - KEEP_FINISHED_RUNS)]:
                del self._runs[old.run_id]
        return run

    def handle_document(self, document: RunDocument) -> None:
        with self._lock:
            run = self._run(document.run_id)
            if document.seq in run.documents:
                return  # a redelivery: already handled
            run.documents[document.seq] = document
            self.metrics.documents.inc()
            if isinstance(document, RunStart):
                run.lab, run.sut = document.lab, document.sut
                self.metrics.known_sut(document.sut)
            found = run.live.feed(document)  # type: ignore[union-attr]
        self._publish_live(run, found)
        if isinstance(document, RunStop):
            self.analyze(run.run_id, Path(document.output_dir) if document.output_dir else None)

    def handle_completed(self, event: RunCompleted) -> None:
        with self._lock:
            run = self._run(event.run_id)
            run.lab, run.sut = run.lab or event.lab, run.sut or event.sut
            if run.analyzed_with_tree:
                return
        folder = Path(event.output_dir) if event.output_dir else None
        if run.analyzed and (folder is None or not folder.is_dir()):
            return
        self.analyze(event.run_id, folder)

    def _publish_live(self, run: _Run, findings: list[Finding]) -> None:
        for finding in findings:
            self.metrics.live_findings.labels(sut=run.sut, rule=finding.rule, severity=finding.severity).inc()
            message = LiveFinding(run_id=run.run_id, sut=run.sut, finding=finding, t_utc_s=now_utc_s())
            self.bus.publish(message, topology.event_key(message, lab=run.lab))

    def analyze(self, run_id: str, folder: Path | None = None) -> RunAnalyzed:
        """Summary + findings + verdict of one run, published and stored."""
        with self._lock:
            run = self._run(run_id)
            documents = [run.documents[k] for k in sorted(run.documents)]
            live_findings = list(run.live.findings) if run.live else []
        tree = None
        if folder is not None and folder.is_dir():
            try:
                tree = read_tree(folder)
            except AnalyticsError as exc:
                log.warning("run %s: output folder unusable: %s", run_id, exc)
        if not documents and tree is not None and tree.documents:
            documents = tree.documents
        findings: list[Finding] = list(live_findings)
        detail: DetailLog | None = None
        if documents:
            testing = tree.testing if tree is not None else None
            detail, loadgen_summary = (testing.detail, testing.summary) if testing is not None else (None, None)
            if detail is None:
                detail, loadgen_summary = loadgen_logs_from_marks(documents)
            analysis = analyze_documents(documents, detail=detail, summary=loadgen_summary)
        elif tree is not None:
            analysis = analyze_tree(tree)
        else:
            raise AnalyticsError(f"run {run_id}: no documents and no output folder to analyse")
        findings += analysis.findings
        if tree is not None and tree.client is not None:
            # A complete client+server tree: the full compliance check applies.
            findings += [f for f in check_tree(tree, self.options).findings]
        else:
            # The director's own folder (bus mode) or no folder: what the stream and server.json show.
            findings += stream_findings(documents, detail=detail) if documents else []
            duration = duration_finding(analysis.summary, self.options.min_duration_s)
            findings += [duration] if duration else []
            if tree is not None and tree.server is not None:
                findings += [run_rule(RULES_BY_ID[rule], tree, self.options) for rule in SERVER_SIDE_RULES]
        message = RunAnalyzed(run_id=run_id, lab=run.lab, sut=run.sut, summary=analysis.summary,
                              findings=tuple(findings), verdict=verdict_of(findings), t_utc_s=now_utc_s())
        with self._lock:
            run.analyzed = True
            run.analyzed_with_tree = run.analyzed_with_tree or tree is not None
        self.store.put(message)
        self.metrics.runs_analyzed.labels(verdict=message.verdict).inc()
        self.bus.publish(message, topology.event_key(message))
        log.info("run %s analysed: %s, %s W", run_id, message.verdict, message.summary.avg_power_w)
        return message

    def live_findings(self, run_id: str) -> list[Finding] | None:
        with self._lock:
            run = self._runs.get(run_id)
            return list(run.live.findings) if run is not None and run.live is not None else None
