"""The sampling thread of one analyzer during one phase.

It reads a sample every ``interval_s`` (on a fixed schedule, so that jitter does not accumulate),
keeps every reading, hands each one to ``on_sample`` (live metrics) and publishes them in
``SamplePage``s through the run stream, at least every ``page_interval_s`` or ``page_max_samples``.
A source that raises (``AnalyzerLost`` or anything else) ends the phase at once: the page in hand
is published, then ``on_lost(reason)`` is called, so the run fails with the samples kept.

Pages are published from a second thread: a broker confirm (RabbitMQ waits for it) must not
delay the next read. ``stop`` drains that thread, so every page precedes the phase's end mark.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mlpower.runstream import RunStream
from mlpower.schema import SampleFlag
from mlpower.timeutil import SYSTEM_CLOCK, Clock

from .sources import AnalyzerSource, Reading

log = logging.getLogger(__name__)

PAGE_COLUMNS = ("t_utc_s", "power_w", "voltage_v", "current_a", "power_factor", "voltage_range_v",
                "current_range_a", "uncertainty_w", "flags")


def clean(reading: Reading) -> Reading:
    """NaN/inf become ``None`` with MISSING set: a page must carry no number that is not a measurement."""
    changes: dict[str, object] = {}
    for name in PAGE_COLUMNS[1:-1]:
        value = getattr(reading, name)
        if value is not None and not math.isfinite(value):
            changes[name] = None
            if name == "power_w":
                changes["flags"] = reading.flags | SampleFlag.MISSING
    if reading.power_w is None and not reading.flags & (SampleFlag.MISSING | SampleFlag.OVERRANGE):
        changes["flags"] = reading.flags | SampleFlag.MISSING
    return reading.replace(**changes) if changes else reading


DEFAULT_PAGE_INTERVAL_S = 0.5
"""A page at least this often. A sample waits on average half a page interval for its page, and one read
just after a page waits a whole interval: at 0.5 s, read -> analytics stays under a second at p99 with
room for the broker and analytics (1 s pages put about a second of batching alone into the tail)."""


@dataclass
class RecorderConfig:
    interval_s: float = 1.0
    page_interval_s: float = DEFAULT_PAGE_INTERVAL_S
    page_max_samples: int = 50


@dataclass
class RecorderStats:
    reads: int = 0
    pages: int = 0
    late_reads: int = 0  # reads that started after their slot had passed (the schedule slipped)
    read_started_mono: list[float] = field(default_factory=list)


class Recorder:
    def __init__(self, source: AnalyzerSource, stream: str, mode: str, run_stream: RunStream | None,
                 config: RecorderConfig, *, on_sample: Callable[[str, Reading], None] | None = None,
                 on_lost: Callable[[str], None] | None = None, extra_flags: int = 0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.source, self.stream, self.mode = source, stream, mode
        self._clock = clock
        self._run_stream, self._config = run_stream, config
        self._on_sample, self._on_lost = on_sample, on_lost
        self._extra_flags = extra_flags
        self.readings: list[Reading] = []
        self.stats = RecorderStats()
        self.error: str | None = None
        self._stop = threading.Event()
        self._pager: Pager | None = None  # pages from its own thread, made at start
        self._thread = threading.Thread(target=self._run, name=f"recorder-{stream}-{mode}", daemon=True)

    @property
    def publish_error(self) -> str | None:
        return None if self._pager is None else self._pager.publish_error

    def start(self) -> None:
        self._pager = Pager(self._run_stream, self.stream, self.mode, self._config, clock=self._clock)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> list[Reading]:
        """Stop sampling and wait until every page is published."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout_s)
        if self._pager is not None:
            self._pager.close(timeout_s)
            self.stats.pages = self._pager.pages
        return self.readings

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        interval = self._config.interval_s
        clock = self._clock
        due = clock.monotonic_s()
        pager = self._pager
        assert pager is not None, "start() makes the pager"
        while not self._stop.is_set():
            started = clock.monotonic_s()
            self.stats.read_started_mono.append(started)
            try:
                reading = clean(self.source.read_sample())
            except Exception as exc:  # any failure of the source ends the phase; the reason is kept
                self.error = f"{type(exc).__name__}: {exc}"
                log.error("analyzer %s lost during %s: %s", self.stream, self.mode, self.error)
                pager.flush()  # what was read goes out before the loss is acted on
                if self._on_lost is not None:
                    self._on_lost(self.error)
                return
            if self._extra_flags:
                reading = reading.replace(flags=reading.flags | self._extra_flags)
            self.stats.reads += 1
            self.readings.append(reading)
            pager.add(reading)
            if self._on_sample is not None:
                self._on_sample(self.stream, reading)
            now = clock.monotonic_s()
            due += interval
            if due < now:  # we fell behind: skip the missed slots rather than bursting to catch up
                self.stats.late_reads += 1
                due = now + interval - ((now - due) % interval)
            clock.wait(self._stop, due - clock.monotonic_s())


class Pager:
    """Publishes one stream's readings in pages from its own thread, as a recorder does: at least
    every ``page_interval_s`` or ``page_max_samples``; ``close`` publishes the rest and drains.
    For a stream no source reads (the SUT's merged stream, built from the channels' samples)."""

    def __init__(self, run_stream: RunStream | None, stream: str, mode: str, config: RecorderConfig, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.stream, self.mode = stream, mode
        self._run_stream, self._config, self._clock = run_stream, config, clock
        self._page: list[Reading] = []
        self._last_page = clock.monotonic_s()
        self._outbox: queue.Queue[list[Reading] | None] = queue.Queue()
        self.pages = 0
        self.publish_error: str | None = None
        self._thread = threading.Thread(target=self._publish, name=f"pages-{stream}-{mode}", daemon=True)
        self._thread.start()

    def add(self, reading: Reading) -> None:
        self._page.append(clean(reading))
        now = self._clock.monotonic_s()
        if len(self._page) >= self._config.page_max_samples or now - self._last_page >= self._config.page_interval_s:
            self.flush()
            self._last_page = now

    def close(self, timeout_s: float = 10.0) -> None:
        self.flush()
        self._outbox.put(None)
        self._thread.join(timeout=timeout_s)

    def flush(self) -> None:
        """Hand what is gathered to the publishing thread now."""
        page, self._page = self._page, []
        if page and self._run_stream is not None:
            self._outbox.put(page)

    def _publish(self) -> None:
        while (page := self._outbox.get()) is not None:
            columns = {name: [getattr(r, name) for r in page] for name in PAGE_COLUMNS}
            columns["flags"] = [int(f) for f in columns["flags"]]
            try:
                assert self._run_stream is not None
                self._run_stream.page(self.stream, mode=self.mode, **columns)
                self.pages += 1
            except Exception as exc:  # the bus is down: the samples stay on disk; say so once per page
                self.publish_error = f"{type(exc).__name__}: {exc}"
                log.error("page of %d samples of %s not published: %s", len(page), self.stream, self.publish_error)
