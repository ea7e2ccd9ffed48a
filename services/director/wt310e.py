"""The Yokogawa WT310E over SCPI: the driver (its command table and reply parser: ``wt310e_scpi``).

The driver speaks through a ``mlpower.director.transport.Transport`` (pyvisa or pyserial), so the
same code runs over TCP, VXI-11, USBTMC, GP-IB and RS-232. Its session (wt310e.md §3.1, §1.11):

    open    *CLS, *IDN?, :COMMUNICATE:REMOTE ON, :COMMUNICATE:HEADER OFF, :COMMUNICATE:VERBOSE ON,
            :STATUS:QMESSAGE ON, :STATUS:ERROR? (drained), :INPUT:MODE RMS, :INPUT:CFACTOR 3,
            :RATE 1S, :NUMERIC:FORMAT ASCII, :NUMERIC:NORMAL:NUMBER 6,
            :NUMERIC:NORMAL:ITEM1 P,1;ITEM2 U,1;ITEM3 I,1;ITEM4 LAMBDA,1;ITEM5 URANGE,1;ITEM6 IRANGE,1,
            :STATUS:ERROR?, :STATUS:FILTER1 FALL, :STATUS:EESR?, ranges query
    ranges  :INPUT:VOLTAGE:AUTO OFF, :INPUT:VOLTAGE:RANGE 300V (or AUTO ON), the same for current,
            :INPUT:VOLTAGE:RANGE?;AUTO?;:INPUT:CURRENT:RANGE?;AUTO?, :STATUS:ERROR?
    sample  :COMMUNICATE:WAIT 1 (blocks until the next update), :NUMERIC:NORMAL:VALUE?, :STATUS:EESR?

The range items (URANGE, IRANGE) report the range in use with auto range; a meter that refuses
them falls back to four items and a ranges query per auto-range sample.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from mlpower.director import ranges as rng
from mlpower.director.errors import AnalyzerError, AnalyzerLost, AnalyzerTimeout, ReplyParseError
from mlpower.director.sources import Reading, Resource
from mlpower.director.transport import Transport, open_transport
from mlpower.director.wt310e_scpi import (
    BASE_ITEMS,
    COMMANDS,
    RANGE_ITEMS,
    Identity,
    RangeState,
    build_reading,
    command,
    items_command,
    parse_eesr,
    parse_error,
    parse_identity,
    parse_ranges,
    rate_for_interval,
    rate_token,
)
from mlpower.schema import SourceInfo

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- driver

_TRANSPORT_OPTIONS = {
    "backend",
    "open_timeout_s",
    "write_termination",
    "read_termination",
    "baudrate",
    "bytesize",
    "parity",
    "stopbits",
    "rtscts",
    "xonxoff",
}


class WT310E:
    """An ``AnalyzerSource`` for the WT310E (and the WT310/WT332E/WT333E element 1) over SCPI."""

    min_interval_s = 0.1

    def __init__(
        self,
        transport: Transport,
        *,
        update_interval_s: float = 1.0,
        crest_factor: str | int = 3,
        element: int = 1,
        sync: str = "wait",
        range_items: bool = True,
        timeout_s: float = 2.0,
        lost_margin_s: float = 0.9,
        check_identity: bool = True,
        reset_on_open: bool = False,
        frequency_hz: float = 50.0,
        uncertainty_margin: float = 1.0,
    ) -> None:
        if sync not in ("wait", "timer"):
            raise ValueError("sync must be 'wait' (:COMMUNICATE:WAIT 1) or 'timer' (local clock)")
        update_interval_s = rate_for_interval(update_interval_s)
        rng.voltage_ranges(crest_factor)  # validates
        self.transport = transport
        self.update_interval_s = float(update_interval_s)
        self.crest_factor = str(crest_factor).upper()
        self.element = element
        self.sync = sync
        self.want_range_items = range_items
        self.timeout_s = timeout_s
        self.lost_margin_s = lost_margin_s
        self.check_identity = check_identity
        self.reset_on_open = reset_on_open
        self.frequency_hz = frequency_hz
        self.uncertainty_margin = uncertainty_margin
        self.info = SourceInfo(kind="wt310e", address=transport.address, channel=element, tier="informative")
        self.identity: Identity | None = None
        self.ranges: RangeState | None = None
        self.mark = ""
        self.fields: tuple[str, ...] = ()
        self.discarded_errors: list[tuple[int, str]] = []
        self._open = False
        self._lost: str | None = None
        self._previous_ranges: tuple[float | None, float | None] | None = None
        self._next_deadline: float | None = None

    @classmethod
    def option_names(cls, kind: str) -> set[str]:
        """The options ``open_source`` accepts for a WT310E on a "visa" or "serial" resource."""
        import inspect

        from mlpower.director.transport import SerialTransport, VisaTransport

        transport = VisaTransport if kind == "visa" else SerialTransport
        names = set(inspect.signature(cls).parameters) - {"transport"}
        names |= set(inspect.signature(transport).parameters) & _TRANSPORT_OPTIONS
        return names | {"timeout_s"}

    @classmethod
    def from_resource(cls, resource: Resource, **options: Any) -> WT310E:
        transport_options = {k: options.pop(k) for k in list(options) if k in _TRANSPORT_OPTIONS}
        if "timeout_s" in options:
            transport_options["timeout_s"] = options["timeout_s"]
        return cls(open_transport(resource.kind, resource.address, **transport_options), **options)

    # ------------------------------------------------------------------ low level

    def _check_alive(self) -> None:
        if self._lost is not None:
            raise AnalyzerLost(self._lost)
        if not self._open:
            raise AnalyzerError(f"{self.transport.address}: not open")

    def _io(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AnalyzerTimeout:
            raise
        except AnalyzerLost as exc:
            self._lost = str(exc)
            raise

    def write(self, text: str) -> None:
        self._io(self.transport.write, text)

    def query(self, text: str, timeout_s: float | None = None) -> str:
        """Send a query and return its reply. No reply: the error queue says why (``AnalyzerError``)
        or, when it is empty too, the analyzer is taken as lost (``AnalyzerTimeout``)."""
        try:
            return str(self._io(self.transport.query, text, self.timeout_s if timeout_s is None else timeout_s))
        except AnalyzerTimeout as first:
            self.transport.clear_input()
            try:
                errors = self.read_errors()
            except AnalyzerLost:
                self._lost = str(first)
                raise first from None
            if errors:
                code, message = errors[0]
                raise AnalyzerError(f"{text!r} got no reply: error {code} {message!r}", code=code) from None
            self._lost = str(first)
            raise

    def read_errors(self, limit: int = 32) -> list[tuple[int, str]]:
        """Drain the error queue (``:STATUS:ERROR?`` until code 0)."""
        errors: list[tuple[int, str]] = []
        for _ in range(limit):
            reply = self._io(self.transport.query, COMMANDS["error"], self.timeout_s)
            code, message = parse_error(reply)
            if code == 0:
                break
            errors.append((code, message))
        return errors

    def check_errors(self, context: str) -> None:
        errors = self.read_errors()
        if errors:
            code, message = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise AnalyzerError(f"{self.transport.address}: {context}: error {code} {message!r}{more}", code=code)

    # ------------------------------------------------------------------ AnalyzerSource

    def open(self) -> None:
        if self._open:
            return
        self.transport.open()
        self._open = True
        self._lost = None
        try:
            self._configure()
        except BaseException:
            self.close()
            raise

    def _configure(self) -> None:
        self.transport.clear_input()
        self.write(COMMANDS["clear"])
        self.identity = parse_identity(self.query(COMMANDS["identify"]))
        if self.check_identity and not self.identity.is_wt300_family:
            raise AnalyzerError(f"{self.transport.address} is not a Yokogawa WT300-family meter: {self.identity.raw!r}")
        self.info = SourceInfo(
            kind="wt310e",
            model=self.identity.model,
            serial=self.identity.serial,
            firmware=self.identity.firmware,
            address=self.transport.address,
            channel=self.element,
            tier="informative",
        )
        if self.reset_on_open:
            self.reset()
        for name, state in (("remote", True), ("header", False), ("verbose", True), ("qmessage", True)):
            self.write(command(name, state=state))
        self.discarded_errors = self.read_errors()
        if self.discarded_errors:
            log.info("%s: discarded old errors %s", self.transport.address, self.discarded_errors)
        self.write(command("mode", mode="RMS"))
        self.write(command("crest_factor", cf=self.crest_factor))
        self.write(command("rate", token=rate_token(self.update_interval_s)))
        self.check_errors("input configuration")
        self._configure_items()
        self.write(COMMANDS["filter_update"])
        parse_eesr(self.query(COMMANDS["eesr"]))
        self.ranges = parse_ranges(self.query(COMMANDS["ranges"]))
        self.check_errors("configuration")

    def _configure_items(self) -> None:
        attempts = [BASE_ITEMS + RANGE_ITEMS, BASE_ITEMS] if self.want_range_items else [BASE_ITEMS]
        for items in attempts:
            functions = tuple(fn for fn, _ in items)
            self.write(COMMANDS["numeric_format"])
            self.write(command("numeric_number", n=len(items)))
            self.write(items_command(functions, self.element))
            errors = self.read_errors()
            if not errors:
                self.fields = tuple(field for _, field in items)
                return
            log.info("%s: numeric items %s refused: %s", self.transport.address, functions, errors)
        code, message = errors[0]
        raise AnalyzerError(f"{self.transport.address}: numeric items refused: error {code} {message!r}", code=code)

    @property
    def has_range_items(self) -> bool:
        return "voltage_range_v" in self.fields

    def identify(self) -> str:
        self._check_alive()
        reply = self.query(COMMANDS["identify"])
        self.identity = parse_identity(reply)
        return reply

    def reset(self, settle_s: float = 2.0) -> None:
        """``*CLS`` then ``*RST`` (factory settings); ``open`` configures again afterwards."""
        self.write(COMMANDS["clear"])
        self.write(COMMANDS["reset"])
        time.sleep(settle_s)

    def set_update_interval(self, interval_s: float) -> None:
        """``:RATE`` for a sampling interval (see ``rate_for_interval``)."""
        self._check_alive()
        rate = rate_for_interval(interval_s)
        self.write(command("rate", token=rate_token(rate)))
        self.check_errors(f"update interval {rate:g} s")
        self.update_interval_s = rate

    def set_ranges(self, voltage_range_v: float | None, current_range_a: float | None) -> None:
        """Fixed ranges (rounded up to a hardware range) or ``None`` for auto; read back and checked."""
        self._check_alive()
        model = self.identity.model if self.identity else "WT310E"
        v = None if voltage_range_v is None else rng.valid_voltage_range(voltage_range_v, self.crest_factor)
        a = None if current_range_a is None else rng.valid_current_range(current_range_a, model, self.crest_factor)
        if v is None:
            self.write(command("voltage_auto", state=True))
        else:
            self.write(command("voltage_auto", state=False))
            self.write(command("voltage_range", value=float(v)))
        if a is None:
            self.write(command("current_auto", state=True))
        else:
            self.write(command("current_auto", state=False))
            self.write(command("current_range", value=float(a)))
        self.check_errors("setting ranges")
        state = parse_ranges(self.query(COMMANDS["ranges"]))
        self.ranges = state
        problems = []
        if v is None and not state.voltage_auto:
            problems.append("voltage auto range is off")
        if v is not None and (state.voltage_auto or not math.isclose(state.voltage_range_v, v, rel_tol=1e-6)):
            problems.append(f"voltage range reads {state.voltage_range_v:g} V (auto {state.voltage_auto}), not {v:g} V")
        if a is None and not state.current_auto:
            problems.append("current auto range is off")
        if a is not None and (state.current_auto or not math.isclose(state.current_range_a, a, rel_tol=1e-6)):
            problems.append(f"current range reads {state.current_range_a:g} A (auto {state.current_auto}), not {a:g} A")
        if problems:
            raise AnalyzerError(f"{self.transport.address}: ranges not applied: " + "; ".join(problems))
        self._previous_ranges = None

    @property
    def auto(self) -> bool:
        return bool(self.ranges and (self.ranges.voltage_auto or self.ranges.current_auto))

    def start(self, mark: str) -> None:
        self._check_alive()
        self.mark = mark
        self._previous_ranges = None
        self._next_deadline = None
        if self.sync == "wait":
            parse_eesr(self.query(COMMANDS["eesr"]))  # clear: the first sample is a fresh update

    def read_sample(self) -> Reading:
        """Block until the next update and return it; ``AnalyzerLost`` when the meter is gone."""
        self._check_alive()
        wait_s = self.update_interval_s + self.lost_margin_s
        if self.sync == "wait":
            self.write(COMMANDS["wait_update"])
        else:
            self._sleep_to_next_update()
        self.write(COMMANDS["values"])
        try:
            reply = self._io(self.transport.read_line, wait_s)
        except AnalyzerTimeout as exc:
            self._lost = f"{self.transport.address}: no sample within {wait_s:g} s ({exc})"
            raise AnalyzerLost(self._lost) from exc
        t = time.time()
        eesr = parse_eesr(self.query(COMMANDS["eesr"])) if self.sync == "wait" else 0
        state = self.ranges
        if state is not None and self.auto and not self.has_range_items:
            state = self.ranges = parse_ranges(self.query(COMMANDS["ranges"]))
        try:
            reading = build_reading(
                reply,
                self.fields,
                t_utc_s=t,
                voltage_range_v=state.voltage_range_v if state else None,
                current_range_a=state.current_range_a if state else None,
                auto=self.auto,
                previous_ranges=self._previous_ranges,
                eesr=eesr,
                crest_factor=self.crest_factor,
                frequency_hz=self.frequency_hz,
                uncertainty_margin=self.uncertainty_margin,
            )
        except ReplyParseError as exc:
            exc.t_utc_s = t
            raise
        self._previous_ranges = (reading.voltage_range_v, reading.current_range_a)
        return reading

    def _sleep_to_next_update(self) -> None:
        now = time.monotonic()
        if self._next_deadline is None:
            self._next_deadline = now
        else:
            self._next_deadline += self.update_interval_s
            if self._next_deadline < now:  # fell behind: resynchronise rather than burst
                self._next_deadline = now
        time.sleep(max(0.0, self._next_deadline - now))

    def stop(self) -> None:
        self.mark = ""

    def close(self) -> None:
        if not self._open:
            return
        if self._lost is None:
            try:
                self.transport.write(command("remote", state=False))
            except Exception:  # noqa: BLE001 - closing: the meter may already be gone
                pass
        self.transport.close()
        self._open = False

    def __enter__(self) -> WT310E:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
