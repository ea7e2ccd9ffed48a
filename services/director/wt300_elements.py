"""Several elements of one WT332E/WT333E as channels of one SUT measurement (wt310e.md §2.8).

The meter has one numeric item list and one update: its elements are read together, by one
connection. ``MultiElementMeter`` owns that connection (a ``WT310E`` driver); each channel gets an
``ElementSource``, an ``AnalyzerSource`` over one element, so that the session treats the elements
as it treats several analyzers (a recorder, readings and ranges per channel).

    items   per element k: P,k U,k I,k LAMBDA,k URANGE,k IRANGE,k (``:NUMERIC:NORMAL:NUMBER`` 6 x n)
    sample  one :COMMUNICATE:WAIT 1, one VALUE?, one EESR? per update: the first channel to ask reads
            it, the others take the same update (same timestamp, so the merge pairs them exactly)
    ranges  :INPUT:VOLTAGE:AUTO:ELEMENT<k> / :INPUT:VOLTAGE:RANGE:ELEMENT<k> (and CURRENT): each
            element on the ranges of its own ranging maxima; read back per element
    status  element k's OVR/POV/POA bits sit 3 x (k - 1) above element 1's (§1.10)

Open, start and close are counted: the connection opens with the first channel and closes with
the last; ``start`` with a mark clears the update flag once per mark.
"""

from __future__ import annotations

import math
import time

from mlpower.director import ranges as rng
from mlpower.director.errors import AnalyzerError, AnalyzerLost, AnalyzerTimeout, ReplyParseError
from mlpower.director.shared_instrument import SharedInstrument
from mlpower.director.sources import Reading
from mlpower.director.wt310e import WT310E
from mlpower.director.wt310e_scpi import (
    BASE_ITEMS,
    COMMANDS,
    EESR_OVR1,
    EESR_OVRS,
    EESR_POA1,
    EESR_POV1,
    EESR_UPD,
    RANGE_ITEMS,
    RangeState,
    build_reading,
    command,
    parse_eesr,
    parse_ranges,
)
from mlpower.schema import SourceInfo

ELEMENT_ITEMS = BASE_ITEMS + RANGE_ITEMS
_ELEMENT_BITS = EESR_OVR1 | EESR_POV1 | EESR_POA1


def element_eesr(eesr: int, element: int) -> int:
    """Element k's status bits moved to element 1's place, with the meter-wide bits kept."""
    return ((eesr >> (3 * (element - 1))) & _ELEMENT_BITS) | (eesr & (EESR_UPD | EESR_OVRS))


def items_command_of(elements: tuple[int, ...]) -> str:
    units = [f"ITEM{i} {fn},{element}" for i, (element, fn) in
             enumerate(((e, fn) for e in elements for fn, _ in ELEMENT_ITEMS), start=1)]
    return ":NUMERIC:NORMAL:" + ";".join(units)


def ranges_query(element: int) -> str:
    return (f":INPUT:VOLTAGE:RANGE:ELEMENT{element}?;:INPUT:VOLTAGE:AUTO:ELEMENT{element}?;"
            f":INPUT:CURRENT:RANGE:ELEMENT{element}?;:INPUT:CURRENT:AUTO:ELEMENT{element}?")


class MultiElementMeter:
    """One multi-element meter read by several channel sources."""

    def __init__(self, driver: WT310E, elements: tuple[int, ...]) -> None:
        if len(set(elements)) != len(elements) or not elements:
            raise ValueError("elements must be distinct")
        self.driver, self.elements = driver, tuple(elements)
        self._shared = SharedInstrument[int](open_instrument=self._open_meter, close_instrument=driver.close,
                                             read_update=self._read_update)
        self._lock = self._shared.lock
        self._mark: str | None = None
        self._previous: dict[int, tuple[float | None, float | None]] = {}
        self.ranges: dict[int, RangeState] = {}

    @property
    def address(self) -> str:
        return self.driver.transport.address

    def sources(self) -> list[ElementSource]:
        return [ElementSource(self, element) for element in self.elements]

    # ------------------------------------------------------------------ counted open/close

    def open(self) -> None:
        self._shared.open()

    def _open_meter(self) -> None:
        self.driver.open()  # *IDN?, remote, header, mode, crest factor, rate (element 1's items)
        try:
            self._configure_items()
            for element in self.elements:
                self.ranges[element] = parse_ranges(self.driver.query(ranges_query(element)))
        except BaseException:
            self.driver.close()
            raise

    def _configure_items(self) -> None:
        d = self.driver
        d.write(COMMANDS["numeric_format"])
        d.write(command("numeric_number", n=len(ELEMENT_ITEMS) * len(self.elements)))
        d.write(items_command_of(self.elements))
        d.check_errors(f"numeric items of elements {', '.join(map(str, self.elements))}")

    def close(self) -> None:
        self._shared.close()

    def info(self, element: int) -> SourceInfo:
        identity = self.driver.identity
        return SourceInfo(kind="wt310e", model=identity.model if identity else "", serial=identity.serial
                          if identity else "", firmware=identity.firmware if identity else "",
                          address=self.address, channel=element, tier="informative")

    def identify(self) -> str:
        with self._lock:
            return self.driver.identify()

    # ------------------------------------------------------------------ ranges, start

    def set_ranges(self, element: int, voltage_range_v: float | None, current_range_a: float | None) -> None:
        """One element's ranges (rounded up to the model's), read back and checked."""
        with self._lock:
            d = self.driver
            model = d.identity.model if d.identity else "WT333E"
            v = None if voltage_range_v is None else rng.valid_voltage_range(voltage_range_v, d.crest_factor)
            a = None if current_range_a is None else rng.valid_current_range(current_range_a, model, d.crest_factor)
            for quantity, value, unit in (("VOLTAGE", v, "V"), ("CURRENT", a, "A")):
                d.write(f":INPUT:{quantity}:AUTO:ELEMENT{element} {'ON' if value is None else 'OFF'}")
                if value is not None:
                    d.write(f":INPUT:{quantity}:RANGE:ELEMENT{element} {float(value):g}{unit}")
            d.check_errors(f"setting ranges of element {element}")
            state = self.ranges[element] = parse_ranges(d.query(ranges_query(element)))
            problems = []
            if (v is None) != state.voltage_auto or (v is not None and not math.isclose(state.voltage_range_v, v)):
                problems.append(f"voltage reads {state.voltage_range_v:g} V (auto {state.voltage_auto})")
            if (a is None) != state.current_auto or (a is not None and not math.isclose(state.current_range_a, a)):
                problems.append(f"current reads {state.current_range_a:g} A (auto {state.current_auto})")
            if problems:
                raise AnalyzerError(f"{self.address} element {element}: ranges not applied: " + "; ".join(problems))
            self._previous.pop(element, None)

    def start(self, mark: str) -> None:
        with self._lock:
            if mark != self._mark:
                self._mark = mark
                self._previous.clear()
                self.driver.start(mark)  # clears the update flag: the first sample is a fresh update

    def stop(self) -> None:
        with self._lock:
            self._mark = None

    # ------------------------------------------------------------------ samples

    def read(self, element: int, seen: int) -> tuple[int, Reading]:
        """Element ``element``'s reading of the first update after generation ``seen``; the first
        channel to ask reads the meter, the others get that update's reading."""
        return self._shared.read(element, seen)

    def _read_update(self) -> dict[int, Reading]:
        d = self.driver
        d._check_alive()
        wait_s = d.update_interval_s + d.lost_margin_s
        d.write(COMMANDS["wait_update"])
        d.write(COMMANDS["values"])
        try:
            reply = d._io(d.transport.read_line, wait_s)
        except AnalyzerTimeout as exc:
            d._lost = f"{self.address}: no sample within {wait_s:g} s ({exc})"
            raise AnalyzerLost(d._lost) from exc
        t = time.time()
        eesr = parse_eesr(d.query(COMMANDS["eesr"]))
        tokens = reply.strip().split(",")
        per = len(ELEMENT_ITEMS)
        if len(tokens) != per * len(self.elements):
            raise ReplyParseError(f"expected {per * len(self.elements)} values", reply)
        fields = tuple(field for _, field in ELEMENT_ITEMS)
        readings = {}
        for k, element in enumerate(self.elements):
            state = self.ranges.get(element)
            auto = bool(state and (state.voltage_auto or state.current_auto))
            reading = build_reading(",".join(tokens[k * per:(k + 1) * per]), fields, t_utc_s=t,
                                    voltage_range_v=None, current_range_a=None, auto=auto,
                                    previous_ranges=self._previous.get(element),
                                    eesr=element_eesr(eesr, element), crest_factor=d.crest_factor,
                                    frequency_hz=d.frequency_hz, uncertainty_margin=d.uncertainty_margin)
            self._previous[element] = (reading.voltage_range_v, reading.current_range_a)
            readings[element] = reading
        return readings


class ElementSource:
    """An ``AnalyzerSource`` over one element of a ``MultiElementMeter``."""

    def __init__(self, meter: MultiElementMeter, element: int) -> None:
        self.meter, self.element = meter, element
        self.min_interval_s = meter.driver.min_interval_s
        self.info = SourceInfo(kind="wt310e", address=meter.address, channel=element, tier="informative")
        self._seen = 0
        self._open = False

    def open(self) -> None:
        if not self._open:
            self.meter.open()
            self._open = True
            self.info = self.meter.info(self.element)

    def identify(self) -> str:
        return self.meter.identify()

    def set_ranges(self, voltage_range_v: float | None, current_range_a: float | None) -> None:
        self.meter.set_ranges(self.element, voltage_range_v, current_range_a)

    def start(self, mark: str) -> None:
        self.meter.start(mark)

    def read_sample(self) -> Reading:
        self._seen, reading = self.meter.read(self.element, self._seen)
        return reading

    def stop(self) -> None:
        self.meter.stop()

    def close(self) -> None:
        if self._open:
            self._open = False
            self.meter.close()
