"""``mlpower lab run``: one measurement on a running lab, followed live, summarised, judged.

It starts the run through the director's HTTP API, shows the live line from the lab's bus (the
same ``Progress`` the demo folds), asks the director every few seconds whether it still answers
and how the run stands, and ends on one of:

* the run analyzed: the summary, where the run tree, ``compliance.json`` and the run figures are,
  and the verdict (``RunOutcome.passed`` says whether to exit with 0);
* the director ended the run failed or aborted: ``LabError`` with the director's reason (the
  ``RunStop`` document's, or the same reason from its status when the bus missed it);
* a service it waits on stopped answering: ``LabError`` naming the service and its address.

Every HTTP call goes through ``_call``, which turns a refusal or a vanished service into one line.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpower import topology
from mlpower.errors import MlpowerError
from mlpower.lab import credentials
from mlpower.lab.errors import LabError
from mlpower.lab.liveview import LiveView
from mlpower.lab.progress import Progress
from mlpower.lab.report import print_summary, write_report
from mlpower.lab.settings import LabSettings
from mlpower.lab.where import find_lab
from mlpower.schema import RunAnalyzed
from mlpower.settings import load_settings
from rich.console import Console

FIGURES_WAIT_S = 120.0  # run figures are drawn after the analysis; a slow machine takes a while
ANALYSIS_WAIT_S = 120.0  # after the director ended a run well, analytics has this long to publish its analysis


@dataclass(frozen=True)
class RunOutcome:
    analyzed: RunAnalyzed
    run_dir: str
    report_path: Path | None
    figures: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.analyzed.verdict == "pass"


def _call(service: str, url: str, *, body: dict[str, Any] | None = None, token: str = "",
          timeout_s: float = 10.0, missing_ok: bool = False) -> Any:
    """One request to a lab service; its refusal or its absence becomes a one-line ``LabError``."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        if missing_ok and exc.code == 404:
            return None
        raise LabError(f"the {service} refused {request.method} {url}: HTTP {exc.code} {_detail(exc)}") from None
    except (OSError, ValueError) as exc:  # refused, reset, timed out, or not JSON: it is not answering
        reason = getattr(exc, "reason", None) or exc
        raise LabError(f"the {service} at {url} does not answer ({reason}): is the lab up?") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    """The service's own words for a refusal (FastAPI's ``detail``), on one line."""
    text = exc.read(2000).decode(errors="replace").strip()
    try:
        detail = json.loads(text).get("detail", text)
    except (ValueError, AttributeError):
        detail = text
    if isinstance(detail, list):  # a validation error: each problem's message
        detail = "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
    return " ".join(str(detail).split())[:500]


def lab_settings(workdir: Path | None = None) -> tuple[LabSettings, Path | None]:
    """The lab's settings and its folder; the folder is looked for (``where``) unless the
    environment gives all that ``lab run`` needs from it (a token, as in the compose lab)."""
    overrides: dict[str, Any] = {"workdir": workdir} if workdir is not None else {}
    settings = load_settings(LabSettings, **overrides)
    if settings.api_token and workdir is None and "workdir" not in settings.model_fields_set:
        return settings, None
    return settings, find_lab(settings.workdir)


def _broker_url(settings: LabSettings, folder: Path | None) -> str:
    """The lab's own broker account when ``lab up`` made one, else ``AMQP_URL``."""
    if folder is not None:
        url = credentials.read_secret(credentials.secrets_folder(folder) / credentials.AMQP_URL_FILE)
        if url:
            return url
    return settings.amqp_url


class _Listener:
    """The lab's run documents and events, folded into ``progress``, on exclusive queues."""

    def __init__(self, url: str, lab: str, progress: Progress) -> None:
        from mlpower.rabbitmq import RabbitMQBus

        try:
            self.bus = RabbitMQBus(url, client_name="mlpower-lab-run", lab=lab)
            self.subscriptions = [
                self.bus.subscribe(topology.QueueSpec("", exchange, (pattern,), durable=False, exclusive=True),
                                   lambda message, _delivery: progress.update(message))
                for exchange, pattern in ((topology.RUNS_EXCHANGE, topology.runs_of_lab(lab)),
                                          (topology.EVENTS_EXCHANGE, f"*.{topology.segment(lab)}.*"))]
        except MlpowerError as exc:
            raise LabError(f"cannot follow the run on the lab's broker: {exc}") from None

    def close(self) -> None:
        for subscription in self.subscriptions:
            subscription.close()
        self.bus.close()


def lab_run(console: Console, *, workload: str = "builtin:offline", scenario: str = "Offline",
            timeout_s: float | None = None, poll_s: float = 2.0, workdir: Path | None = None) -> RunOutcome:
    settings, folder = lab_settings(workdir)
    token = settings.api_token
    if not token and folder is not None:
        token = credentials.read_secret(credentials.secrets_folder(folder) / credentials.TOKEN_FILE)
    timeout_s = timeout_s or settings.run_timeout_s
    progress = Progress()
    listener = _Listener(_broker_url(settings, folder), settings.lab, progress)  # before the run: miss nothing
    try:
        accepted = _call("director", f"{settings.director_url}/runs", token=token,
                         body={"workload": workload, "scenario": scenario, "benchmark": "resnet-numpy (built-in)"})
        run_id = accepted["run_id"]
        progress.follow(run_id)
        console.print(f"run {run_id} started via {accepted['via']}; results in {accepted['output_dir']}",
                      soft_wrap=True, highlight=False)
        watch = _Watch(settings, run_id, progress)
        try:
            # an analysis alone does not end the wait: it comes on the events queue and may overtake
            # the director's RunStop on the runs queue, and an aborted run gets analyzed too
            LiveView(console, progress).follow(
                lambda: (progress.analyzed is not None and (progress.stopped is not None or watch.ended_ok))
                or progress.failed or watch.failure is not None,
                timeout_s, f"run {run_id}", check=watch.check, check_every_s=poll_s)
        except KeyboardInterrupt:  # Ctrl-C stops the measurement, not only this view of it
            raise LabError(f"run {run_id} {_stop(settings, token, run_id)}: lab run was interrupted") from None
        except LabError as exc:  # given up waiting: a run left going would hold the lab's SUT and meter
            raise LabError(f"{exc}; run {run_id} {_stop(settings, token, run_id)}") from None
    finally:
        listener.close()
    # a run the director ended without success fails lab run, even when analytics analyzed what there was
    stop, analyzed = progress.stopped, progress.analyzed
    if progress.failed and stop is not None:
        raise LabError(_failed(run_id, stop.status, stop.reason))
    if watch.failure is not None:
        raise LabError(watch.failure)
    assert analyzed is not None
    return _conclude(console, settings, token, analyzed, accepted["output_dir"])


def _stop(settings: LabSettings, token: str, run_id: str) -> str:
    """Stop the run in the lab (the director ends its workload too); says how that went."""
    try:
        done = _call("director", f"{settings.director_url}/runs/{run_id}/stop", token=token, body={}, timeout_s=5)
    except LabError as exc:
        return f"may still be running (stopping it failed: {exc})"
    return "stopped" if done and done.get("stopped") else "had already ended"


def _failed(run_id: str, status: str, reason: str) -> str:
    return f"run {run_id} {status}: {reason or 'the director gave no reason'}"


class _Watch:
    """Every few seconds: does the director still answer, and has it ended the run without success?"""

    def __init__(self, settings: LabSettings, run_id: str, progress: Progress) -> None:
        self.settings, self.run_id, self.progress = settings, run_id, progress
        self.failure: str | None = None
        self.ended_ok = False  # the director said the run ended with success (the bus may not have)
        self.ended_at: float | None = None

    def check(self) -> None:
        status = _call("director", f"{self.settings.director_url}/runs/{self.run_id}", missing_ok=True) or {}
        if status.get("state") == "ended":
            if status.get("status") in ("failed", "aborted"):
                self.failure = _failed(self.run_id, status["status"], status.get("reason", ""))
                return
            # ended well: analytics has it, or will; ask it too, in case the bus missed its event
            self.ended_ok = True
            analyzed = _call("analytics", f"{self.settings.analytics_url}/runs/{self.run_id}", missing_ok=True)
            if analyzed is not None:
                self.progress.update(RunAnalyzed.model_validate(analyzed))
                return
            self.ended_at = self.ended_at or time.monotonic()
            if time.monotonic() - self.ended_at > ANALYSIS_WAIT_S:
                self.failure = (f"run {self.run_id} ended {ANALYSIS_WAIT_S:.0f} s ago and analytics at "
                                f"{self.settings.analytics_url} has not analyzed it: is the lab's broker up?")


def _conclude(console: Console, settings: LabSettings, token: str, analyzed: RunAnalyzed,
              run_dir: str) -> RunOutcome:
    report_path, not_written = _write_report_beside(analyzed, Path(run_dir))
    rebuild = _call("figures service", f"{settings.figures_url}/rebuild", token=token,
                    body={"figures": [], "mode": "paper"})
    job = _wait_figures_job(settings, rebuild["job_id"])
    run_figures = _run_figures(settings, analyzed.run_id)
    print_summary(console, analyzed, {
        "run tree": run_dir,
        "compliance report": report_path or f"{settings.analytics_url}/runs/{analyzed.run_id} ({not_written})",
        "run figures": [f"{settings.figures_url}{path}" for path in run_figures.values()] or ["(none rendered)"],
        "figures rebuilt": f"{len(job.get('rendered', []))} rendered, {len(job.get('unchanged', []))} unchanged "
                           f"({settings.figures_url}/figures)",
    })
    return RunOutcome(analyzed, run_dir, report_path, run_figures)


def _write_report_beside(analyzed: RunAnalyzed, run_dir: Path) -> tuple[Path | None, str]:
    """``compliance.json`` in the run tree when the tree is on this machine (a local or compose lab);
    else why not, and the analysis stays on the analytics service."""
    if not run_dir.is_dir():
        return None, "the run tree is not on this machine"
    try:
        return write_report(analyzed, run_dir / "compliance.json"), ""
    except OSError as exc:
        return None, f"not written into the run tree: {exc.strerror}"


def _wait_figures_job(settings: LabSettings, job_id: str) -> dict[str, Any]:
    url, deadline = f"{settings.figures_url}/jobs/{job_id}", time.monotonic() + FIGURES_WAIT_S
    while time.monotonic() < deadline:
        job = _call("figures service", url)
        if job.get("state") == "failed":
            raise LabError(f"figure rebuild failed: {job.get('error')}")
        if job.get("state") == "done":
            return dict(job)
        time.sleep(0.5)
    raise LabError(f"figure rebuild at {url} did not finish within {FIGURES_WAIT_S:.0f} s")


def _run_figures(settings: LabSettings, run_id: str) -> dict[str, str]:
    """The run's PNG figures on the figures service (drawn when the run was analyzed): kind -> path."""
    deadline = time.monotonic() + FIGURES_WAIT_S
    while time.monotonic() < deadline:
        listed = _call("figures service", f"{settings.figures_url}/runs/{run_id}/figures", missing_ok=True)
        if listed:
            return {kind: formats["png"] for kind, formats in listed.get("figures", {}).items() if "png" in formats}
        time.sleep(0.5)
    return {}
