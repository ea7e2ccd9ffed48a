"""Load models: the true power a simulated SUT draws at simulator time ``t_s`` (seconds since start).

Spec strings (the ``--load`` option):

* ``constant:WATTS``
* ``profile:IDLE_W:LOAD_W[:IDLE_S:RAMP_S:STEADY_S]``: idle, ramp up, steady, ramp down, repeated
* ``trace:CSV[:SCALE[:OFFSET_W]]``: replay a CSV with a time column (``unix_s``/``t_s``/``time_s``) and a
  power column (``power_w``, or ``power_instant_mW``/``power_mW`` in milliwatts), looped;
  wall power = board power * SCALE + OFFSET_W
* ``follow[:IDLE_W:LOAD_W]``: idle until the SUT agent says its workload runs (see ``follow.py``)
"""

from __future__ import annotations

import bisect
import csv
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlpower.analyzer_sim.errors import LoadSpecError

DEFAULT_FOLLOW_IDLE_W = 120.0
DEFAULT_FOLLOW_LOAD_W = 450.0


class LoadModel(Protocol):
    @property
    def spec(self) -> str: ...

    def power_w(self, t_s: float) -> float: ...


@dataclass(frozen=True)
class ConstantLoad:
    watts: float
    spec: str = ""

    def power_w(self, t_s: float) -> float:
        return self.watts


@dataclass(frozen=True)
class PhaseProfile:
    """idle -> ramp up -> steady -> ramp down, repeated: the shape of a benchmark run."""

    idle_w: float
    load_w: float
    idle_s: float = 10.0
    ramp_s: float = 5.0
    steady_s: float = 60.0
    spec: str = ""

    def power_w(self, t_s: float) -> float:
        period = 2 * self.idle_s + 2 * self.ramp_s + self.steady_s
        if period <= 0:
            return self.load_w
        t = t_s % period
        span = self.load_w - self.idle_w
        if t < self.idle_s:
            return self.idle_w
        t -= self.idle_s
        if t < self.ramp_s:
            return self.idle_w + span * t / self.ramp_s
        t -= self.ramp_s
        if t < self.steady_s:
            return self.load_w
        t -= self.steady_s
        if t < self.ramp_s:
            return self.load_w - span * t / self.ramp_s
        return self.idle_w


_TIME_COLUMNS = ("t_s", "time_s", "unix_s", "time")
_POWER_COLUMNS = (("power_w", 1.0), ("power_instant_mw", 1e-3), ("power_mw", 1e-3), ("power", 1.0))


class TraceLoad:
    """A recorded power trace replayed in a loop from its first sample; step-wise (sample and hold)."""

    def __init__(self, path: Path, scale: float = 1.0, offset_w: float = 0.0, spec: str = "") -> None:
        self.spec = spec or f"trace:{path}:{scale}:{offset_w}"
        self.times_s, self.powers_w = _read_trace(path)
        self.scale, self.offset_w = scale, offset_w
        self.duration_s = self.times_s[-1] - self.times_s[0]

    def power_w(self, t_s: float) -> float:
        t = self.times_s[0] + (t_s % self.duration_s if self.duration_s > 0 else 0.0)
        index = max(0, bisect.bisect_right(self.times_s, t) - 1)
        return self.powers_w[index] * self.scale + self.offset_w


def _read_trace(path: Path) -> tuple[list[float], list[float]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = {name.strip().lower(): name for name in (reader.fieldnames or [])}
            time_col = next((fields[c] for c in _TIME_COLUMNS if c in fields), None)
            power = next(((fields[c], k) for c, k in _POWER_COLUMNS if c in fields), None)
            if time_col is None or power is None:
                raise LoadSpecError(f"trace {path}: needs a time column {_TIME_COLUMNS} and a power column "
                                    f"{tuple(c for c, _ in _POWER_COLUMNS)}, has {tuple(fields)}")
            power_col, factor = power
            times, powers = [], []
            for row_number, row in enumerate(reader, start=2):
                try:
                    times.append(float(row[time_col]))
                    powers.append(float(row[power_col]) * factor)
                except (TypeError, ValueError) as exc:
                    raise LoadSpecError(f"trace {path} line {row_number}: {exc}") from exc
    except OSError as exc:
        raise LoadSpecError(f"trace {path}: {exc.strerror or exc}") from exc
    if len(times) < 2:
        raise LoadSpecError(f"trace {path}: needs at least two rows")
    order = sorted(range(len(times)), key=times.__getitem__)
    return [times[i] for i in order], [powers[i] for i in order]


class FollowLoad:
    """Idle or load power, switched by the SUT agent's workload phase events."""

    LOAD_STATES = frozenset({"started", "power_begin"})

    def __init__(self, idle: LoadModel, load: LoadModel, spec: str = "follow") -> None:
        self.idle, self.load, self.spec = idle, load, spec
        self.active = False
        self.last_state = ""

    def on_phase(self, state: str) -> None:
        # The workload draws power from its start until LoadGen's timed run ends; what follows
        # (power_end, finished, failed) is the SUT going back to idle.
        self.last_state = state
        self.active = state in self.LOAD_STATES

    def power_w(self, t_s: float) -> float:
        return (self.load if self.active else self.idle).power_w(t_s)


def _floats(parts: list[str], spec: str) -> list[float]:
    try:
        return [float(p) for p in parts]
    except ValueError as exc:
        raise LoadSpecError(f"load spec {spec!r}: {exc}") from exc


def parse_load(spec: str) -> LoadModel:
    """Build a load model from its spec string; a bad spec raises LoadSpecError with the reason."""
    kind, _, rest = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "constant":
        values = _floats(rest.split(":"), spec) if rest else []
        if len(values) != 1:
            raise LoadSpecError(f"load spec {spec!r}: expected constant:WATTS")
        return ConstantLoad(values[0], spec=spec)
    if kind == "profile":
        values = _floats(rest.split(":"), spec) if rest else []
        if len(values) not in (2, 5) or any(v < 0 for v in values[2:]):
            raise LoadSpecError(f"load spec {spec!r}: expected profile:IDLE_W:LOAD_W[:IDLE_S:RAMP_S:STEADY_S]")
        if len(values) == 5:
            return PhaseProfile(values[0], values[1], values[2], values[3], values[4], spec=spec)
        return PhaseProfile(values[0], values[1], spec=spec)
    if kind == "trace":
        if not rest:
            raise LoadSpecError(f"load spec {spec!r}: expected trace:CSV[:SCALE[:OFFSET_W]]")
        # Split numbers off the right so a path may contain colons.
        path_text, numbers = rest, list[float]()
        for _ in range(2):
            head, sep, tail = path_text.rpartition(":")
            if not sep:
                break
            try:
                numbers.insert(0, float(tail))
            except ValueError:
                break
            path_text = head
        scale = numbers[0] if numbers else 1.0
        offset_w = numbers[1] if len(numbers) > 1 else 0.0
        return TraceLoad(Path(path_text), scale, offset_w, spec=spec)
    if kind == "follow":
        values = _floats(rest.split(":"), spec) if rest else [DEFAULT_FOLLOW_IDLE_W, DEFAULT_FOLLOW_LOAD_W]
        if len(values) != 2:
            raise LoadSpecError(f"load spec {spec!r}: expected follow[:IDLE_W:LOAD_W]")
        return FollowLoad(ConstantLoad(values[0]), ConstantLoad(values[1]), spec=spec)
    raise LoadSpecError(f"load spec {spec!r}: unknown kind {kind!r} (constant, profile, trace, follow)")


class SwitchableLoad:
    """The simulator's load: one model at a time, replaceable while the simulator runs."""

    def __init__(self, model: LoadModel) -> None:
        self._model = model
        self._lock = threading.Lock()

    @property
    def current(self) -> LoadModel:
        return self._model

    @property
    def spec(self) -> str:
        return self._model.spec

    def set_load(self, spec_or_model: str | LoadModel) -> LoadModel:
        model = parse_load(spec_or_model) if isinstance(spec_or_model, str) else spec_or_model
        with self._lock:
            self._model = model
        return model

    def power_w(self, t_s: float) -> float:
        return self._model.power_w(t_s)
