"""The channels of one multichannel PTDaemon (device types 48/59/61/77, ``-c``) as channels of one
SUT measurement.

One PTDaemon, one connection, one command sequence: ``MultiChannelPtd`` owns the ``PtdSource``
and each channel gets a ``PtdChannelSource`` over its ``Ch<k>`` group of every sample line. The
PTD sequence stays power-dev's for one analyzer (power-dev-protocol.md §3.5): one ``Go`` per mark,
one stop sequence when every channel has stopped, one range restore. PTDaemon has one range
setting for all its channels, so the ranges sent are those that hold every channel: the largest
of the channels' own (each computed from that channel's ranging maxima); ``Auto`` when any
channel asks for it.
"""

from __future__ import annotations

from typing import Any

from mlpower.ptdformat import SampleGroup
from mlpower.schema import SourceInfo

from .ptd_format import reading_of
from .ptd_source import PtdSource, PtdStopResult
from .shared_instrument import SharedInstrument
from .sources import Reading

_NONE = SampleGroup.of(None, None, None, None)


def _largest(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


class MultiChannelPtd:
    def __init__(self, ptd: PtdSource, channels: tuple[int, ...]) -> None:
        self.ptd, self.channels = ptd, tuple(channels)
        # Hello, Identify, RR once for all channels; every sample line read once for all of them
        self._shared = SharedInstrument[int](open_instrument=ptd.open, close_instrument=ptd.close,
                                             read_update=self._read_update)
        self._lock = self._shared.lock
        self._mark: str | None = None
        self._asked: dict[int, tuple[float | None, float | None]] = {}
        self._stopped: set[int] = set()

    def sources(self) -> list[PtdChannelSource]:
        return [PtdChannelSource(self, channel) for channel in self.channels]

    def open(self) -> None:
        self._shared.open()

    def close(self) -> None:
        self._shared.close()

    def info(self, channel: int) -> SourceInfo:
        return self.ptd.info.model_copy(update={"channel": channel})

    def set_ranges(self, channel: int, voltage_range_v: float | None, current_range_a: float | None) -> None:
        """Collected per channel; sent once every channel has asked (the session asks each in turn)."""
        with self._lock:
            self._asked[channel] = (voltage_range_v, current_range_a)
            if set(self._asked) >= set(self.channels):
                asked = list(self._asked.values())
                self._asked.clear()
                self.ptd.set_ranges(_largest([v for v, _ in asked]), _largest([a for _, a in asked]))

    def start(self, mark: str) -> None:
        with self._lock:
            if mark != self._mark:
                self._mark = mark
                self._stopped.clear()
                self.ptd.start(mark)

    def stop(self, channel: int) -> None:
        """PTD's stop sequence once the last channel stopped (the others may still be reading)."""
        with self._lock:
            self._stopped.add(channel)
            if self._mark is not None and self._stopped >= set(self.channels):
                self._mark = None
                self.ptd.stop()

    def read(self, channel: int, seen: int) -> tuple[int, Reading]:
        return self._shared.read(channel, seen)

    def _read_update(self) -> dict[int, Reading]:
        sample = self.ptd.read_line()
        groups = sample.channel_groups()
        return {k: reading_of(sample, self.ptd.ranges, self.ptd.config.crest_factor, groups.get(k, _NONE))
                for k in self.channels}


class PtdChannelSource:
    """An ``AnalyzerSource`` (and ``PtdDriven``) over one channel of a multichannel PTDaemon."""

    def __init__(self, owner: MultiChannelPtd, channel: int) -> None:
        self.owner, self.channel = owner, channel
        self.min_interval_s = 1.0
        self.info = SourceInfo(kind="ptdaemon", address=owner.ptd.address, channel=channel,
                               tier=owner.ptd.config.tier)
        self._seen = 0
        self._open = False

    # AnalyzerSource
    def open(self) -> None:
        if not self._open:
            self.owner.open()  # Hello, Identify, RR (once for all channels)
            self._open = True
            self.info = self.owner.info(self.channel)

    def identify(self) -> str:
        """PTDaemon's Identify reply as its open received it (a second Identify would change the
        command sequence the compliance checker reads)."""
        return next((m["reply"] for m in self.ptd_messages() if m["cmd"] == "Identify"), "")

    def set_ranges(self, voltage_range_v: float | None, current_range_a: float | None) -> None:
        self.owner.set_ranges(self.channel, voltage_range_v, current_range_a)

    @property
    def applied_ranges(self) -> tuple[float | None, float | None]:
        """The ranges PTDaemon was set to for all its channels (hardware ranges; None: auto)."""
        return self.owner.ptd.ranges

    def start(self, mark: str) -> None:
        self.owner.start(mark)

    def read_sample(self) -> Reading:
        self._seen, reading = self.owner.read(self.channel, self._seen)
        return reading

    def stop(self) -> None:
        self.owner.stop(self.channel)

    def close(self) -> None:
        if self._open:
            self._open = False
            self.owner.close()

    # PtdDriven: the one PTDaemon's record
    @property
    def last_stop(self) -> PtdStopResult | None:
        return self.owner.ptd.last_stop

    def ptd_messages(self) -> list[dict[str, str]]:
        return self.owner.ptd.ptd_messages()

    def console_text(self) -> str:
        return self.owner.ptd.console_text()

    def ptd_config(self) -> dict[str, Any]:
        return self.owner.ptd.ptd_config()

    def restore_initial_ranges(self) -> None:
        self.owner.ptd.restore_initial_ranges()  # once: PtdSource remembers it restored
