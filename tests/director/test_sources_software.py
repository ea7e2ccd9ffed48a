"""Software meters: "unavailable, with a reason" on machines without them (this one), the NVML
energy-counter arithmetic on the recorded H200 trace through an injected fake ``pynvml`` (unit
test only), RAPL powercap on a fake sysfs tree, and a real-GPU check where NVML exists."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlpower.director.errors import AnalyzerLost, SourceUnavailable
from mlpower.director.software_meters import NvmlSource, RaplSource, nvml_status, rapl_status
from mlpower.director.sources import AnalyzerSource, open_source
from mlpower.schema import SampleFlag


def _machine_has_nvml() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no usable NVML here
        return False


HAS_NVML = _machine_has_nvml()


# --------------------------------------------------------------------------- this machine


@pytest.mark.skipif(HAS_NVML, reason="this machine has NVML; the real-GPU test covers it")
def test_nvml_is_unavailable_here_with_a_reason() -> None:
    source = open_source("nvml")
    assert isinstance(source, NvmlSource) and isinstance(source, AnalyzerSource)
    with pytest.raises(SourceUnavailable) as info:
        source.open()
    assert info.value.kind == "nvml"
    assert "NVIDIA" in info.value.reason or "nvidia" in info.value.reason
    available, reason = nvml_status(0)
    assert not available and reason == info.value.reason
    assert source.info.tier == "informative" and source.info.kind == "nvml"


@pytest.mark.skipif(Path("/sys/class/powercap").is_dir(), reason="this machine has powercap")
def test_rapl_is_unavailable_here_with_a_reason() -> None:
    source = open_source("rapl")
    assert isinstance(source, RaplSource)
    with pytest.raises(SourceUnavailable, match="powercap") as info:
        source.open()
    assert info.value.kind == "rapl"
    assert rapl_status() == (False, info.value.reason)


def test_nvml_without_nvidia_ml_py_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # an installation without nvidia-ml-py
    with pytest.raises(SourceUnavailable, match="nvidia-ml-py"):
        NvmlSource().open()


# --------------------------------------------------------------------------- a fake pynvml on the trace


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


class TraceNvml:
    """A stand-in ``pynvml`` module that replays the recorded H200 trace on a virtual clock."""

    NVMLError = NVMLError
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_DRIVER_NOT_LOADED = 9
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_GPU_IS_LOST = 15
    NVML_ERROR_UNINITIALIZED = 1

    def __init__(self, rows: list[dict[str, str]], *, init_error: int = 0, devices: int = 1) -> None:
        self.t = [float(r["unix_s"]) for r in rows]
        self.rows = rows
        self.now = self.t[0]
        self.init_error, self.devices = init_error, devices
        self.no_counter = False
        self.lost = False
        self.counter_offset = 0

    # the virtual clock
    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def _row(self) -> dict[str, str]:
        lo, hi = 0, len(self.t) - 1
        while lo < hi:  # last row at or before now
            mid = (lo + hi + 1) // 2
            if self.t[mid] <= self.now:
                lo = mid
            else:
                hi = mid - 1
        return self.rows[lo]

    def _check(self) -> None:
        if self.lost:
            raise NVMLError(self.NVML_ERROR_GPU_IS_LOST)

    # the pynvml API used by NvmlSource
    def nvmlInit(self) -> None:  # noqa: N802
        if self.init_error:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:  # noqa: N802
        pass

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return self.devices

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:  # noqa: N802
        return f"gpu{index}"

    def nvmlDeviceGetName(self, handle: str) -> str:  # noqa: N802
        return "NVIDIA H200"

    def nvmlDeviceGetSerial(self, handle: str) -> str:  # noqa: N802
        raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return "580.159.04"

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:  # noqa: N802
        self._check()
        return int(self._row()["power_mW"])

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:  # noqa: N802
        self._check()
        if self.no_counter:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return int(self._row()["energy_mJ"]) + self.counter_offset

    def nvmlDeviceGetFieldValues(self, handle: str, ids: list[int]) -> list[SimpleNamespace]:  # noqa: N802
        self._check()
        assert ids == [186]
        return [SimpleNamespace(nvmlReturn=0, value=SimpleNamespace(uiVal=int(self._row()["power_instant_mW"])))]


@pytest.fixture(scope="module")
def trace_rows(trace_csv: Path) -> list[dict[str, str]]:
    with trace_csv.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trace_summary(trace_csv: Path) -> dict:
    return json.loads(trace_csv.with_name("h200_summary.json").read_text())


def replay(rows: list[dict[str, str]], power: str) -> tuple[list, NvmlSource, TraceNvml]:
    fake = TraceNvml(rows)
    source = NvmlSource(0, interval_s=1.0, power=power, nvml_module=fake, clock=fake.clock, sleep=fake.sleep)
    source.open()
    source.start("trace")
    readings = []
    while fake.now + 1.0 <= fake.t[-1]:
        readings.append(source.read_sample())
    return readings, source, fake


def phase_at(rows: list[dict[str, str]], t: float) -> str:
    return next(r["phase"] for r in reversed(rows) if float(r["unix_s"]) <= t)


def test_nvml_counter_power_matches_the_trace_summary(trace_rows: list, trace_summary: dict) -> None:
    readings, source, fake = replay(trace_rows, "counter")
    assert source.info.model == "NVIDIA H200" and source.info.firmware == "driver 580.159.04"
    assert source.info.tier == "informative" and source.info.serial == ""
    assert len(readings) >= 60
    assert readings[0].power_w is not None  # start() took the counter baseline
    for r in readings:
        assert r.flags & SampleFlag.SOFTWARE_METER
        assert (r.voltage_v, r.current_a, r.voltage_range_v, r.uncertainty_w) == (None, None, None, None)
        assert "energy_mJ=" in r.raw
    # whole-trace energy: sum of P x dt equals the counter delta exactly
    first, last = int(trace_rows[0]["energy_mJ"]), int(fake._row()["energy_mJ"])
    assert source.energy_j == pytest.approx((last - first) / 1000.0)
    assert sum(r.power_w * 1.0 for r in readings) == pytest.approx(source.energy_j, rel=1e-9)
    # per phase, the 1 s counter powers agree with the summary's energy_counter_W (phase edges excluded)
    for phase in ("idle0", "matmul_bf16", "resnet50_fp16_bs256"):
        inner = [r.power_w for r in readings if phase_at(trace_rows, r.t_utc_s - 1.0) == phase == phase_at(
            trace_rows, r.t_utc_s)]  # fmt: skip
        assert len(inner) >= 5
        assert sum(inner) / len(inner) == pytest.approx(trace_summary["results"][phase]["energy_counter_W"], rel=0.03)


def test_nvml_usage_and_instant_modes(trace_rows: list, trace_summary: dict) -> None:
    usage, source, _ = replay(trace_rows, "usage")
    instant, _, _ = replay(trace_rows, "instant")
    assert all("power_mW=" in r.raw for r in usage) and all("power_instant_mW=" in r.raw for r in instant)
    assert usage[0].power_w == pytest.approx(int(trace_rows[0]["power_mW"]) / 1000, abs=1.0)
    assert source.energy_j is not None and source.energy_j > 0  # the counter is tracked in every mode

    def mean(rs: list, phase: str) -> float:
        values = [r.power_w for r in rs if phase_at(trace_rows, r.t_utc_s) == phase]
        return sum(values) / len(values)

    # the averaged board power lags after the matmul phase; the instantaneous one does not
    assert mean(usage, "idle1") > 1.2 * mean(instant, "idle1")
    assert mean(instant, "idle1") == pytest.approx(trace_summary["results"]["idle1"]["avg_instant_W"], rel=0.1)


def test_nvml_counter_reset_is_missing_not_negative(trace_rows: list) -> None:
    fake = TraceNvml(trace_rows)
    source = NvmlSource(power="counter", nvml_module=fake, clock=fake.clock, sleep=fake.sleep)
    source.open()
    source.start("x")
    assert source.read_sample().usable
    fake.counter_offset = -10_000_000  # the driver was reloaded: the counter restarted
    r = source.read_sample()
    assert r.power_w is None and r.flags & SampleFlag.MISSING and not r.usable
    assert source.read_sample().usable  # the next interval is fine again


def test_nvml_gpu_lost_mid_run(trace_rows: list) -> None:
    fake = TraceNvml(trace_rows)
    source = NvmlSource(nvml_module=fake, clock=fake.clock, sleep=fake.sleep)
    source.open()
    source.start("x")
    source.read_sample()
    fake.lost = True
    with pytest.raises(AnalyzerLost, match="GPU lost"):
        source.read_sample()


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ({"init_error": 12}, "libnvidia-ml.so"),
        ({"init_error": 9}, "driver is not loaded"),
        ({"devices": 0}, "no GPU with index 0 (0 GPU(s)"),
    ],
)
def test_nvml_unavailable_reasons(trace_rows: list, setup: dict, reason: str) -> None:
    fake = TraceNvml(trace_rows, **setup)
    with pytest.raises(SourceUnavailable, match=re.escape(reason)):
        NvmlSource(nvml_module=fake).open()
    assert nvml_status(0, nvml_module=fake)[0] is False


def test_nvml_without_energy_counter(trace_rows: list) -> None:
    fake = TraceNvml(trace_rows)
    fake.no_counter = True
    with pytest.raises(SourceUnavailable, match="no energy counter"):
        NvmlSource(power="counter", nvml_module=fake).open()
    source = NvmlSource(power="usage", nvml_module=fake, clock=fake.clock, sleep=fake.sleep)
    source.open()
    source.start("x")
    assert source.read_sample().usable and source.energy_j is None  # power still, no made-up energy


def test_nvml_bad_options() -> None:
    with pytest.raises(ValueError):
        NvmlSource(power="guess")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        NvmlSource(interval_s=0.01)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_NVML, reason="needs an NVIDIA GPU with NVML")
def test_real_nvml_power_against_its_energy_counter() -> None:
    source = NvmlSource(0, interval_s=0.2)
    source.open()
    try:
        source.start("gpu")
        readings = [source.read_sample() for _ in range(15)]
    finally:
        source.close()
    assert all(r.usable and r.flags & SampleFlag.SOFTWARE_METER for r in readings)
    if source.energy_j is not None:
        span = readings[-1].t_utc_s - readings[0].t_utc_s
        mean_power = sum(r.power_w for r in readings) / len(readings)
        assert source.energy_j / (span + 0.2) == pytest.approx(mean_power, rel=0.25)


# --------------------------------------------------------------------------- RAPL on a fake sysfs tree


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def powercap(tmp_path: Path, zones: dict[str, tuple[str, int, int | None]]) -> Path:
    root = tmp_path / "powercap"
    for directory, (name, energy, top) in zones.items():
        z = root / directory
        z.mkdir(parents=True)
        (z / "name").write_text(name + "\n")
        (z / "energy_uj").write_text(f"{energy}\n")
        if top is not None:
            (z / "max_energy_range_uj").write_text(f"{top}\n")
    return root


def set_energy(root: Path, zone: str, value: int) -> None:
    (root / zone / "energy_uj").write_text(f"{value}\n")


def test_rapl_package_power_with_counter_wrap(tmp_path: Path) -> None:
    root = powercap(tmp_path, {
        "intel-rapl:0": ("package-0", 1_000_000, 262_143_328_850),
        "intel-rapl:0:0": ("core", 500_000, 262_143_328_850),
        "intel-rapl:1": ("package-1", 262_143_000_000, 262_143_328_850),
        "intel-rapl:2": ("psys", 5, None),
    })  # fmt: skip
    clock = FakeClock()
    source = RaplSource("", interval_s=1.0, powercap_root=root, clock=clock, sleep=clock.sleep)
    source.open()
    assert source.names == ["package-0", "package-1"]  # top-level packages only: no core, no psys
    assert source.info.kind == "rapl" and source.info.tier == "informative"
    source.start("x")
    set_energy(root, "intel-rapl:0", 1_000_000 + 65_000_000)  # 65 J
    set_energy(root, "intel-rapl:1", 670_000_000 - 329_150)  # wrapped: 329 150 + 1 to the top + the rest
    r = source.read_sample()
    wrapped_j = (262_143_328_850 + 1 - 262_143_000_000 + 670_000_000 - 329_150) / 1e6
    assert r.power_w == pytest.approx(65.0 + wrapped_j)
    assert r.flags == SampleFlag.SOFTWARE_METER and r.voltage_v is None and r.uncertainty_w is None
    assert source.energy_j == pytest.approx(65.0 + wrapped_j)
    assert "intel-rapl:0=" in r.raw


def test_rapl_zone_by_name_and_directory(tmp_path: Path) -> None:
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 0, 1000), "intel-rapl:0:2": ("dram", 10, 1000)})
    for zone in ("dram", "intel-rapl:0:2"):
        source = RaplSource(zone, powercap_root=root)
        source.open()
        assert source.names == ["dram"]
    assert rapl_status("dram", powercap_root=root) == (True, "RAPL powercap intel-rapl:0:2 (dram)")


def test_rapl_decrease_without_known_range_is_missing(tmp_path: Path) -> None:
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 5000, None)})
    clock = FakeClock()
    source = RaplSource(powercap_root=root, clock=clock, sleep=clock.sleep)
    source.open()
    source.start("x")
    set_energy(root, "intel-rapl:0", 10)
    r = source.read_sample()
    assert r.power_w is None and r.flags & SampleFlag.MISSING


@pytest.mark.parametrize(
    ("zones", "zone", "reason"),
    [
        ({}, "", "no RAPL zones"),
        ({"intel-rapl:0": ("package-0", 0, 10)}, "gpu", "zone 'gpu' not found"),
        ({"intel-rapl:1": ("psys", 0, 10)}, "", "no top-level package zone"),
    ],
)
def test_rapl_unavailable_reasons(tmp_path: Path, zones: dict, zone: str, reason: str) -> None:
    root = powercap(tmp_path, zones)
    root.mkdir(exist_ok=True)
    with pytest.raises(SourceUnavailable, match=reason):
        RaplSource(zone, powercap_root=root).open()


def test_rapl_permission_denied_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 0, 10)})
    real = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if self.name == "energy_uj":  # what an unprivileged user gets since Linux 5.10
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    with pytest.raises(SourceUnavailable, match="permission denied.*root"):
        RaplSource(powercap_root=root).open()


def test_rapl_zone_vanishing_mid_run_is_lost(tmp_path: Path) -> None:
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 0, 10)})
    clock = FakeClock()
    source = RaplSource(powercap_root=root, clock=clock, sleep=clock.sleep)
    source.open()
    source.start("x")
    (root / "intel-rapl:0" / "energy_uj").unlink()
    with pytest.raises(AnalyzerLost):
        source.read_sample()


def test_software_meters_pace_in_real_time(tmp_path: Path) -> None:
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 0, 10**12)})
    source = RaplSource(interval_s=0.1, powercap_root=root)
    source.open()
    source.start("x")
    t0 = time.monotonic()
    times = [source.read_sample().t_utc_s for _ in range(3)]
    assert time.monotonic() - t0 >= 0.25  # paced: never faster than the interval (slower is the machine's)
    assert all(b - a > 0.07 for a, b in zip(times, times[1:], strict=False))
    assert not math.isnan(times[0])
