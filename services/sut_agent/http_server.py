"""Serve the agent's HTTP app from a background thread (the main thread owns the signals).

The listening socket is bound here, before uvicorn starts, so a busy port fails at once with
``AgentError`` and port 0 yields the real port (tests) without racing uvicorn's start-up.
"""

from __future__ import annotations

import socket
import threading
import time

from mlpower.sut_agent.errors import AgentError


class HttpServer:
    def __init__(self, app: object, host: str, port: int, log_level: str = "warning") -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise AgentError(f"the agent's HTTP app cannot listen on {host}:{port}: {exc}") from exc
        self._sock.listen(64)
        self.host, self.port = host, int(self._sock.getsockname()[1])
        # uvicorn installs signal handlers only from the main thread; in this thread it installs none.
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level.lower(), lifespan="off"))  # type: ignore[arg-type]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="agent-http", daemon=True)

    def start(self, timeout_s: float = 10.0) -> HttpServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise AgentError(f"the agent's HTTP app did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
