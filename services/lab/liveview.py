"""One live line for a measurement in progress, the same for ``mlpower demo`` and ``mlpower lab run``.

On a terminal the line is redrawn in place as updates arrive; elsewhere (a log, a pipe, a
container's output) it is printed when the phase or the workload changes, and every few
seconds while samples come in, so a log shows the run moving without a line per sample.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from mlpower.lab.errors import LabError
from mlpower.lab.progress import Progress
from rich.console import Console
from rich.live import Live

REDRAW_S = 0.25  # how often the elapsed time and the deadline are looked at without news
LOG_EVERY_S = 5.0  # off a terminal: a line at most this often while only the numbers move


class LiveView:
    def __init__(self, console: Console, progress: Progress) -> None:
        self.console, self.progress = console, progress
        self._printed_state: tuple[str, str] | None = None
        self._printed_at = 0.0
        self._printed_line = ""

    def follow(self, done: Callable[[], bool], timeout_s: float, what: str,
               check: Callable[[], None] | None = None, check_every_s: float = 2.0) -> None:
        """Show the line until ``done()``; ``check`` (called every ``check_every_s``) raises when what we
        wait on has gone away. Raises ``LabError`` after ``timeout_s``."""
        progress, start = self.progress, time.monotonic()
        deadline, next_check, seen = start + timeout_s, start + check_every_s, -1
        live = Live(progress.line(), console=self.console, refresh_per_second=4, transient=False) \
            if self.console.is_terminal else None
        with live if live is not None else contextlib.nullcontext():
            while not done():
                now = time.monotonic()
                if now > deadline:
                    raise LabError(f"{what} not done within {timeout_s:.0f} s (last phase: {progress.phase})")
                if check is not None and now >= next_check:
                    check()
                    next_check = now + check_every_s
                seen = progress.wait_change(seen, REDRAW_S)
                self._show(live)
            self._show(live, final=True)

    def _show(self, live: Live | None, final: bool = False) -> None:
        line = self.progress.line()
        if live is not None:
            live.update(line)
            return
        state, now = (self.progress.phase, self.progress.workload), time.monotonic()
        if line == self._printed_line:
            return
        if final or state != self._printed_state or now - self._printed_at >= LOG_EVERY_S:
            self.console.print(line, highlight=False)
            self._printed_state, self._printed_at, self._printed_line = state, now, line
