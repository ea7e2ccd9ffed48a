"""``/readyz``: whether a service can do its job now, not only whether its process answers.

``/healthz`` says the process serves HTTP (liveness: restart it when it does not). ``/readyz``
asks the service's own checks: its broker subscriptions are connected, its worker thread runs.
It answers 200 with every check's state when all pass and 503 naming the failed ones otherwise,
so a Kubernetes readiness probe takes a pod out of its Service during a broker outage without
restarting it, and a compose healthcheck waits for a service that really listens on the bus.

    add_readyz(app, {"broker": subscriptions_connected(lambda: service.subscriptions),
                     "worker": thread_alive(lambda: service.worker)})
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mlpower.bus import Subscription

log = logging.getLogger(__name__)

Check = Callable[[], bool]


def subscriptions_connected(subscriptions: Callable[[], Iterable[Subscription]]) -> Check:
    """True while the service consumes: at least one subscription, and every one connected."""
    def check() -> bool:
        current = list(subscriptions())
        return bool(current) and all(subscription.connected for subscription in current)
    return check


def thread_alive(thread: Callable[[], threading.Thread | None]) -> Check:
    def check() -> bool:
        current = thread()
        return current is not None and current.is_alive()
    return check


def evaluate(checks: Mapping[str, Check]) -> dict[str, bool]:
    """Each check's state; a check that raises counts as failed (a probe never fails by itself)."""
    states = {}
    for name, check in checks.items():
        try:
            states[name] = bool(check())
        except Exception as exc:  # the reason goes to the log, never to the answer
            log.warning("readiness check %s failed: %s", name, exc)
            states[name] = False
    return states


def add_readyz(app: FastAPI, checks: Mapping[str, Check]) -> None:
    @app.get("/readyz", responses={503: {"description": "a check failed; the body names it"}})
    def readyz() -> JSONResponse:
        states = evaluate(checks)
        ready = all(states.values())
        body = {"status": "ready" if ready else "not ready", "checks": states}
        return JSONResponse(body, status_code=200 if ready else 503)
