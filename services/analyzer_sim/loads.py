"""Load models: the true power a simulated SUT draws at simulator time ``t_s`` (seconds since start).

Spec strings (the ``--load`` option):

* ``constant:WATTS``
* ``profile:IDLE_W:LOAD_W[:IDLE_S:RAMP_S:STEADY_S]``: idle, ramp up, steady, ramp down, repeated
* ``trace:CSV[:SCALE[:OFFSET_W]]``: replay a CSV with a time column (``unix_s``/``t_s``/``time_s``) and a
  power column (``power_w``, or ``power_instant_mW``/``power_mW`` in milliwatts), looped;
  wall power = board power * SCALE + OFFSET_W. CSV names a file inside the traces folder
  (``MLPOWER_SIM_TRACES_DIR``, by default the repository's ``shared/data/traces``): ``..``, symlinks
  and paths outside it are refused (``mlpower.confine``), and errors name the file, never its content.
* ``follow[:IDLE_W:LOAD_W]``: idle until the SUT agent says its workload runs (see ``follow.py``)
"""

from __future__ import annotations

import bisect
import csv
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlpower.analyzer_sim.errors import LoadSpecError
from mlpower.confine import PathRefused, open_confined
from mlpower.logtext import client_text
from mlpower.settings import DEFAULT_TRACES_DIR

DEFAULT_FOLLOW_IDLE_W = 120.0
DEFAULT_FOLLOW_LOAD_W = 450.0
MAX_ABS_VALUE = 1e9  # watts or seconds: far beyond any analyzer range, and small enough to stay finite in physics


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
    """A recorded power trace replayed in a loop from its first sample; step-wise (sample and hold).

    ``path`` names a file inside ``traces_dir`` (relative, or absolute within it)."""

    def __init__(self, path: Path, scale: float = 1.0, offset_w: float = 0.0, spec: str = "",
                 traces_dir: Path = DEFAULT_TRACES_DIR) -> None:
        self.spec = spec or f"trace:{path}:{scale}:{offset_w}"
        self.times_s, self.powers_w = _read_trace(traces_dir, path)
        self.scale, self.offset_w = scale, offset_w
        self.duration_s = self.times_s[-1] - self.times_s[0]

    def power_w(self, t_s: float) -> float:
        t = self.times_s[0] + (t_s % self.duration_s if self.duration_s > 0 else 0.0)
        index = max(0, bisect.bisect_right(self.times_s, t) - 1)
        return self.powers_w[index] * self.scale + self.offset_w


def _read_trace(traces_dir: Path, name: Path) -> tuple[list[float], list[float]]:
    # Errors name the file and the rule it breaks, never a byte of it: a header or a cell quoted
    # back would disclose a file's content to whoever asked for it.
    shown = client_text(str(name))
    try:
        opened = open_confined(traces_dir, name, what="trace", folder="the traces folder (MLPOWER_SIM_TRACES_DIR)",
                               newline="", encoding="utf-8")
    except PathRefused as exc:
        raise LoadSpecError(str(exc)) from None
    try:
        with opened as handle:
            reader = csv.DictReader(handle)
            fields = {column.strip().lower(): column for column in (reader.fieldnames or [])}
            time_col = next((fields[c] for c in _TIME_COLUMNS if c in fields), None)
            power = next(((fields[c], k) for c, k in _POWER_COLUMNS if c in fields), None)
            if time_col is None or power is None:
                raise LoadSpecError(f"trace {shown}: its header needs a time column {_TIME_COLUMNS} and a power "
                                    f"column {tuple(c for c, _ in _POWER_COLUMNS)}")
            power_col, factor = power
            times, powers = [], []
            for row_number, row in enumerate(reader, start=2):
                try:
                    t_s, p_w = float(row[time_col]), float(row[power_col]) * factor
                except (TypeError, ValueError):
                    raise LoadSpecError(f"trace {shown} line {row_number}: the time or power cell is not a "
                                        "number") from None
                if not (math.isfinite(t_s) and math.isfinite(p_w)):
                    raise LoadSpecError(f"trace {shown} line {row_number}: a non-finite number")
                times.append(t_s)
                powers.append(p_w)
    except UnicodeDecodeError:
        raise LoadSpecError(f"trace {shown}: not UTF-8 text") from None
    except csv.Error as exc:
        raise LoadSpecError(f"trace {shown} line {reader.line_num}: not CSV ({type(exc).__name__})") from None
    except OSError as exc:
        raise LoadSpecError(f"trace {shown}: {exc.strerror or type(exc).__name__}") from None
    if len(times) < 2:
        raise LoadSpecError(f"trace {shown}: needs at least two rows")
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
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise LoadSpecError(f"load spec {client_text(spec)}: {client_text(part)} is not a number") from None
        if not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:
            raise LoadSpecError(f"load spec {client_text(spec)}: {client_text(part)} is not a finite number "
                                f"within +-{MAX_ABS_VALUE:g}")
        values.append(value)
    return values


def parse_load(spec: str, traces_dir: Path = DEFAULT_TRACES_DIR) -> LoadModel:
    """Build a load model from its spec string; a bad spec raises LoadSpecError with the reason.

    A ``trace:`` file is looked for inside ``traces_dir`` only."""
    kind, _, rest = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "constant":
        values = _floats(rest.split(":"), spec) if rest else []
        if len(values) != 1:
            raise LoadSpecError(f"load spec {client_text(spec)}: expected constant:WATTS")
        return ConstantLoad(values[0], spec=spec)
    if kind == "profile":
        values = _floats(rest.split(":"), spec) if rest else []
        if len(values) not in (2, 5) or any(v < 0 for v in values[2:]):
            raise LoadSpecError(f"load spec {client_text(spec)}: "
                                "expected profile:IDLE_W:LOAD_W[:IDLE_S:RAMP_S:STEADY_S]")
        if len(values) == 5:
            return PhaseProfile(values[0], values[1], values[2], values[3], values[4], spec=spec)
        return PhaseProfile(values[0], values[1], spec=spec)
    if kind == "trace":
        if not rest:
            raise LoadSpecError(f"load spec {client_text(spec)}: expected trace:CSV[:SCALE[:OFFSET_W]]")
        # Split numbers off the right so a path may contain colons.
        path_text, numbers = rest, list[float]()
        for _ in range(2):
            head, sep, tail = path_text.rpartition(":")
            if not sep:
                break
            try:
                float(tail)
            except ValueError:
                break
            numbers[:0] = _floats([tail], spec)
            path_text = head
        scale = numbers[0] if numbers else 1.0
        offset_w = numbers[1] if len(numbers) > 1 else 0.0
        return TraceLoad(Path(path_text), scale, offset_w, spec=spec, traces_dir=traces_dir)
    if kind == "follow":
        values = _floats(rest.split(":"), spec) if rest else [DEFAULT_FOLLOW_IDLE_W, DEFAULT_FOLLOW_LOAD_W]
        if len(values) != 2:
            raise LoadSpecError(f"load spec {client_text(spec)}: expected follow[:IDLE_W:LOAD_W]")
        return FollowLoad(ConstantLoad(values[0]), ConstantLoad(values[1]), spec=spec)
    raise LoadSpecError(f"load spec {client_text(spec)}: unknown kind {client_text(kind)} "
                        "(constant, profile, trace, follow)")


class SwitchableLoad:
    """The simulator's load: one model at a time, replaceable while the simulator runs."""

    def __init__(self, model: LoadModel, traces_dir: Path = DEFAULT_TRACES_DIR) -> None:
        self._model = model
        self.traces_dir = traces_dir
        self._lock = threading.Lock()

    @property
    def current(self) -> LoadModel:
        return self._model

    @property
    def spec(self) -> str:
        return self._model.spec

    def set_load(self, spec_or_model: str | LoadModel) -> LoadModel:
        model = parse_load(spec_or_model, self.traces_dir) if isinstance(spec_or_model, str) else spec_or_model
        with self._lock:
            self._model = model
        return model

    def power_w(self, t_s: float) -> float:
        return self._model.power_w(t_s)
