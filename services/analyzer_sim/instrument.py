"""The simulated WT310E's state: settings, the update engine, the error queue, status and integration.

No sockets here: the transports feed command lines to ``mlpower.analyzer_sim.scpi``, which calls
this object. Readings are computed lazily per update interval from the load model and the pure
physics, with an RNG seeded by (seed, update number), so replies do not depend on how often a
client polls, and readings stay frozen between updates as on the real meter.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Protocol

from mlpower.analyzer_sim import physics
from mlpower.analyzer_sim.faults import Faults
from mlpower.analyzer_sim.scpi_errors import ERROR_QUEUE_DEPTH, ScpiError

DEFAULT_ITEMS: tuple[str, ...] = ("U", "I", "P", "S", "Q", "LAMBDA", "PHI", "FU", "FI")
UPDATE_RATES_S: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)

EESR_UPD, EESR_ITG, EESR_OVR1, EESR_POV1, EESR_POA1 = 0, 1, 6, 7, 8


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None: ...


class Load(Protocol):
    def power_w(self, t_s: float) -> float: ...


@dataclass(frozen=True)
class Identity:
    maker: str = "YOKOGAWA"
    model: str = "WT310E"
    serial: str = "C2PH13047V"
    firmware: str = "F1.03"

    def idn(self) -> str:
        return f"{self.maker},{self.model},{self.serial},{self.firmware}"


@dataclass
class MeasurementSettings:
    """What ``*RST`` restores (the communication settings survive it)."""

    crest_factor: str = "3"
    mode: str = "RMS"
    voltage_range_v: float = 300.0
    current_range_a: float = 1.0
    voltage_auto: bool = True
    current_auto: bool = True
    rate_s: float = 1.0
    line_filter: bool = False
    freq_filter: bool = False
    sync: str = "VOLTAGE"
    numeric_format: str = "ASCII"
    numeric_number: int = 10
    items: list[tuple[str, int]] = field(default_factory=lambda: [(f, 1) for f in DEFAULT_ITEMS])
    numeric_hold: bool = False
    averaging: bool = False
    averaging_type: str = "LINEAR"
    averaging_count: int = 8
    integ_mode: str = "NORMAL"
    integ_timer_s: int = 0


@dataclass
class CommSettings:
    header: bool = True
    verbose: bool = False
    qmessage: bool = True
    remote: bool = False
    lockout: bool = False
    command_set: str = "WT300"
    key_lock: bool = False


@dataclass
class Integration:
    state: str = "RESET"  # RESET, START, STOP, TIMEUP, ERROR
    elapsed_s: float = 0.0
    wh: float = 0.0
    whp: float = 0.0
    whm: float = 0.0
    ah: float = 0.0
    ahp: float = 0.0
    ahm: float = 0.0


@dataclass(frozen=True)
class PhysicsOptions:
    mains: physics.Mains = physics.Mains()
    range_switch_gap_updates: int = 1  # updates lost while auto range switches
    fixed_range_settle_updates: int = 0  # updates lost after a commanded range change (real: 0.5-1.5 s)
    protection_updates: int = 3  # sustained overrange on a fixed mA range before the forced 1 A range
    wait_cap_s: float = 30.0  # a :COMM:WAIT whose event never comes gives up after this


class Instrument:
    def __init__(
        self,
        load: Load,
        clock: Clock,
        *,
        seed: int = 0,
        identity: Identity = Identity(),
        options: PhysicsOptions = PhysicsOptions(),
        faults: Faults | None = None,
        comm: CommSettings | None = None,
    ) -> None:
        self.load, self.clock, self.seed = load, clock, seed
        self.identity, self.options = identity, options
        self.faults = faults or Faults()
        self.lock = threading.RLock()
        self.start_s = clock.now()
        self._power_on_comm = comm or CommSettings()
        self._epoch = -1  # bumped whenever the update cycle restarts, so every cycle draws fresh numbers
        self.power_on()

    # ------------------------------------------------------------------ life cycle
    def power_on(self) -> None:
        """Power-on state: default measurement and communication settings, empty queues."""
        with self.lock:
            self.comm = replace(self._power_on_comm)
            self.errors: deque[int] = deque()
            self.eese = 0
            self.filters: dict[int, str] = dict.fromkeys(range(1, 17), "NEVER")
            self.eesr_latched = 0
            self.reset_measurement()

    def reset_measurement(self) -> None:
        with self.lock:
            self.settings = MeasurementSettings()
            self.integration = Integration()
            self._epoch += 1
            self._anchor_s = self.clock.now()
            self._last_update = 0
            self._gap_left = 0
            self._switching = (False, False)
            self._protection_count = 0
            self._held: physics.Reading | None = None
            self.reading: physics.Reading = self._measure_now(self._anchor_s, 0)
            self.true_power_w = self.load.power_w(self._anchor_s - self.start_s)

    # ------------------------------------------------------------------ errors and status
    def push_error(self, code: int) -> None:
        with self.lock:
            if len(self.errors) >= ERROR_QUEUE_DEPTH:
                self.errors[-1] = 350
                return
            self.errors.append(code)

    def pop_error(self) -> int:
        with self.lock:
            return self.errors.popleft() if self.errors else 0

    def clear_status(self) -> None:
        with self.lock:
            self.errors.clear()
            self.eesr_latched = 0

    def read_eesr(self) -> int:
        with self.lock:
            self.advance()
            value, self.eesr_latched = self.eesr_latched, 0
            return value

    def condition(self) -> int:
        with self.lock:
            self.advance()
            bits = 0
            if self.integration.state == "START":
                bits |= 1 << EESR_ITG
            if self.reading.overrange:
                bits |= 1 << EESR_OVR1
            return bits

    def _latch(self, bit: int) -> None:
        if self.filters.get(bit + 1, "NEVER") != "NEVER":
            self.eesr_latched |= 1 << bit

    # ------------------------------------------------------------------ the update engine
    def update_index(self, now_s: float | None = None) -> int:
        now = self.clock.now() if now_s is None else now_s
        return int(math.floor((now - self._anchor_s) / self.settings.rate_s + 1e-9))

    def seconds_to_next_update(self) -> float:
        with self.lock:
            k = self.update_index()
            return max(0.0, self._anchor_s + (k + 1) * self.settings.rate_s - self.clock.now())

    def advance(self) -> physics.Reading:
        """Compute every update that completed since the last call; returns the latest reading."""
        with self.lock:
            target = self.update_index()
            if target - self._last_update > 1000:
                # Nobody asked for a long time: only the last updates matter for the outputs; the
                # integrator is carried forward on the last reading for the skipped stretch.
                skipped = target - 1000 - self._last_update
                self._integrate(self.reading, skipped * self.settings.rate_s)
                self._last_update = target - 1000
            while self._last_update < target:
                self._last_update += 1
                self._update(self._last_update)
            return self.reading

    def _rng(self, k: int) -> random.Random:
        return random.Random(f"{self.seed}:{self._epoch}:{k}")

    def _ranges(self) -> physics.Ranges:
        s = self.settings
        return physics.Ranges(s.voltage_range_v, s.current_range_a, s.crest_factor)

    def _measure_now(self, t_s: float, k: int) -> physics.Reading:
        rng = self._rng(k)
        signal = physics.true_signal(self.load.power_w(t_s - self.start_s), self.options.mains, rng)
        return physics.measure(signal, self._ranges(), rng)

    def _update(self, k: int) -> None:
        s = self.settings
        t_s = self._anchor_s + k * s.rate_s
        rng = self._rng(k)
        self.true_power_w = self.load.power_w(t_s - self.start_s)
        signal = physics.true_signal(self.true_power_w, self.options.mains, rng)
        if self._gap_left <= 0:
            self._switching = self._auto_range(signal)
            if any(self._switching):
                self._gap_left = self.options.range_switch_gap_updates
        if self._gap_left > 0:
            self._gap_left -= 1
            new = physics.gap_reading(signal, self._ranges(), *self._switching)
        else:
            new = physics.measure(signal, self._ranges(), rng)
            self._low_range_protection(new)
        burst = self.faults.take_burst()
        if burst == "nan":
            new = physics.gap_reading(signal, self._ranges(), True, True)
            new = replace(new, voltage_v=math.nan, freq_u_hz=math.nan, gap=False)
        elif burst == "overrange":
            inf = math.inf
            new = replace(new, voltage_v=inf, current_a=inf, power_w=inf, apparent_va=inf, reactive_var=inf,
                          power_factor=math.nan, phase_deg=math.nan, voltage_overrange=True, current_overrange=True)
        self.reading = new
        self._integrate(new, s.rate_s)
        self._latch(EESR_UPD)
        if new.overrange:
            self._latch(EESR_OVR1)
        if new.voltage_peak_over:
            self._latch(EESR_POV1)
        if new.current_peak_over:
            self._latch(EESR_POA1)

    def _auto_range(self, signal: physics.Signal) -> tuple[bool, bool]:
        s = self.settings
        v_switch = i_switch = False
        if s.voltage_auto:
            choices = physics.VOLTAGE_RANGES_V[s.crest_factor]
            new_v = physics.auto_range(signal.voltage_v, signal.voltage_peak_v, s.voltage_range_v, choices,
                                       s.crest_factor)
            v_switch, s.voltage_range_v = new_v != s.voltage_range_v, new_v
        if s.current_auto:
            choices = physics.CURRENT_RANGES_A[s.crest_factor]
            new_i = physics.auto_range(signal.current_a, signal.current_peak_a, s.current_range_a, choices,
                                       s.crest_factor)
            i_switch, s.current_range_a = new_i != s.current_range_a, new_i
        return v_switch, i_switch

    def _low_range_protection(self, new: physics.Reading) -> None:
        # A fixed mA range under sustained excess is forced to 1 A (0.5 A at CF6) with auto range on
        # (wt310e.md 2.4): the client sees a range change it never asked for.
        s = self.settings
        limit = physics.LOW_CURRENT_RANGE_LIMIT_A / (1 if s.crest_factor == "3" else 2)
        if s.current_auto or s.current_range_a > limit or not new.current_overrange:
            self._protection_count = 0
            return
        self._protection_count += 1
        if self._protection_count >= self.options.protection_updates:
            s.current_range_a = 1.0 if s.crest_factor == "3" else 0.5
            s.current_auto = True
            self._protection_count = 0

    def _integrate(self, r: physics.Reading, dt_s: float) -> None:
        it = self.integration
        if it.state != "START" or dt_s <= 0:
            return
        timer = self.settings.integ_timer_s
        if timer > 0 and it.elapsed_s + dt_s >= timer:
            dt_s = max(0.0, timer - it.elapsed_s)
            it.state = "TIMEUP"
        it.elapsed_s += dt_s
        hours = dt_s / 3600.0
        if math.isfinite(r.power_w):
            it.wh += r.power_w * hours
            if r.power_w >= 0:
                it.whp += r.power_w * hours
            else:
                it.whm += -r.power_w * hours
        if math.isfinite(r.current_a):
            it.ah += r.current_a * hours
            it.ahp += r.current_a * hours

    # ------------------------------------------------------------------ settings with rules
    def _forbid_during_integration(self) -> None:
        if self.integration.state == "START":
            raise ScpiError(813)

    def set_crest_factor(self, cf: str) -> None:
        with self.lock:
            self._forbid_during_integration()
            s = self.settings
            if cf == s.crest_factor:
                return
            # Ranges keep their position in the list: CF6 halves every range.
            v_index = physics.VOLTAGE_RANGES_V[s.crest_factor].index(s.voltage_range_v)
            i_index = physics.CURRENT_RANGES_A[s.crest_factor].index(s.current_range_a)
            s.crest_factor = cf
            s.voltage_range_v = physics.VOLTAGE_RANGES_V[cf][v_index]
            s.current_range_a = physics.CURRENT_RANGES_A[cf][i_index]

    def set_voltage_range(self, volts: float) -> None:
        with self.lock:
            self._forbid_during_integration()
            choices = physics.VOLTAGE_RANGES_V[self.settings.crest_factor]
            match = next((c for c in choices if math.isclose(c, volts, rel_tol=1e-6)), None)
            if match is None:
                raise ScpiError(222, f"{volts} V is not a range at CF{self.settings.crest_factor}")
            self.advance()
            changed = match != self.settings.voltage_range_v
            self.settings.voltage_range_v, self.settings.voltage_auto = match, False
            self._settle(changed, voltage=True)

    def set_current_range(self, amps: float) -> None:
        with self.lock:
            self._forbid_during_integration()
            choices = physics.CURRENT_RANGES_A[self.settings.crest_factor]
            match = next((c for c in choices if math.isclose(c, amps, rel_tol=1e-6)), None)
            if match is None:
                raise ScpiError(222, f"{amps} A is not a range at CF{self.settings.crest_factor}")
            self.advance()
            changed = match != self.settings.current_range_a
            self.settings.current_range_a, self.settings.current_auto = match, False
            self._settle(changed, voltage=False)

    def _settle(self, changed: bool, voltage: bool) -> None:
        # A commanded range change is not measured at once either (wt310e.md 2.5, fault 5).
        if changed and self.options.fixed_range_settle_updates > 0:
            v_switch, i_switch = self._switching if self._gap_left > 0 else (False, False)
            self._gap_left = max(self._gap_left, self.options.fixed_range_settle_updates)
            self._switching = (v_switch or voltage, i_switch or not voltage)

    def set_auto(self, channel: str, on: bool) -> None:
        with self.lock:
            self._forbid_during_integration()
            self.advance()
            if channel == "V":
                self.settings.voltage_auto = on
            else:
                self.settings.current_auto = on

    def set_rate(self, seconds: float) -> None:
        with self.lock:
            self._forbid_during_integration()
            match = next((r for r in UPDATE_RATES_S if math.isclose(r, seconds, rel_tol=1e-6)), None)
            if match is None:
                raise ScpiError(222, f"{seconds} s is not an update rate")
            self.advance()
            if match != self.settings.rate_s:
                # A new rate restarts the update cycle from now.
                self.settings.rate_s = match
                self._anchor_s = self.clock.now()
                self._last_update = 0
                self._epoch += 1

    def set_hold(self, on: bool) -> None:
        with self.lock:
            self._held = self.advance() if on else None
            self.settings.numeric_hold = on

    def output_reading(self) -> physics.Reading:
        with self.lock:
            latest = self.advance()
            return self._held if self._held is not None else latest

    # ------------------------------------------------------------------ integration
    def integrate_start(self) -> None:
        with self.lock:
            self.advance()
            if self.integration.state == "START":
                raise ScpiError(842)
            if self.integration.state == "TIMEUP":
                raise ScpiError(813)
            self.integration.state = "START"

    def integrate_stop(self) -> None:
        with self.lock:
            self.advance()
            if self.integration.state != "START":
                raise ScpiError(844)
            self.integration.state = "STOP"

    def integrate_reset(self) -> None:
        with self.lock:
            self.advance()
            if self.integration.state == "START":
                raise ScpiError(845)
            self.integration = Integration()

    def integration_state(self) -> str:
        with self.lock:
            self.advance()
            return self.integration.state

    # ------------------------------------------------------------------ waiting
    def wait_for_event(self, bit: int, stop: threading.Event | None = None) -> bool:
        """:COMMunicate:WAIT: block until the latched extended event ``bit`` is set (True) or give up."""
        waited = 0.0
        while waited <= self.options.wait_cap_s:
            with self.lock:
                self.advance()
                if self.eesr_latched & (1 << bit):
                    return True
                delay = self.seconds_to_next_update() + 1e-4
            if stop is not None and stop.is_set():
                return False
            self.clock.sleep(delay, stop)
            waited += delay
        return False

    # ------------------------------------------------------------------ numeric items
    def item_value(self, function: str, element: int, r: physics.Reading) -> tuple[float, float]:
        """(value, display step) of one numeric item for reading ``r``; NaN for 'none' and unknown."""
        if function == "NONE" or element != 1:
            return math.nan, 1.0
        u_step = physics.resolution(r.voltage_range_v)
        i_step = physics.resolution(r.current_range_a)
        p_step = physics.resolution(r.power_range_w)
        it = self.integration
        table: dict[str, tuple[float, float]] = {
            "U": (r.voltage_v, u_step),
            "I": (r.current_a, i_step),
            "P": (r.power_w, p_step),
            "S": (r.apparent_va, p_step),
            "Q": (r.reactive_var, p_step),
            "LAMBDA": (r.power_factor, 1e-4),
            "PHI": (r.phase_deg, 0.01),
            "FU": (r.freq_u_hz, 1e-3),
            "FI": (r.freq_i_hz, 1e-3),
            "UPPEAK": (r.voltage_peak_v, u_step),
            "UMPEAK": (-r.voltage_peak_v, u_step),
            "IPPEAK": (r.current_peak_a, i_step),
            "IMPEAK": (-r.current_peak_a, i_step),
            # For sine waves p(t) swings between P - S and P + S.
            "PPPEAK": (r.power_w + r.apparent_va, p_step),
            "PMPEAK": (r.power_w - r.apparent_va, p_step),
            "WH": (it.wh, 1e-6),
            "WHP": (it.whp, 1e-6),
            "WHM": (it.whm, 1e-6),
            "AH": (it.ah, 1e-6),
            "AHP": (it.ahp, 1e-6),
            "AHM": (it.ahm, 1e-6),
            "TIME": (float(int(it.elapsed_s)), 1.0),
            "MATH": (math.nan, 1.0),
            "URANGE": (r.voltage_range_v, u_step),
            "IRANGE": (r.current_range_a, i_step),
        }
        return table.get(function, (math.nan, 1.0))
