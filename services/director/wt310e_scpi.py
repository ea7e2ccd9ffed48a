"""The WT310E's SCPI, pure: the command table the driver sends and the parser of its replies
(wt310e.md §1, §3). No I/O: text in, values out; a reply that does not parse raises
``ReplyParseError`` with the raw text."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from mlpower.director import ranges as rng
from mlpower.director.errors import RangeError, ReplyParseError
from mlpower.director.sources import Reading
from mlpower.director.uncertainty import sample_uncertainty_w
from mlpower.schema import SampleFlag

# --------------------------------------------------------------------------- command table

COMMANDS: dict[str, str] = {
    # common (IEEE 488.2)
    "clear": "*CLS",
    "reset": "*RST",
    "identify": "*IDN?",
    # communication and status
    "remote": ":COMMUNICATE:REMOTE {state}",
    "header": ":COMMUNICATE:HEADER {state}",
    "verbose": ":COMMUNICATE:VERBOSE {state}",
    "qmessage": ":STATUS:QMESSAGE {state}",
    "error": ":STATUS:ERROR?",
    "filter_update": ":STATUS:FILTER1 FALL",
    "eesr": ":STATUS:EESR?",
    "wait_update": ":COMMUNICATE:WAIT 1",
    # input
    "mode": ":INPUT:MODE {mode}",
    "crest_factor": ":INPUT:CFACTOR {cf}",
    "voltage_auto": ":INPUT:VOLTAGE:AUTO {state}",
    "voltage_range": ":INPUT:VOLTAGE:RANGE {value}V",
    "current_auto": ":INPUT:CURRENT:AUTO {state}",
    "current_range": ":INPUT:CURRENT:RANGE {value}A",
    "ranges": ":INPUT:VOLTAGE:RANGE?;AUTO?;:INPUT:CURRENT:RANGE?;AUTO?",
    # update rate
    "rate": ":RATE {token}",
    "rate_query": ":RATE?",
    # numeric output
    "numeric_format": ":NUMERIC:FORMAT ASCII",
    "numeric_number": ":NUMERIC:NORMAL:NUMBER {n}",
    "numeric_items": ":NUMERIC:NORMAL:{items}",
    "numeric_item_query": ":NUMERIC:NORMAL:ITEM{n}?",
    "values": ":NUMERIC:NORMAL:VALUE?",
}


def command(name: str, **params: Any) -> str:
    """The SCPI text of a named command, e.g. ``command("voltage_range", value=300)``."""
    template = COMMANDS[name]
    try:
        return template.format(**{k: _fmt_param(v) for k, v in params.items()})
    except KeyError as exc:
        raise ValueError(f"command {name!r} needs parameter {exc}") from exc


def _fmt_param(value: Any) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


RATE_TOKENS: dict[float, str] = {0.1: "100MS", 0.25: "250MS", 0.5: "500MS", 1.0: "1S", 2.0: "2S", 5.0: "5S"}
"""Update intervals (s) and their ``:RATE`` tokens (wt310e.md §1.7)."""

# Numeric items: (function, reading field). Element number appended when the command is built.
BASE_ITEMS: tuple[tuple[str, str], ...] = (
    ("P", "power_w"),
    ("U", "voltage_v"),
    ("I", "current_a"),
    ("LAMBDA", "power_factor"),
)
RANGE_ITEMS: tuple[tuple[str, str], ...] = (("URANGE", "voltage_range_v"), ("IRANGE", "current_range_a"))

EESR_UPD = 1 << 0
EESR_OVRS = 1 << 3  # computation overflow
EESR_OVR1 = 1 << 6  # element 1 V or I overrange
EESR_POV1 = 1 << 7  # element 1 peak voltage overrange
EESR_POA1 = 1 << 8  # element 1 peak current overrange


def items_command(functions: tuple[str, ...], element: int = 1) -> str:
    units = ";".join(f"ITEM{i} {fn},{element}" for i, fn in enumerate(functions, start=1))
    return command("numeric_items", items=units)


def rate_for_interval(interval_s: float) -> float:
    """The meter update interval to use for a sampling interval: the interval itself when the meter
    has it, else the largest rate that divides it (3 s -> 1 s), else the largest one below it."""
    if not math.isfinite(interval_s) or interval_s < min(RATE_TOKENS) * (1 - 1e-9):
        raise RangeError(f"sampling interval {interval_s:g} s is below the WT310E's fastest update (0.1 s)")
    rates = sorted(RATE_TOKENS, reverse=True)
    for rate in rates:
        if math.isclose(rate, interval_s, rel_tol=1e-9):
            return rate
    for rate in rates:
        k = interval_s / rate
        if rate < interval_s and math.isclose(k, round(k), rel_tol=1e-9):
            return rate
    return next(rate for rate in rates if rate <= interval_s)


def rate_token(interval_s: float) -> str:
    for value, token in RATE_TOKENS.items():
        if math.isclose(value, interval_s, rel_tol=1e-9):
            return token
    raise RangeError(
        f"the WT310E has no {interval_s:g} s update interval; choose one of " + ", ".join(f"{v:g}" for v in RATE_TOKENS)
    )


# --------------------------------------------------------------------------- reply parser

_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_HEADER_RE = re.compile(r"^:?[A-Za-z*][A-Za-z0-9:]*\s+(?P<data>.+)$")
INF_SENTINEL = 9.9e37  # FLOAT-format overrange marker, also seen in ASCII by analogy
NAN_SENTINEL = 9.91e37  # "no data"


class Value:
    """Status of one numeric item: a number, ``NAN`` (no data) or ``INF`` (overrange)."""

    OK = "ok"
    NAN = "nan"
    INF = "inf"


@dataclass(frozen=True)
class Identity:
    manufacturer: str
    model: str
    serial: str
    firmware: str
    raw: str

    @property
    def is_wt300_family(self) -> bool:
        return self.manufacturer.upper() == "YOKOGAWA" and self.model.upper().startswith(("WT31", "WT33"))


def _data(unit: str) -> str:
    """A response unit without its header (when ``:COMMUNICATE:HEADER ON`` put one there)."""
    unit = unit.strip()
    m = _HEADER_RE.match(unit)
    if m and not _NUMBER_RE.match(unit.split()[0]):
        return m["data"].strip()
    return unit


def parse_identity(reply: str) -> Identity:
    """``YOKOGAWA,WT310E,C2PH13047V,F1.03`` -> Identity; anything else raises ``ReplyParseError``."""
    parts = [p.strip() for p in _data(reply).split(",")]
    if len(parts) != 4 or not all(parts[:2]):
        raise ReplyParseError("*IDN? reply is not <maker>,<model>,<serial>,<firmware>", reply)
    firmware = parts[3][1:] if parts[3][:1].upper() == "F" else parts[3]
    return Identity(parts[0], parts[1], parts[2], firmware, reply)


def parse_number(token: str, raw: str | None = None) -> tuple[float | None, str]:
    """One NR1/NR2/NR3 token -> (value, status). NAN / INF tokens and the 9.9E+37 / 9.91E+37
    sentinels give (None, NAN|INF); anything else that is not a number raises ``ReplyParseError``."""
    t = token.strip()
    upper = t.upper().lstrip("+")
    if upper in ("NAN", "-NAN"):
        return None, Value.NAN
    if upper in ("INF", "-INF", "INFINITY", "-INFINITY"):
        return None, Value.INF
    if not _NUMBER_RE.match(t):
        raise ReplyParseError(f"not a number: {token!r} in reply", raw if raw is not None else token)
    value = float(t)
    if abs(value) >= NAN_SENTINEL * (1 - 1e-6):
        return None, Value.NAN
    if abs(value) >= INF_SENTINEL * (1 - 1e-6):
        return None, Value.INF
    return value, Value.OK


def parse_numbers(reply: str, count: int | None = None) -> list[tuple[float | None, str]]:
    """A comma-separated ``:NUMERIC:NORMAL:VALUE?`` reply; ``count`` items are required when given."""
    body = reply.strip()
    if not body:
        raise ReplyParseError("empty numeric reply", reply)
    tokens = body.split(",")
    if count is not None and len(tokens) != count:
        raise ReplyParseError(f"expected {count} values, got {len(tokens)}", reply)
    return [parse_number(tok, reply) for tok in tokens]


def parse_bool(token: str, raw: str | None = None) -> bool:
    t = _data(token).upper()
    if t in ("1", "ON"):
        return True
    if t in ("0", "OFF"):
        return False
    raise ReplyParseError(f"not a boolean: {token!r}", raw if raw is not None else token)


def parse_float(token: str, raw: str | None = None) -> float:
    value, status = parse_number(_data(token), raw if raw is not None else token)
    if value is None:
        raise ReplyParseError(f"expected a number, got {status.upper()}", raw if raw is not None else token)
    return value


def parse_error(reply: str) -> tuple[int, str]:
    """``0,"No error"`` / ``113,"Undefined header"`` / ``113`` (QMESSAGE OFF) -> (code, message)."""
    body = _data(reply)
    code_text, _, message = body.partition(",")
    code_text = code_text.strip()
    if not re.fullmatch(r"[+-]?\d+", code_text):
        raise ReplyParseError('error-queue reply is not <code>[,"<message>"]', reply)
    message = message.strip()
    if len(message) >= 2 and message[0] == message[-1] == '"':
        message = message[1:-1]
    return int(code_text), message


@dataclass(frozen=True)
class RangeState:
    voltage_range_v: float
    voltage_auto: bool
    current_range_a: float
    current_auto: bool


def parse_ranges(reply: str) -> RangeState:
    """The reply to ``COMMANDS["ranges"]``: ``300.0E+00;0;500.0E-03;0`` (V range, V auto, I range, I auto)."""
    units = reply.strip().split(";")
    if len(units) != 4:
        raise ReplyParseError("ranges reply is not <V range>;<V auto>;<I range>;<I auto>", reply)
    return RangeState(
        parse_float(units[0], reply),
        parse_bool(units[1], reply),
        parse_float(units[2], reply),
        parse_bool(units[3], reply),
    )


def parse_rate(reply: str) -> float:
    """``1.0E+00`` or a token such as ``1S`` / ``100MS`` -> seconds."""
    body = _data(reply).upper()
    for value, token in RATE_TOKENS.items():
        if body == token:
            return value
    m = re.fullmatch(r"(\d+(?:\.\d*)?)(MS|S)", body)
    if m:
        return float(m[1]) / (1000.0 if m[2] == "MS" else 1.0)
    return parse_float(body, reply)


def parse_eesr(reply: str) -> int:
    body = _data(reply)
    if not re.fullmatch(r"\+?\d+", body):
        raise ReplyParseError("EESR reply is not an integer", reply)
    return int(body)


def build_reading(
    reply: str,
    fields: tuple[str, ...],
    *,
    t_utc_s: float,
    voltage_range_v: float | None,
    current_range_a: float | None,
    auto: bool,
    previous_ranges: tuple[float | None, float | None] | None = None,
    eesr: int = 0,
    crest_factor: str | int = 3,
    frequency_hz: float = 50.0,
    uncertainty_margin: float = 1.0,
) -> Reading:
    """Turn one ``VALUE?`` reply into a Reading. Pure.

    ``fields`` names the reading field of each item in order (``power_w``, ``voltage_v``, ...,
    optionally ``voltage_range_v``/``current_range_a``). NAN items become ``None`` + MISSING, INF
    items ``None`` + OVERRANGE; an RMS value beyond 140 % of its range, or EESR OVR1, is OVERRANGE.
    With ``auto`` the sample is AUTO_RANGE, and RANGE_CHANGE when the range differs from
    ``previous_ranges``. The uncertainty comes from the datasheet formula when the sample is clean.
    """
    parsed = parse_numbers(reply, len(fields))
    values: dict[str, float | None] = {}
    flags = SampleFlag.OK
    for name, (value, status) in zip(fields, parsed, strict=True):
        if status == Value.NAN:
            flags |= SampleFlag.MISSING
        elif status == Value.INF:
            flags |= SampleFlag.OVERRANGE
        values[name] = value
    v_range = values.pop("voltage_range_v", voltage_range_v)
    a_range = values.pop("current_range_a", current_range_a)
    if v_range is not None and v_range <= 0:
        v_range = None
    if a_range is not None and a_range <= 0:
        a_range = None
    power = values.get("power_w")
    volts = values.get("voltage_v")
    amps = values.get("current_a")
    pf = values.get("power_factor")
    if eesr & (EESR_OVR1 | EESR_OVRS):
        flags |= SampleFlag.OVERRANGE
    if rng.is_overrange(volts, v_range, crest_factor) or rng.is_overrange(amps, a_range, crest_factor):
        flags |= SampleFlag.OVERRANGE
    if auto:
        flags |= SampleFlag.AUTO_RANGE
        if previous_ranges is not None and (v_range, a_range) != previous_ranges:
            flags |= SampleFlag.RANGE_CHANGE
    uncertainty = None
    if not flags & (SampleFlag.MISSING | SampleFlag.OVERRANGE | SampleFlag.RANGE_CHANGE):
        uncertainty = sample_uncertainty_w(
            power,
            volts,
            amps,
            pf,
            v_range,
            a_range,
            crest_factor=crest_factor,
            frequency_hz=frequency_hz,
            margin=uncertainty_margin,
        )
    return Reading(
        t_utc_s=t_utc_s,
        power_w=power,
        voltage_v=volts,
        current_a=amps,
        power_factor=pf,
        voltage_range_v=v_range,
        current_range_a=a_range,
        uncertainty_w=uncertainty,
        flags=int(flags),
        raw=reply,
    )
