"""Analyzer sources behind one small interface, the ``Reading`` they produce, and a factory.

Every source (the WT310E over SCPI, PTDaemon, NVML, RAPL) is opened from one resource string::

    "TCPIP0::127.0.0.1::10001::SOCKET"   WT310E over pyvisa (pyvisa-py), raw LF socket (the simulator)
    "TCPIP::192.168.1.123::INSTR"        WT310E over pyvisa, VXI-11 (the real meter's Ethernet)
    "USB0::0x0B21::0x0025::<SN>::INSTR"  WT310E over pyvisa, USBTMC
    "GPIB0::20::INSTR"                   WT310E over pyvisa, GP-IB
    "ASRL/dev/pts/3::INSTR"              WT310E over pyvisa's serial resource
    "/dev/ttyUSB0", "/dev/pts/3", "COM3" WT310E over pyserial (RS-232; 9600 8N1 unless told)
    "ptd://127.0.0.1:8888"               a running PTDaemon (``launch=True`` starts one first)
    "nvml", "nvml:1"                     NVML GPU board power (informative)
    "rapl", "rapl:intel-rapl:0"          Linux RAPL powercap zone (informative)
    "<any of the above>#2"               element 2 of a multi-element meter (``channels``)

A source blocks in ``read_sample`` until the analyzer's next update and raises ``AnalyzerLost``
when the analyzer is gone (within about 2 s at 1 s updates). Values the analyzer could not
measure are ``None`` with ``SampleFlag`` bits set, never numbers.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mlpower.director.channels import split_element
from mlpower.director.errors import ResourceError
from mlpower.schema import SampleFlag, SourceInfo

if TYPE_CHECKING:
    from mlpower.director.ptd_source import PtdStopResult

__all__ = [
    "AnalyzerSource",
    "PtdDriven",
    "Reading",
    "Resource",
    "open_source",
    "parse_resource",
]


@dataclass(frozen=True)
class Reading:
    """One sample, timestamped in UTC seconds since the epoch.

    ``None`` means "no value" (with ``MISSING`` or ``OVERRANGE`` in ``flags``) or "not measured
    by this source" (a software meter has no voltage). Ranges: ``None`` = unknown; with auto
    ranges the range in use is reported where the analyzer says it.
    """

    t_utc_s: float
    power_w: float | None
    voltage_v: float | None
    current_a: float | None
    power_factor: float | None
    voltage_range_v: float | None
    current_range_a: float | None
    uncertainty_w: float | None
    flags: int
    raw: str = ""

    @property
    def usable(self) -> bool:
        """True when the power value may be averaged: present and neither missing nor overrange."""
        return self.power_w is not None and not (self.flags & (SampleFlag.MISSING | SampleFlag.OVERRANGE))

    def has(self, flag: SampleFlag) -> bool:
        return bool(self.flags & flag)

    def replace(self, **changes: Any) -> Reading:
        return dataclasses.replace(self, **changes)

    def row(self) -> dict[str, float | int | None]:
        """The sample as a row of ``mlpower.schema.SAMPLE_COLUMNS`` (without ``raw``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "raw"}


@runtime_checkable
class AnalyzerSource(Protocol):
    """What the session drives; every concrete source implements exactly this (and may add more)."""

    info: SourceInfo
    min_interval_s: float

    def open(self) -> None: ...

    def identify(self) -> str: ...

    def set_ranges(self, voltage_range_v: float | None, current_range_a: float | None) -> None: ...

    def start(self, mark: str) -> None: ...

    def read_sample(self) -> Reading: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class PtdDriven(Protocol):
    """What a source that drives SPEC PTDaemon adds, so the session records it as power-dev does:
    the command/reply log (server.json ``ptd_messages``), PTDaemon's own console (ptd_logs.txt),
    its stop results (spl.txt from ``RL``, ptd_out.txt from ``Watts``/``Uncertainty``), the command
    line (``ptd_config``) and the restoring of the initial ranges at the end."""

    last_stop: PtdStopResult | None

    def ptd_messages(self) -> list[dict[str, str]]: ...

    def console_text(self) -> str: ...

    def ptd_config(self) -> dict[str, Any]: ...

    def restore_initial_ranges(self) -> None: ...


# --------------------------------------------------------------------------- resource strings

_VISA_RE = re.compile(r"^(TCPIP\d*|USB\d*|GPIB\d*|ASRL|VICP\d*|PRLGX-TCPIP\d*|PRLGX-ASRL\d*)(::|[^:])", re.I)
_SERIAL_RE = re.compile(r"^(/dev/\S+|COM\d+)$", re.I)
_PTD_RE = re.compile(r"^ptd://(?P<host>\[[^\]]+\]|[^:/\s]+):(?P<port>\d{1,5})/?$", re.I)
_NVML_RE = re.compile(r"^nvml(?::(?P<index>\d+))?$", re.I)
_RAPL_RE = re.compile(r"^rapl(?::(?P<zone>[A-Za-z0-9_\-:.]+))?$", re.I)


@dataclass(frozen=True)
class Resource:
    """A parsed resource string: which kind of source, and its address parts."""

    kind: str  # "visa", "serial", "ptd", "nvml", "rapl"
    address: str  # the resource as given (VISA string, device path, host:port, zone)
    host: str = ""
    port: int = 0
    index: int = 0
    element: int | None = None  # ``#n`` after the resource: the element (channel) of a multi-element analyzer


def parse_resource(resource: str) -> Resource:
    """Classify a resource string; a string that names no source raises ``ResourceError``."""
    text = resource.strip() if isinstance(resource, str) else ""
    text, element = split_element(text)
    if element is not None:
        return dataclasses.replace(parse_resource(text), element=element)
    if not text:
        raise ResourceError("empty analyzer resource; expected e.g. TCPIP0::127.0.0.1::10001::SOCKET")
    if m := _PTD_RE.match(text):
        port = int(m["port"])
        if not 0 < port < 65536:
            raise ResourceError(f"PTDaemon port out of range in {text!r}")
        return Resource("ptd", text, host=m["host"].strip("[]"), port=port)
    if text.lower().startswith("ptd:"):
        raise ResourceError(f"bad PTDaemon resource {text!r}; expected ptd://host:port")
    if m := _NVML_RE.match(text):
        return Resource("nvml", text, index=int(m["index"] or 0))
    if m := _RAPL_RE.match(text):
        return Resource("rapl", m["zone"] or "")
    serial, visa_serial = _SERIAL_RE.match(text) is not None, text.upper().startswith("ASRL")
    if (serial or visa_serial) and ".." in re.split(r"[/:]", text):
        # A device path that climbs out of /dev names a file, not a meter: refused when the setting is read.
        raise ResourceError(f"serial device in {text!r} must lie under /dev (no '..')")
    if serial:
        return Resource("serial", text)
    if _VISA_RE.match(text) and (visa_serial or "::" in text):
        return Resource("visa", text)
    raise ResourceError(
        f"unknown analyzer resource {text!r}; expected a VISA resource (TCPIP0::host::10001::SOCKET, "
        "TCPIP::host::INSTR, USB0::...::INSTR, GPIB0::n::INSTR, ASRL...::INSTR), a serial device path, "
        "ptd://host:port, nvml[:index] or rapl[:zone]"
    )


def open_source(resource: str, **options: Any) -> AnalyzerSource:
    """Build (but do not open) the source a resource string names.

    Options are passed to the concrete source; unknown options raise ``ResourceError``. Common
    ones: ``update_interval_s`` (WT310E ``:RATE``), ``timeout_s``; for serial ``baudrate``; for
    PTDaemon ``launch``, ``ptd_command``, ``device_type``, ``device_port``, ``log_path``; for
    software meters ``interval_s``.
    """
    parsed = parse_resource(resource)
    if parsed.element is not None:
        if parsed.kind not in ("visa", "serial"):
            raise ResourceError(f"{resource!r}: a {parsed.kind} source has no elements (#n)")
        options = {**options, "element": parsed.element}
    if parsed.kind in ("visa", "serial"):
        from mlpower.director.wt310e import WT310E

        _check_options(resource, WT310E.option_names(parsed.kind), options)
        return WT310E.from_resource(parsed, **options)
    if parsed.kind == "ptd":
        from mlpower.director.ptd_source import PtdConfig, PtdSource

        _check_options(resource, PtdConfig.option_names() - {"host", "port"}, options)
        return PtdSource(PtdConfig(host=parsed.host, port=parsed.port, **options))
    if parsed.kind == "nvml":
        from mlpower.director.software_meters import NvmlSource

        _check_options(resource, _parameters(NvmlSource) - {"index"}, options)
        return NvmlSource(index=parsed.index, **options)
    from mlpower.director.software_meters import RaplSource

    _check_options(resource, _parameters(RaplSource) - {"zone"}, options)
    return RaplSource(zone=parsed.address, **options)


def _parameters(cls: type) -> set[str]:
    return {
        name
        for name, p in inspect.signature(cls).parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def _check_options(resource: str, accepted: set[str], options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ResourceError(
            f"bad option for {resource!r}: {', '.join(unknown)} (accepted: {', '.join(sorted(accepted))})"
        )
