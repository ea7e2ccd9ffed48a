"""One instrument read by several channel sources: the part a multi-element meter
(``wt300_elements``) and a multichannel PTDaemon (``ptd_channels``) have in common.

- Open and close are counted: the instrument opens with the first channel and closes with the last.
- Each update is read once. The first channel to ask after the update it last saw (its
  ``seen`` generation) reads the instrument; the others take that same update's readings, so every
  channel's sample of one update carries the same timestamp and the merge pairs them exactly.
- A lost instrument is lost for every channel: the error is kept and raised to each channel
  that asks for an update after the last good one.

The owner passes its three instrument steps in and shares ``lock`` for its own commands (ranges,
start, stop), so nothing talks to the instrument while an update is read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import AnalyzerLost
from .sources import Reading

Channel = TypeVar("Channel")


class SharedInstrument(Generic[Channel]):
    def __init__(self, *, open_instrument: Callable[[], None], close_instrument: Callable[[], None],
                 read_update: Callable[[], dict[Channel, Reading]]) -> None:
        self.lock = threading.RLock()
        self._open_instrument, self._close_instrument, self._read_update = \
            open_instrument, close_instrument, read_update
        self._opened = 0
        self._generation = 0
        self._cached: dict[Channel, Reading] = {}
        self._error: AnalyzerLost | None = None

    def open(self) -> None:
        with self.lock:
            if self._opened == 0:
                self._open_instrument()
            self._opened += 1

    def close(self) -> None:
        with self.lock:
            self._opened = max(0, self._opened - 1)
            if self._opened == 0:
                self._close_instrument()

    def read(self, channel: Channel, seen: int) -> tuple[int, Reading]:
        """``channel``'s reading of the first update after generation ``seen``, and that generation."""
        with self.lock:
            if self._generation <= seen:
                if self._error is not None:
                    raise self._error
                try:
                    self._cached = self._read_update()
                except AnalyzerLost as exc:  # AnalyzerTimeout too: lost for every channel
                    self._error = exc
                    raise
                self._generation += 1
            return self._generation, self._cached[channel]
