"""Launching PTDaemon as power-dev does (power-dev-protocol.md §3.2): its command line, and the
child process with its console (stdout + stderr merged) copied to a file as it is printed."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .errors import AnalyzerError


def default_ptd_command() -> list[str]:
    """Our PTDaemon emulator, ``mlpower ptd``, run with this interpreter."""
    return [sys.executable, "-m", "mlpower", "ptd"]


def build_ptd_argv(
    ptd_command: str | Sequence[str],
    *,
    log_path: str | os.PathLike[str],
    port: int,
    device_type: int,
    device_port: str,
    interface_flag: str = "",
    gpib_board: int | None = None,
    channel: Sequence[int] | None = None,
    dc_flag: str | None = None,
) -> list[str]:
    """``<ptd> -l <log> -p <port> [-b n] [-c a[,b]] [<dcFlag>] [<interfaceFlag>] <deviceType> <devicePort>`` (§3.2)."""
    argv = shlex.split(ptd_command) if isinstance(ptd_command, str) else list(ptd_command)
    if not argv:
        raise AnalyzerError("empty PTDaemon command")
    argv += ["-l", str(log_path), "-p", str(int(port))]
    if gpib_board is not None:
        argv += ["-b", str(int(gpib_board))]
    if channel:
        argv += ["-c", ",".join(str(int(c)) for c in channel)]
    if dc_flag:
        argv.append(dc_flag)
    if interface_flag:
        argv.append(interface_flag)
    argv += [str(int(device_type)), str(device_port)]
    return argv


def port_accepts(host: str, port: int, timeout_s: float = 0.1) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        return s.connect_ex((host, port)) == 0

class PtdProcess:
    """A PTDaemon child: TZ=UTC, stdout+stderr merged and copied (flushed) to a console file."""

    def __init__(self, argv: list[str], *, console_path: str | os.PathLike[str] | None = None) -> None:
        self.argv = argv
        self.console_path = Path(console_path) if console_path else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._console = bytearray()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        env = {**os.environ, "TZ": "UTC"}
        try:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
            )
        except OSError as exc:
            raise AnalyzerError(f"cannot start PTDaemon {self.argv[0]!r}: {exc}") from exc
        self._reader = threading.Thread(target=self._copy, name="ptd-console", daemon=True)
        self._reader.start()

    def _copy(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        out = self.console_path.open("ab", buffering=0) if self.console_path else None
        try:
            for chunk in iter(lambda: self._proc.stdout.read1(65536), b""):  # type: ignore[union-attr, attr-defined]
                with self._lock:
                    self._console += chunk
                if out is not None:
                    out.write(chunk)
        finally:
            if out is not None:
                out.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def exited_within(self, timeout_s: float) -> bool:
        """Whether the child has exited, waiting up to ``timeout_s`` (its sockets close a moment
        before it can be reaped, so a closed connection is followed by a short wait)."""
        if self._proc is None:
            return False
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def console_text(self) -> str:
        with self._lock:
            return self._console.decode("utf-8", errors="replace")

    def terminate(self, timeout_s: float = 10.0) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._reader is not None:
            self._reader.join(5)
