"""Software power meters: NVML (GPU board power, energy counter) and Linux RAPL powercap.

Both are *informative*: every Reading carries ``SampleFlag.SOFTWARE_METER`` and the source's tier
is "informative". They have no voltage, current, power factor, range or datasheet uncertainty:
those stay ``None``. Where the machine lacks them, ``open`` raises ``SourceUnavailable`` with the
reason (no driver, no GPU, no powercap, no permission); ``nvml_status`` / ``rapl_status`` say the
same without raising. They never produce a made-up number.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from mlpower.director.errors import AnalyzerError, AnalyzerLost, SourceUnavailable
from mlpower.director.sources import Reading
from mlpower.schema import SampleFlag, SourceInfo

POWERCAP_ROOT = Path("/sys/class/powercap")


Clock = Callable[[], float]
Sleep = Callable[[float], None]


class _Pacer:
    """Sleeps to fixed deadlines ``start + k * interval`` (resynchronising when late)."""

    def __init__(self, interval_s: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        self.interval_s = interval_s
        self.clock, self.sleep = clock, sleep
        self.next: float | None = None

    def reset(self) -> None:
        self.next = self.clock() + self.interval_s

    def wait(self) -> None:
        now = self.clock()
        if self.next is None:
            self.next = now + self.interval_s
        if self.next > now:
            self.sleep(self.next - now)
            self.next += self.interval_s
        else:
            self.next = now + self.interval_s


def _software_reading(t: float, power_w: float | None, raw: str, extra_flags: int = 0) -> Reading:
    flags = SampleFlag.SOFTWARE_METER | extra_flags
    if power_w is None:
        flags |= SampleFlag.MISSING
    return Reading(t, power_w, None, None, None, None, None, None, int(flags), raw)


# --------------------------------------------------------------------------- NVML

NvmlPower = Literal["usage", "instant", "counter"]
FI_DEV_POWER_INSTANT = 186


def _nvml_reason(nvml: Any, exc: Exception) -> str:
    code = getattr(exc, "value", None)
    if code == getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", 12):
        return "the NVML library (libnvidia-ml.so) is not installed: no NVIDIA driver on this machine"
    if code == getattr(nvml, "NVML_ERROR_DRIVER_NOT_LOADED", 9):
        return "the NVIDIA driver is not loaded"
    if code == getattr(nvml, "NVML_ERROR_NO_PERMISSION", 4):
        return f"no permission to query NVML ({exc})"
    if code == getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", 3):
        return f"not supported by this GPU or driver ({exc})"
    return f"NVML error: {exc}"


class NvmlSource:
    """GPU board power through nvidia-ml-py (``pynvml``), plus the GPU's total-energy counter.

    ``power`` chooses what ``power_w`` is: "usage" (``nvmlDeviceGetPowerUsage``, on Hopper a ~1 s
    trailing average), "instant" (field ``NVML_FI_DEV_POWER_INSTANT``) or "counter" (the mean power
    over the last interval from the energy counter). Whatever the choice, the energy counter is
    read with every sample where the GPU has one: ``energy_j`` is the energy since ``start``.
    """

    min_interval_s = 0.1  # NVML refreshes power about 10 times a second

    def __init__(
        self,
        index: int = 0,
        *,
        interval_s: float = 1.0,
        power: NvmlPower = "usage",
        nvml_module: ModuleType | Any | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        """``clock`` (UTC seconds) and ``sleep`` replace the wall clock, for replaying a recorded trace."""
        if power not in ("usage", "instant", "counter"):
            raise ValueError("power must be 'usage', 'instant' or 'counter'")
        if interval_s < self.min_interval_s:
            raise ValueError(f"NVML interval below {self.min_interval_s} s")
        self.index = index
        self.interval_s = interval_s
        self.power = power
        self._nvml: Any = nvml_module
        self._handle: Any = None
        self._initialised = False
        self.has_counter = False
        self.info = SourceInfo(kind="nvml", address=f"nvml:{index}", channel=index, tier="informative")
        self._clock: Clock = clock or time.time
        self._pacer = _Pacer(interval_s, clock or time.monotonic, sleep or time.sleep)
        self._start_counter_mj: int | None = None
        self._last: tuple[float, int] | None = None  # (t_utc_s, counter mJ)
        self.energy_j: float | None = None

    def _module(self) -> Any:
        if self._nvml is None:
            try:
                self._nvml = importlib.import_module("pynvml")
            except ImportError as exc:
                raise SourceUnavailable("nvml", f"nvidia-ml-py (pynvml) is not installed: {exc}") from exc
        return self._nvml

    def open(self) -> None:
        if self._initialised:
            return
        nvml = self._module()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise SourceUnavailable("nvml", _nvml_reason(nvml, exc)) from exc
        self._initialised = True
        try:
            count = nvml.nvmlDeviceGetCount()
            if not 0 <= self.index < count:
                raise SourceUnavailable("nvml", f"no GPU with index {self.index} ({count} GPU(s) on this machine)")
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self.index)
            self._probe_power(nvml)
            self._probe_counter(nvml)
            self.info = SourceInfo(
                kind="nvml",
                model=_text(self._optional(nvml.nvmlDeviceGetName, self._handle)),
                serial=_text(self._optional(nvml.nvmlDeviceGetSerial, self._handle)),
                firmware="driver " + _text(self._optional(nvml.nvmlSystemGetDriverVersion)),
                address=f"nvml:{self.index}",
                channel=self.index,
                tier="informative",
            )
        except nvml.NVMLError as exc:
            self.close()
            raise SourceUnavailable("nvml", _nvml_reason(nvml, exc)) from exc
        except BaseException:
            self.close()
            raise

    def _optional(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._nvml.NVMLError:
            return ""

    def _probe_power(self, nvml: Any) -> None:
        if self.power == "usage":
            nvml.nvmlDeviceGetPowerUsage(self._handle)
        elif self.power == "instant":
            self._instant_mw(nvml)

    def _probe_counter(self, nvml: Any) -> None:
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self.has_counter = True
        except nvml.NVMLError as exc:
            self.has_counter = False
            if self.power == "counter":
                raise SourceUnavailable("nvml", "no energy counter: " + _nvml_reason(nvml, exc)) from exc

    def _instant_mw(self, nvml: Any) -> int:
        values = nvml.nvmlDeviceGetFieldValues(self._handle, [FI_DEV_POWER_INSTANT])
        fv = values[0]
        if fv.nvmlReturn != 0:
            raise nvml.NVMLError(fv.nvmlReturn)
        return int(fv.value.uiVal)

    def identify(self) -> str:
        return f"NVML GPU {self.index}: {self.info.model} (serial {self.info.serial or '?'}, {self.info.firmware})"

    def set_ranges(self, voltage_range_v: float | None, current_range_a: float | None) -> None:
        """A software meter has no ranges; nothing to set."""

    def _counter(self) -> int | None:
        if not self.has_counter:
            return None
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def start(self, mark: str) -> None:
        if not self._initialised:
            raise AnalyzerError("nvml: not open")
        counter = self._read(self._counter)
        t = self._clock()
        self._start_counter_mj = counter
        self._last = (t, counter) if counter is not None else None
        self.energy_j = 0.0 if counter is not None else None
        self._pacer.reset()

    def _read(self, fn: Any, *args: Any) -> Any:
        nvml = self._nvml
        try:
            return fn(*args)
        except nvml.NVMLError as exc:
            if getattr(exc, "value", None) in (
                getattr(nvml, "NVML_ERROR_GPU_IS_LOST", 15),
                getattr(nvml, "NVML_ERROR_UNINITIALIZED", 1),
            ):
                raise AnalyzerLost(f"nvml:{self.index}: GPU lost ({exc})") from exc
            raise

    def read_sample(self) -> Reading:
        if not self._initialised:
            raise AnalyzerError("nvml: not open")
        self._pacer.wait()
        nvml = self._nvml
        raw: list[str] = []
        power_w: float | None = None
        t = self._clock()
        try:
            counter = self._read(self._counter)
        except nvml.NVMLError as exc:
            counter = None
            raw.append(f"energy error: {exc}")
        counter_power = self._counter_power(t, counter)
        if counter is not None:
            raw.append(f"energy_mJ={counter}")
        try:
            if self.power == "usage":
                mw = self._read(nvml.nvmlDeviceGetPowerUsage, self._handle)
                raw.append(f"power_mW={mw}")
                power_w = mw / 1000.0
            elif self.power == "instant":
                mw = self._read(self._instant_mw, nvml)
                raw.append(f"power_instant_mW={mw}")
                power_w = mw / 1000.0
            else:
                power_w = counter_power
        except nvml.NVMLError as exc:
            raw.append(f"power error: {exc}")
            power_w = None
        return _software_reading(t, power_w, ",".join(raw))

    def _counter_power(self, t: float, counter: int | None) -> float | None:
        """Mean power since the previous counter read; ``None`` on the first read or a counter reset."""
        if counter is None:
            return None
        previous = self._last
        self._last = (t, counter)
        if self._start_counter_mj is None:
            self._start_counter_mj = counter
        if counter >= self._start_counter_mj:
            self.energy_j = (counter - self._start_counter_mj) / 1000.0
        if previous is None:
            return None
        dt = t - previous[0]
        delta = counter - previous[1]
        if dt <= 0 or delta < 0:  # clock step, or the counter restarted (driver reload)
            return None
        return delta / 1000.0 / dt

    def stop(self) -> None:
        pass

    def close(self) -> None:
        if self._initialised:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 - shutting down
                pass
            self._initialised = False
        self._handle = None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value) if value is not None else ""


def _probe(source: NvmlSource | RaplSource) -> tuple[bool, str]:
    """(available, reason or description) of a software meter, without keeping it open."""
    try:
        source.open()
    except SourceUnavailable as exc:
        return False, exc.reason
    try:
        return True, source.identify()
    finally:
        source.close()


def nvml_status(index: int = 0, nvml_module: Any | None = None) -> tuple[bool, str]:
    """(available, reason or description) for ``nvml:<index>`` without keeping it open."""
    return _probe(NvmlSource(index, nvml_module=nvml_module))


# --------------------------------------------------------------------------- RAPL


class RaplSource:
    """CPU package (or any RAPL zone) power from the Linux powercap energy counters.

    ``zone`` is a powercap directory (``intel-rapl:0``, ``intel-rapl:0:1``), a zone name
    (``package-0``, ``dram``, ``psys``), or "" for the sum of all top-level ``package-*`` zones.
    Power is the counter difference over the interval, with the counter's wrap-around handled.
    """

    min_interval_s = 0.1

    def __init__(
        self,
        zone: str = "",
        *,
        interval_s: float = 1.0,
        powercap_root: str | os.PathLike[str] | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if interval_s < self.min_interval_s:
            raise ValueError(f"RAPL interval below {self.min_interval_s} s")
        self.zone = zone
        self.interval_s = interval_s
        self.root = Path(powercap_root) if powercap_root is not None else POWERCAP_ROOT
        self.zones: list[Path] = []
        self.names: list[str] = []
        self._max_uj: list[int | None] = []
        self._last: tuple[float, list[int]] | None = None
        self._start: list[int] | None = None
        self.energy_j: float | None = None
        self._clock: Clock = clock or time.time
        self._pacer = _Pacer(interval_s, clock or time.monotonic, sleep or time.sleep)
        self._open = False
        self.info = SourceInfo(kind="rapl", address=f"rapl:{zone}" if zone else "rapl", tier="informative")

    def _all_zones(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if (p / "energy_uj").exists() or (p / "name").exists())

    def _resolve(self) -> list[Path]:
        if not self.root.is_dir():
            raise SourceUnavailable(
                "rapl",
                f"no {self.root}: this kernel exposes no powercap interface (not Linux, or a container without it)",
            )
        zones = self._all_zones()
        if not zones:
            raise SourceUnavailable(
                "rapl", f"no RAPL zones under {self.root} (CPU without RAPL, or intel_rapl not loaded)"
            )
        if not self.zone:
            chosen = [z for z in zones if z.name.count(":") == 1 and _read_text(z / "name").startswith("package")]
            if not chosen:
                raise SourceUnavailable(
                    "rapl", f"no top-level package zone under {self.root}: {[z.name for z in zones]}"
                )
            return chosen
        by_dir = [z for z in zones if z.name == self.zone]
        by_name = [z for z in zones if _read_text(z / "name") == self.zone]
        chosen = by_dir or by_name
        if not chosen:
            raise SourceUnavailable("rapl", f"RAPL zone {self.zone!r} not found; zones: {[z.name for z in zones]}")
        return chosen[:1]

    def _counters(self) -> list[int]:
        values = []
        for z in self.zones:
            path = z / "energy_uj"
            try:
                values.append(int(path.read_text().strip()))
            except PermissionError as exc:
                raise SourceUnavailable(
                    "rapl",
                    f"permission denied reading {path} (root only since Linux 5.10); grant read access or run as root",
                ) from exc
            except FileNotFoundError as exc:
                raise AnalyzerLost(f"rapl: {path} disappeared") from exc
            except ValueError as exc:
                raise AnalyzerError(f"rapl: {path} does not hold an integer") from exc
            except OSError as exc:
                raise AnalyzerLost(f"rapl: reading {path} failed: {exc}") from exc
        return values

    def open(self) -> None:
        self.zones = self._resolve()
        self.names = [_read_text(z / "name") or z.name for z in self.zones]
        self._max_uj = []
        for z in self.zones:
            text = _read_text(z / "max_energy_range_uj")
            self._max_uj.append(int(text) if text.isdigit() else None)
        self._counters()  # permission check now, not at the first sample
        self._open = True
        self.info = SourceInfo(
            kind="rapl",
            model="+".join(self.names),
            address="rapl:" + "+".join(z.name for z in self.zones),
            tier="informative",
        )

    def identify(self) -> str:
        return f"RAPL powercap {', '.join(f'{z.name} ({n})' for z, n in zip(self.zones, self.names, strict=True))}"

    def set_ranges(self, voltage_range_v: float | None, current_range_a: float | None) -> None:
        """A software meter has no ranges; nothing to set."""

    def start(self, mark: str) -> None:
        if not self._open:
            raise AnalyzerError("rapl: not open")
        counters = self._counters()
        self._start = counters
        self._last = (self._clock(), counters)
        self.energy_j = 0.0
        self._pacer.reset()

    def _delta(self, i: int, new: int, old: int) -> int | None:
        if new >= old:
            return new - old
        top = self._max_uj[i]
        if top is None:
            return None
        return new + (top + 1 - old)  # wrapped once

    def read_sample(self) -> Reading:
        if not self._open:
            raise AnalyzerError("rapl: not open")
        self._pacer.wait()
        t = self._clock()
        counters = self._counters()
        raw = ",".join(f"{z.name}={c}" for z, c in zip(self.zones, counters, strict=True))
        previous = self._last
        self._last = (t, counters)
        if previous is None:
            self._start = counters
            self.energy_j = 0.0
            return _software_reading(t, None, raw)
        deltas = [self._delta(i, c, p) for i, (c, p) in enumerate(zip(counters, previous[1], strict=True))]
        dt = t - previous[0]
        if any(d is None for d in deltas) or dt <= 0:
            return _software_reading(t, None, raw)
        joules = sum(d for d in deltas if d is not None) / 1e6
        self.energy_j = (self.energy_j or 0.0) + joules
        return _software_reading(t, joules / dt, raw)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self._open = False


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def rapl_status(zone: str = "", powercap_root: str | os.PathLike[str] | None = None) -> tuple[bool, str]:
    """(available, reason or description) for ``rapl[:zone]``."""
    return _probe(RaplSource(zone, powercap_root=powercap_root))
