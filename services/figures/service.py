"""The figures service: a queue of rebuild jobs, fed by the HTTP API, ``RebuildFigures`` commands
and ``RunAnalyzed`` events, run one at a time on a worker thread.

Jobs are serialised because they write into the same folders and the machine has few cores; a
job with nothing to re-render finishes in milliseconds (``build.build`` is incremental). Each
finished job is announced with a ``FiguresRebuilt`` event when a bus is attached. A run-analyzed
event also renders that run's own figures when its ``documents.jsonl`` is under the results folder.

Replicas: several figures services may share the results volume. Their events and commands come
from shared durable queues (each message to one replica), and a build holds its output folder's
lock (``build._folder_lock``), so a rebuild asked of two replicas at once is rendered by one; the
other finds the figures up to date.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpower import topology
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.errors import MlpowerError
from mlpower.figures import build, catalogue
from mlpower.figures.errors import FiguresError, NoRunDocuments
from mlpower.figures.metrics import FiguresMetrics
from mlpower.figures.runpaths import DOCUMENTS_FILE, run_folder
from mlpower.schema import FiguresRebuilt, Message, RebuildFigures, RunAnalyzed, RunSummary
from mlpower.timeutil import now_utc_s

log = logging.getLogger(__name__)

RUN_FIGURES_DIR = "runs"


@dataclass
class Job:
    id: str
    figures: tuple[str, ...]
    mode: str
    trigger: str
    state: str = "queued"  # queued -> running -> done | failed
    created_utc_s: float = field(default_factory=now_utc_s)
    finished_utc_s: float | None = None
    rendered: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    run_figures: dict[str, Any] | None = None
    error: str = ""
    seconds: float | None = None
    run_id: str = ""
    summary: RunSummary | None = None
    rebuild: bool = True  # False: only the run's own figures (an API request for one run)
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "state": self.state,
            "mode": self.mode,
            "figures": list(self.figures),
            "trigger": self.trigger,
            "rendered": self.rendered,
            "unchanged": self.unchanged,
            "run_id": self.run_id,
            "rebuild": self.rebuild,
            "run_figures": self.run_figures,
            "error": self.error,
            "seconds": self.seconds,
            "created_utc_s": self.created_utc_s,
            "finished_utc_s": self.finished_utc_s,
        }


class FiguresService:
    def __init__(
        self,
        data_dir: Path,
        out_root: Path,
        *,
        results_dir: Path | None = None,
        workers: int = 2,
        bus: Bus | None = None,
        lab: str = "lab",
        metrics: FiguresMetrics | None = None,
    ) -> None:
        self.data_dir, self.out_root = Path(data_dir), Path(out_root)
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.workers = workers
        self.bus = bus
        self.lab = lab
        self.metrics = metrics or FiguresMetrics()
        self.jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._submit_lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self._thread = threading.Thread(target=self._work, name="figures-jobs", daemon=True)
        self._thread.start()

    def mode_dir(self, mode: str) -> Path:
        return self.out_root / build.check_mode(mode)

    # ----------------------------------------------------------------- jobs

    def submit(
        self,
        figures: tuple[str, ...] | list[str] = (),
        mode: str = "paper",
        trigger: str = "api",
        run_id: str = "",
        summary: RunSummary | None = None,
    ) -> Job:
        build.check_mode(mode)
        names = tuple(e.name for e in catalogue.select(list(figures)))  # unknown names fail here, not later
        job = Job(uuid.uuid4().hex[:12], names if figures else (), mode, trigger, run_id=run_id, summary=summary)
        return self._enqueue(job)

    def submit_run(self, run_id: str, trigger: str = "api") -> Job:
        """Render one run's figures (trace, and placement when its analysis holds an efficiency).

        A request for a run that already waits in the queue gets that job: repeated requests
        cannot pile up renderings of the same run."""
        self.documents_of(run_id)  # refuse now, not in the worker, a run with nothing to draw
        with self._submit_lock:
            waiting = next(
                (j for j in self.jobs.values() if j.run_id == run_id and not j.rebuild and j.state == "queued"), None
            )
            if waiting is not None:
                return waiting
            return self._enqueue(Job(uuid.uuid4().hex[:12], (), "paper", trigger, run_id=run_id, rebuild=False))

    def _enqueue(self, job: Job) -> Job:
        self.jobs[job.id] = job
        self.metrics.jobs_in_progress.inc()
        self._queue.put(job)
        return job

    def runs_dir(self) -> Path:
        return self.out_root / RUN_FIGURES_DIR

    def run_figures_dir(self, run_id: str) -> Path:
        """Where a run's figures are, from its id alone (``runpaths`` refuses anything but a plain name)."""
        return run_folder(self.runs_dir(), run_id)

    def documents_of(self, run_id: str) -> Path:
        """The run's ``documents.jsonl`` under the results folder; ``NoRunDocuments`` when there is none."""
        if self.results_dir is None:
            raise NoRunDocuments("this figures service has no results folder (MLPOWER_RESULTS_DIR)")
        documents = run_folder(self.results_dir, run_id) / DOCUMENTS_FILE
        if not documents.is_file():
            raise NoRunDocuments(f"no {DOCUMENTS_FILE} for run {run_id} under the results folder")
        return documents

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._run(job)

    def _run(self, job: Job) -> None:
        job.state = "running"
        started = time.perf_counter()
        try:
            if job.rebuild:
                report = build.build(
                    self.mode_dir(job.mode),
                    self.data_dir,
                    mode=job.mode,
                    only=job.figures or None,
                    workers=self.workers,
                    job_id=job.id,
                )
                job.rendered, job.unchanged = report.rendered, report.unchanged
            if job.run_id:
                job.run_figures = self._run_figures(job.run_id, job.summary)
            job.state = "done"
            self.metrics.rendered.labels(job.mode).inc(len(job.rendered))
            self.metrics.unchanged.labels(job.mode).inc(len(job.unchanged))
        except MlpowerError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:  # a job's failure is reported on the job, and the worker carries on
            log.exception("figures job %s failed", job.id)
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        job.seconds = time.perf_counter() - started
        job.finished_utc_s = now_utc_s()
        self.metrics.build_seconds.observe(job.seconds)
        self.metrics.rebuilds.labels(job.trigger, job.state).inc()
        self.metrics.jobs_in_progress.dec()
        if job.state == "done":
            self._announce(job)
        job.done.set()

    def _run_figures(self, run_id: str, summary: RunSummary | None) -> dict[str, Any]:
        """The run's trace and placement figures. The run id comes from a message or a request: it
        only ever names a folder under the results folder and one under the run figures folder."""
        from mlpower.figures.runfigs import render_run_figures

        try:
            documents = self.documents_of(run_id)
            out_dir = self.run_figures_dir(run_id)
        except FiguresError as exc:
            return {"run_id": run_id, "files": [], "notes": [str(exc)]}
        written = render_run_figures(documents, out_dir, summary=summary, data_dir=self.data_dir)
        self.metrics.run_figures.inc()
        return written

    def _announce(self, job: Job) -> None:
        if self.bus is None:
            return
        event = FiguresRebuilt(
            job_id=job.id,
            rendered=tuple(job.rendered),
            unchanged=tuple(job.unchanged),
            mode=job.mode,
            t_utc_s=now_utc_s(),
        )
        try:
            self.bus.publish(event, topology.event_key(event, lab=self.lab))
        except MlpowerError:
            log.exception("could not publish figures_rebuilt for job %s", job.id)

    # ----------------------------------------------------------------- the bus

    def on_message(self, message: Message, delivery: Delivery) -> None:
        if isinstance(message, RunAnalyzed):
            self._on_run_analyzed(message)
        elif isinstance(message, RebuildFigures):
            self.submit(message.figures, message.mode, trigger="command")
        else:
            log.debug("figures ignores %s on %s", getattr(message, "type", "?"), delivery.routing_key)

    def _on_run_analyzed(self, message: RunAnalyzed) -> None:
        # RunAnalyzed comes at least once: an analytics replica that dies between publishing it and
        # acknowledging the run's documents leaves the run to the next replica, which publishes it again.
        # The rebuild it asks for is the same, so a second one is skipped unless the first failed.
        with self._submit_lock:
            earlier = next((j for j in self.jobs.values() if j.trigger == "run_analyzed"
                            and j.run_id == message.run_id and j.state != "failed"), None)
            if earlier is None:
                self.submit(mode="paper", trigger="run_analyzed", run_id=message.run_id, summary=message.summary)
                return
        log.info("run %s analysed again (a redelivery): figures job %s already serves it", message.run_id, earlier.id)

    @property
    def worker(self) -> threading.Thread:
        return self._thread

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions)

    def listen(self, instance: str = "default") -> None:
        """Consume run-analyzed events and rebuild commands (both queues are durable)."""
        if self.bus is None:
            raise MlpowerError("the figures service has no bus to listen on")
        events = topology.service_queue("figures", topology.EVENTS_EXCHANGE,
                                        (topology.event_pattern("run_analyzed", self.lab),), lab=self.lab)
        commands = topology.service_queue(
            "figures", topology.COMMANDS_EXCHANGE, (topology.command_key("figures", instance, lab=self.lab),),
            lab=self.lab,
        )
        self._subscriptions = [
            self.bus.subscribe(events, self.on_message),
            self.bus.subscribe(commands, self.on_message),
        ]

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions = []
        self._queue.put(None)
        self._thread.join(timeout=30)
