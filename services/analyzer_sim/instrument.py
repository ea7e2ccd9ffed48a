"""The simulated WT310E/WT332E/WT333E's state: settings, the update engine, the error queue, status
and integration.

No sockets here: the transports feed command lines to ``mlpower.analyzer_sim.scpi``, which calls
this object. Readings are computed lazily per update interval from the load model and the pure
physics, with an RNG seeded by (seed, update number), so replies do not depend on how often a
client polls, and readings stay frozen between updates as on the real meter.

A multi-element model (``Identity.model`` WT332E or WT333E, ``mlpower.analyzer_sim.models``) has
one reading, one pair of ranges and one set of energy sums per element; the load reaches the
elements through an ``ElementFeed`` (the SUT's split over its PSUs) and the Σ function sums them
(``physics.sigma_reading``). Element 1's values are what the single-element code paths read.
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
from mlpower.analyzer_sim.models import MeterModel, meter_model
from mlpower.analyzer_sim.scpi_errors import ERROR_QUEUE_DEPTH, ScpiError
from mlpower.analyzer_sim.split import ElementFeed, element_feed

DEFAULT_ITEMS: tuple[str, ...] = ("U", "I", "P", "S", "Q", "LAMBDA", "PHI", "FU", "FI")
UPDATE_RATES_S: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)

EESR_UPD, EESR_ITG, EESR_OVR1, EESR_POV1, EESR_POA1 = 0, 1, 6, 7, 8
EESR_ELEMENT_STRIDE = 3  # OVR/POV/POA of element k sit 3 * (k - 1) bits above element 1's
SIGMA = 4  # the element number that stands for the Σ function in an item assignment


def default_items(elements: int) -> list[tuple[str, int]]:
    """The factory item map: U, I, P, S, Q, λ, φ, fU, fI of element 1 at items 1-9; a multi-element
    meter repeats the block every ten items for its other elements and then for Σ (wt310e.md §2.8)."""
    if elements == 1:
        return [(f, 1) for f in DEFAULT_ITEMS]
    items: list[tuple[str, int]] = []
    for element in [*range(1, elements + 1), SIGMA]:
        items += [(f, element) for f in DEFAULT_ITEMS] + [("NONE", 1)]
    return items[:-1]


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
class ElementRanges:
    """One element's ranges and auto-range switches."""

    voltage_range_v: float = 300.0
    current_range_a: float = 1.0
    voltage_auto: bool = True
    current_auto: bool = True


@dataclass
class MeasurementSettings:
    """What ``*RST`` restores (the communication settings survive it)."""

    crest_factor: str = "3"
    mode: str = "RMS"
    elements: list[ElementRanges] = field(default_factory=lambda: [ElementRanges()])
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

    # element 1, which the single-element clients (PTD's link, the control API) read
    @property
    def voltage_range_v(self) -> float:
        return self.elements[0].voltage_range_v

    @property
    def current_range_a(self) -> float:
        return self.elements[0].current_range_a

    @property
    def voltage_auto(self) -> bool:
        return self.elements[0].voltage_auto

    @property
    def current_auto(self) -> bool:
        return self.elements[0].current_auto


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
class Energy:
    wh: float = 0.0
    whp: float = 0.0
    whm: float = 0.0
    ah: float = 0.0
    ahp: float = 0.0
    ahm: float = 0.0


@dataclass
class Integration:
    """One integrator for the whole meter (one state, one timer), energy sums per element."""

    state: str = "RESET"  # RESET, START, STOP, TIMEUP, ERROR
    elapsed_s: float = 0.0
    energies: list[Energy] = field(default_factory=lambda: [Energy()])


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
        feed: ElementFeed | None = None,
    ) -> None:
        self.load, self.clock, self.seed = load, clock, seed
        self.identity, self.options = identity, options
        self.model: MeterModel = meter_model(identity.model)
        self.feed = feed or element_feed(self.model.elements)
        if len(self.feed.psus) != self.model.elements:
            raise ValueError(f"a {self.model.name} has {self.model.elements} element(s); the feed names "
                             f"{len(self.feed.psus)} PSU(s)")
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

    @property
    def elements(self) -> int:
        return self.model.elements

    def reset_measurement(self) -> None:
        with self.lock:
            n = self.elements
            self.settings = MeasurementSettings(elements=[ElementRanges() for _ in range(n)],
                                                items=default_items(n))
            self.integration = Integration(energies=[Energy() for _ in range(n)])
            self._epoch += 1
            self._anchor_s = self.clock.now()
            self._last_update = 0
            self._gap_left = [0] * n
            self._switching = [(False, False)] * n
            self._protection_count = [0] * n
            self._held: list[physics.Reading] | None = None
            self.readings: list[physics.Reading] = self._measure_now(self._anchor_s, 0)
            self._set_truth(self.load.power_w(self._anchor_s - self.start_s))

    @property
    def reading(self) -> physics.Reading:
        """Element 1's latest reading."""
        return self.readings[0]

    def _set_truth(self, sut_power_w: float) -> None:
        self.sut_true_power_w = sut_power_w
        self.true_element_w: tuple[float, ...] = self.feed.element_powers_w(sut_power_w)
        self.true_power_w = sum(self.true_element_w)  # what this meter's elements carry together

    def voltage_ranges(self) -> tuple[float, ...]:
        return self.model.voltage_ranges(self.settings.crest_factor)

    def current_ranges(self) -> tuple[float, ...]:
        return self.model.current_ranges(self.settings.crest_factor)

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
            for e, r in enumerate(self.readings):
                if r.overrange:
                    bits |= 1 << (EESR_OVR1 + EESR_ELEMENT_STRIDE * e)
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

    def _ranges(self, element: int) -> physics.Ranges:
        e = self.settings.elements[element]
        return physics.Ranges(e.voltage_range_v, e.current_range_a, self.settings.crest_factor)

    def _measure_now(self, t_s: float, k: int) -> list[physics.Reading]:
        rng = self._rng(k)
        powers = self.feed.element_powers_w(self.load.power_w(t_s - self.start_s))
        return [physics.measure(physics.true_signal(p, self.options.mains, rng), self._ranges(e), rng)
                for e, p in enumerate(powers)]

    def _update(self, k: int) -> None:
        s = self.settings
        t_s = self._anchor_s + k * s.rate_s
        rng = self._rng(k)  # one stream per update, drawn element after element
        self._set_truth(self.load.power_w(t_s - self.start_s))
        burst = self.faults.take_burst()  # a fault burst hits every element of the update
        readings = [self._update_element(e, p, rng, burst) for e, p in enumerate(self.true_element_w)]
        self.readings = readings
        self._integrate(readings, s.rate_s)
        self._latch(EESR_UPD)
        for e, new in enumerate(readings):
            shift = EESR_ELEMENT_STRIDE * e
            if new.overrange:
                self._latch(EESR_OVR1 + shift)
            if new.voltage_peak_over:
                self._latch(EESR_POV1 + shift)
            if new.current_peak_over:
                self._latch(EESR_POA1 + shift)

    def _update_element(self, e: int, true_w: float, rng: random.Random, burst: str | None) -> physics.Reading:
        signal = physics.true_signal(true_w, self.options.mains, rng)
        if self._gap_left[e] <= 0:
            self._switching[e] = self._auto_range(e, signal)
            if any(self._switching[e]):
                self._gap_left[e] = self.options.range_switch_gap_updates
        if self._gap_left[e] > 0:
            self._gap_left[e] -= 1
            new = physics.gap_reading(signal, self._ranges(e), *self._switching[e])
        else:
            new = physics.measure(signal, self._ranges(e), rng)
            self._low_range_protection(e, new)
        if burst == "nan":
            new = physics.gap_reading(signal, self._ranges(e), True, True)
            new = replace(new, voltage_v=math.nan, freq_u_hz=math.nan, gap=False)
        elif burst == "overrange":
            inf = math.inf
            new = replace(new, voltage_v=inf, current_a=inf, power_w=inf, apparent_va=inf, reactive_var=inf,
                          power_factor=math.nan, phase_deg=math.nan, voltage_overrange=True, current_overrange=True)
        return new

    def _auto_range(self, element: int, signal: physics.Signal) -> tuple[bool, bool]:
        # Each element ranges on its own signal (its ranges are its own, wt310e.md §2.8).
        cf = self.settings.crest_factor
        e = self.settings.elements[element]
        v_switch = i_switch = False
        if e.voltage_auto:
            new_v = physics.auto_range(signal.voltage_v, signal.voltage_peak_v, e.voltage_range_v,
                                       self.voltage_ranges(), cf)
            v_switch, e.voltage_range_v = new_v != e.voltage_range_v, new_v
        if e.current_auto:
            new_i = physics.auto_range(signal.current_a, signal.current_peak_a, e.current_range_a,
                                       self.current_ranges(), cf)
            i_switch, e.current_range_a = new_i != e.current_range_a, new_i
        return v_switch, i_switch

    def _low_range_protection(self, element: int, new: physics.Reading) -> None:
        # A fixed mA range under sustained excess is forced to 1 A (0.5 A at CF6) with auto range on
        # (wt310e.md 2.4): the client sees a range change it never asked for.
        cf = self.settings.crest_factor
        e = self.settings.elements[element]
        limit = physics.LOW_CURRENT_RANGE_LIMIT_A / (1 if cf == "3" else 2)
        if e.current_auto or e.current_range_a > limit or not new.current_overrange:
            self._protection_count[element] = 0
            return
        self._protection_count[element] += 1
        if self._protection_count[element] >= self.options.protection_updates:
            e.current_range_a = 1.0 if cf == "3" else 0.5
            e.current_auto = True
            self._protection_count[element] = 0

    def _integrate(self, readings: list[physics.Reading], dt_s: float) -> None:
        it = self.integration
        if it.state != "START" or dt_s <= 0:
            return
        timer = self.settings.integ_timer_s
        if timer > 0 and it.elapsed_s + dt_s >= timer:
            dt_s = max(0.0, timer - it.elapsed_s)
            it.state = "TIMEUP"
        it.elapsed_s += dt_s
        hours = dt_s / 3600.0
        for r, energy in zip(readings, it.energies, strict=True):
            if math.isfinite(r.power_w):
                energy.wh += r.power_w * hours
                if r.power_w >= 0:
                    energy.whp += r.power_w * hours
                else:
                    energy.whm += -r.power_w * hours
            if math.isfinite(r.current_a):
                energy.ah += r.current_a * hours
                energy.ahp += r.current_a * hours

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
            old_v, old_i = self.voltage_ranges(), self.current_ranges()
            s.crest_factor = cf
            new_v, new_i = self.voltage_ranges(), self.current_ranges()
            for e in s.elements:
                e.voltage_range_v = new_v[old_v.index(e.voltage_range_v)]
                e.current_range_a = new_i[old_i.index(e.current_range_a)]

    def _element_indices(self, element: int | None) -> range:
        """The elements a range command acts on: one (1-based), or all of them (None)."""
        if element is None:
            return range(self.elements)
        if not 1 <= element <= self.elements:
            raise ScpiError(114, f"element {element} (this {self.model.name} has {self.elements})")
        return range(element - 1, element)

    def set_voltage_range(self, volts: float, element: int | None = None) -> None:
        with self.lock:
            self._forbid_during_integration()
            indices = self._element_indices(element)
            match = next((c for c in self.voltage_ranges() if math.isclose(c, volts, rel_tol=1e-6)), None)
            if match is None:
                raise ScpiError(222, f"{volts} V is not a range at CF{self.settings.crest_factor}")
            self.advance()
            for index in indices:
                e = self.settings.elements[index]
                changed = match != e.voltage_range_v
                e.voltage_range_v, e.voltage_auto = match, False
                self._settle(index, changed, voltage=True)

    def set_current_range(self, amps: float, element: int | None = None) -> None:
        with self.lock:
            self._forbid_during_integration()
            indices = self._element_indices(element)
            match = next((c for c in self.current_ranges() if math.isclose(c, amps, rel_tol=1e-6)), None)
            if match is None:
                raise ScpiError(222, f"{amps} A is not a range at CF{self.settings.crest_factor} on a "
                                f"{self.model.name}")
            self.advance()
            for index in indices:
                e = self.settings.elements[index]
                changed = match != e.current_range_a
                e.current_range_a, e.current_auto = match, False
                self._settle(index, changed, voltage=False)

    def _settle(self, element: int, changed: bool, voltage: bool) -> None:
        # A commanded range change is not measured at once either (wt310e.md 2.5, fault 5).
        if changed and self.options.fixed_range_settle_updates > 0:
            v_switch, i_switch = self._switching[element] if self._gap_left[element] > 0 else (False, False)
            self._gap_left[element] = max(self._gap_left[element], self.options.fixed_range_settle_updates)
            self._switching[element] = (v_switch or voltage, i_switch or not voltage)

    def set_auto(self, channel: str, on: bool, element: int | None = None) -> None:
        with self.lock:
            self._forbid_during_integration()
            indices = self._element_indices(element)
            self.advance()
            for index in indices:
                e = self.settings.elements[index]
                if channel == "V":
                    e.voltage_auto = on
                else:
                    e.current_auto = on

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
            self.advance()
            self._held = list(self.readings) if on else None
            self.settings.numeric_hold = on

    def output_readings(self) -> list[physics.Reading]:
        """Every element's reading as the output shows it (held, or the latest)."""
        with self.lock:
            self.advance()
            return list(self._held if self._held is not None else self.readings)

    def output_reading(self) -> physics.Reading:
        return self.output_readings()[0]

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
            self.integration = Integration(energies=[Energy() for _ in range(self.elements)])

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
    def item_value(self, function: str, element: int, readings: list[physics.Reading]) -> tuple[float, float]:
        """(value, display step) of one numeric item of ``element`` (1-based, or SIGMA) in the
        elements' ``readings``; NaN for 'none', unknown functions and elements this model lacks."""
        if function == "NONE" or not (1 <= element <= len(readings) or element == SIGMA):
            return math.nan, 1.0
        if element == SIGMA:
            r = physics.sigma_reading(readings)
            energies = self.integration.energies
            it = Energy(*(sum(getattr(e, name) for e in energies) for name in ("wh", "whp", "whm", "ah", "ahp", "ahm")))
            p_step = physics.resolution(sum(x.power_range_w for x in readings))
        else:
            r = readings[element - 1]
            it = self.integration.energies[element - 1]
            p_step = physics.resolution(r.power_range_w)
        u_step = physics.resolution(r.voltage_range_v)
        i_step = physics.resolution(r.current_range_a)
        elapsed_s = self.integration.elapsed_s
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
            "TIME": (float(int(elapsed_s)), 1.0),
            "MATH": (math.nan, 1.0),
            "URANGE": (r.voltage_range_v, u_step),
            "IRANGE": (r.current_range_a, i_step),
        }
        return table.get(function, (math.nan, 1.0))
