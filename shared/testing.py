"""Test support the suites share: a fake clock, a fake analyzer source, a loopback SCPI transport
that asserts its transcript, bus helpers, a service run as a process, and the one ``wait_for``.

Tests wait on conditions, not on the wall clock: ``wait_for(lambda: ...)`` polls until the
condition holds (or fails the test, naming what it waited for), ``Inbox.next`` waits for the
message a test expects, and code that sleeps takes a ``Clock``, which ``FakeClock`` makes instant.

Nothing here imports a service: a service's own types (its reading record, its errors) are given
to a fake by a small subclass in that service's tests.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from mlpower import topology
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.schema import Message, SampleFlag, SourceInfo

T = TypeVar("T")

WAIT_POLL_S = 0.01


def wait_for(condition: Callable[[], T], timeout_s: float = 10.0, *, what: str = "",
             poll_s: float = WAIT_POLL_S) -> T:
    """Poll ``condition`` (every ``poll_s``) until it returns something true and return that; after
    ``timeout_s`` the test fails with ``what`` it waited for. The timeout bounds a broken run; it is
    not a pace."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout_s:g} s waiting for {what or condition}")
        time.sleep(poll_s)


# --------------------------------------------------------------------------- time


class FakeClock:
    """A ``mlpower.timeutil.Clock`` whose time moves only when code waits on it or the test advances
    it: a ten-second sleep returns at once, ten (fake) seconds later. ``waits`` records each sleep."""

    def __init__(self, start_utc_s: float = 1_800_000_000.0) -> None:
        self._lock = threading.Lock()
        self._utc_s = start_utc_s
        self._monotonic_s = 0.0
        self.waits: list[float] = []

    def now_utc_s(self) -> float:
        with self._lock:
            return self._utc_s

    def monotonic_s(self) -> float:
        with self._lock:
            return self._monotonic_s

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._utc_s += max(0.0, seconds)
            self._monotonic_s += max(0.0, seconds)

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        if event.is_set():
            return True
        with self._lock:
            self.waits.append(timeout_s)
        self.advance(timeout_s)
        return event.is_set()


# --------------------------------------------------------------------------- analyzers


class FakeAnalyzer:
    """An analyzer source in memory: sample ``n`` is ``power_fn(n)`` watts at ``volts`` (None: a
    missing value), samples in ``overrange_at`` are flagged overrange; every call is recorded in
    ``calls``. ``lost.set()`` makes it vanish; ``refuse_ranges`` makes fixed ranges fail.

    A service's tests subclass it with their reading type (built from ``t_utc_s, power_w,
    voltage_v, current_a, power_factor, voltage_range_v, current_range_a, uncertainty_w, flags``)
    and the errors its sources raise. ``update_s`` is the fake meter's update period: each read
    waits that long (real time), as a real meter blocks until its next update."""

    reading_type: ClassVar[Callable[..., Any]]
    lost_error: ClassVar[type[Exception]] = ConnectionError
    range_error: ClassVar[type[Exception]] = ValueError

    def __init__(self, power_fn: Callable[[int], float | None] = lambda n: 100.0 + n, *, volts: float = 230.0,
                 min_interval_s: float = 0.1, model: str = "WT310E", kind: str = "wt310e",
                 overrange_at: frozenset[int] = frozenset(), clock: Any = None, update_s: float = 0.0) -> None:
        self.info = SourceInfo(kind=kind, model=model, address="fake://1", tier="informative")
        self.min_interval_s = min_interval_s
        self.power_fn, self.volts, self.overrange_at = power_fn, volts, overrange_at
        self.clock, self.update_s = clock, update_s
        self.calls: list[tuple[Any, ...]] = []
        self.n = 0
        self.ranges: tuple[float | None, float | None] = (None, None)
        self.lost = threading.Event()
        self.refuse_ranges = False
        self.is_open = False

    def open(self) -> None:
        self.calls.append(("open",))
        self.is_open = True

    def identify(self) -> str:
        self.calls.append(("identify",))
        return "YOKOGAWA,WT310E,C2PH13047V,F1.03"

    def set_ranges(self, voltage_range_v: float | None, current_range_a: float | None) -> None:
        self.calls.append(("set_ranges", voltage_range_v, current_range_a))
        if self.refuse_ranges and voltage_range_v is not None:
            raise self.range_error(f"no such range {voltage_range_v}")
        self.ranges = (voltage_range_v, current_range_a)

    def start(self, mark: str) -> None:
        self.calls.append(("start", mark))

    def read_sample(self) -> Any:
        if self.update_s:
            self.lost.wait(self.update_s)  # the meter's next update (cut short when it vanishes)
        if self.lost.is_set():
            raise self.lost_error("connection closed by the analyzer")
        n, self.n = self.n, self.n + 1
        t_utc_s = self.clock.now_utc_s() if self.clock is not None else time.time()
        power = self.power_fn(n)
        flags = 0 if self.ranges[0] is not None else int(SampleFlag.AUTO_RANGE)
        volts_range, amps_range = self.ranges
        if power is None:
            return self.reading_type(t_utc_s, None, self.volts, None, None, volts_range, amps_range, None,
                                     flags | SampleFlag.MISSING)
        if n in self.overrange_at:
            flags |= SampleFlag.OVERRANGE
        uncertainty = None if volts_range is None else 0.001 * power + 0.05
        return self.reading_type(t_utc_s, power, self.volts, power / self.volts, 1.0, volts_range, amps_range,
                                 uncertainty, flags)

    def stop(self) -> None:
        self.calls.append(("stop",))

    def close(self) -> None:
        self.calls.append(("close",))
        self.is_open = False


class ScpiTranscript:
    """A loopback line transport for an instrument driver that asserts the exchange.

    ``transcript`` lists ``(command, reply)`` in order: each ``write`` must be the next command
    (an ``AssertionError`` names the first difference), and a read returns that command's reply
    (None: the command has none; an exception instance: raised instead, e.g. a timeout).
    ``history`` keeps ``(t, ">"|"<", text)`` as the real transports do; ``finished`` says whether
    the whole transcript was used."""

    def __init__(self, transcript: Sequence[tuple[str, str | Exception | None]], *,
                 address: str = "loopback::transcript", timeout_s: float = 2.0) -> None:
        self.address, self.timeout_s = address, timeout_s
        self._expected = collections.deque(transcript)
        self._replies: collections.deque[str | Exception] = collections.deque()
        self.history: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=200)
        self.is_open = False

    @property
    def finished(self) -> bool:
        return not self._expected and not self._replies

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def clear_input(self) -> None:
        self._replies.clear()

    def write(self, line: str) -> None:
        self.history.append((time.time(), ">", line))
        assert self._expected, f"unexpected command {line!r}: the transcript is finished"
        command, reply = self._expected.popleft()
        assert line == command, f"expected command {command!r}, got {line!r}"
        if reply is not None:
            self._replies.append(reply)

    def read_line(self, timeout_s: float | None = None) -> str:
        assert self._replies, "read with no reply due: the transcript gives none for the last command"
        reply = self._replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        self.history.append((time.time(), "<", reply))
        return reply

    def query(self, line: str, timeout_s: float | None = None) -> str:
        self.write(line)
        return self.read_line(timeout_s)


# --------------------------------------------------------------------------- the bus


class Inbox:
    """The messages a test subscribed to (an exclusive queue on ``exchange`` for ``patterns``),
    kept in arrival order; ``next`` waits for the first not yet taken that matches."""

    def __init__(self, bus: Bus, exchange: str, patterns: Sequence[str]) -> None:
        self.messages: list[Message] = []
        self._taken = 0
        self._arrived = threading.Condition()
        spec = topology.QueueSpec("", exchange, tuple(patterns), durable=False, exclusive=True)
        self._subscription: Subscription = bus.subscribe(spec, self._on_message)

    def _on_message(self, message: Message, delivery: Delivery) -> None:
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()

    def next(self, kind: type[T] | None = None, *, where: Callable[[Any], bool] | None = None,
             timeout_s: float = 15.0) -> T:
        """The next message (of ``kind``, meeting ``where``) after the ones taken so far; skipped
        messages stay in ``messages``."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while True:
                for i in range(self._taken, len(self.messages)):
                    message = self.messages[i]
                    if (kind is None or isinstance(message, kind)) and (where is None or where(message)):
                        self._taken = i + 1
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {getattr(kind, '__name__', 'message')} within {timeout_s:g} s; "
                                         f"got {[type(m).__name__ for m in self.messages[self._taken:]]}")
                self._arrived.wait(remaining)

    def until(self, kind: type[Any], timeout_s: float = 15.0) -> list[Message]:
        """Every message from the last taken up to and including the next one of ``kind``."""
        start = self._taken
        self.next(kind, timeout_s=timeout_s)
        with self._arrived:
            return list(self.messages[start:self._taken])

    def close(self) -> None:
        self._subscription.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- service processes


class ServiceProcess:
    """A service run as its own process (``python -m <module>``), its output in a log file; ready
    once the log holds ``ready_text``. ``kill()`` is a crash (SIGKILL), ``stop()`` a clean stop."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path, ready_text: str,
                 timeout_s: float = 60.0) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()/kill()
        self.process = subprocess.Popen([sys.executable, "-m", module], env={**os.environ, **env},
                                        stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: ready_text in self.output() or self.process.poll() is not None, timeout_s,
                     what=f"{module} to say {ready_text!r}", poll_s=0.05)
        except AssertionError:
            self.kill()
            raise
        if self.process.poll() is not None:
            self._log.close()
            raise AssertionError(f"{module} exited with {self.process.returncode}: {self.output()[-2000:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self._log.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._log.close()
