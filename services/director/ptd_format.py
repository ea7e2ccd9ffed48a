"""PTDaemon's replies and data-log lines, parsed (power-dev-protocol.md §3.3–§3.6); pure.

The line formats themselves (timestamps, sample lines) are ``mlpower.ptdformat``; here they are
read the way the director needs them, and a broken line becomes ``ReplyParseError`` once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from mlpower.ptdformat import PtdFormatError, SampleGroup, SampleLine, parse_sample_line, parse_value
from mlpower.schema import SampleFlag

from . import ranges as rng
from .errors import RangeError, ReplyParseError
from .sources import Reading
from .uncertainty import sample_uncertainty_w

HELLO = "Hello"
HELLO_REPLY = "Hello, PTDaemon here!"
DEFAULT_PORT = 8888
WT310_DEVICE_TYPE = 49


@dataclass(frozen=True)
class PtdIdentity:
    model: str  # e.g. "YokogawaWT310"
    version: str  # e.g. "1.11.1"
    fields: tuple[str, ...]
    raw: str

    @property
    def meter_idn(self) -> str:
        """The meter's own identity when PTD appends it (``YOKOGAWA;760401;0;F1.12``), else ""."""
        for f in reversed(self.fields):
            if f.upper().startswith("YOKOGAWA;"):
                return f
        return ""


def identify_checks_uncertainty(reply: str) -> bool:
    """Whether an ``Identify`` reply says PTDaemon estimates accuracy (the field after ``mode=...``,
    §3.3): what its start-up console line ``Uncertainty checking for <model> is activated`` states."""
    fields = [f.strip() for f in reply.split(",")]
    for i, f in enumerate(fields[:-1]):
        if f.startswith("mode="):
            return fields[i + 1] == "1"
    return False


def parse_identify(reply: str) -> PtdIdentity:
    fields = tuple(f.strip() for f in reply.split(","))
    if not fields or not fields[0] or fields[0].lower().startswith(("error", "unknown", "invalid")):
        raise ReplyParseError("Identify reply has no model", reply)
    version = ""
    for f in fields:
        if f.startswith("version="):
            version = f[len("version=") :].split("-", 1)[0]
            break
    return PtdIdentity(fields[0], version, fields, reply)


@dataclass(frozen=True)
class PtdRanges:
    amp_auto: int  # 1 on, 0 off, -1 unknown
    amp_range: float  # -1 unknown
    volt_auto: int
    volt_range: float
    amp_text: str
    volt_text: str

    @property
    def initial_amps(self) -> str:
        """What ``SR,A,`` restores at the end: the range text if auto is off and it is > 0, else Auto."""
        return self.amp_text if self.amp_auto == 0 and self.amp_range > 0 else "Auto"

    @property
    def initial_volts(self) -> str:
        return self.volt_text if self.volt_auto == 0 and self.volt_range > 0 else "Auto"


def parse_rr(reply: str) -> PtdRanges:
    """``Ranges,<ampAuto>,<ampRange>,<voltAuto>,<voltRange>`` (e.g. ``Ranges,1,1.000000,1,300.000000``)."""
    parts = [p.strip() for p in reply.split(",")]
    if len(parts) != 5 or parts[0] != "Ranges":
        raise ReplyParseError("RR reply is not Ranges,<ampAuto>,<ampRange>,<voltAuto>,<voltRange>", reply)
    try:
        return PtdRanges(int(parts[1]), float(parts[2]), int(parts[3]), float(parts[4]), parts[2], parts[4])
    except ValueError:
        raise ReplyParseError("RR reply has a non-numeric field", reply) from None


_RL_HEADER_RE = re.compile(r"^Last (\d+) samples?\b")


def parse_rl_header(reply: str) -> int:
    """``Last <N> samples`` -> N; the documented "no unread samples" replies -> 0."""
    m = _RL_HEADER_RE.match(reply.strip())
    if m:
        return int(m[1])
    if reply.strip().lower().startswith(("no unread", "insufficient", "no samples")):
        return 0
    raise ReplyParseError("RL reply is not 'Last <N> samples'", reply)


@dataclass(frozen=True)
class PtdStats:
    """A ``Watts`` or ``Uncertainty`` reply: avg, min, max and the counts, as PTD sent them."""

    kind: str
    values: tuple[float, ...]
    raw: str

    @property
    def avg(self) -> float:
        return self.values[0]


def parse_stats(reply: str, kind: Literal["Watts", "Uncertainty"]) -> PtdStats:
    parts = [p.strip() for p in reply.split(",")]
    if parts[0] != kind or len(parts) < 4:
        raise ReplyParseError(f"{kind} reply is not {kind},<avg>,<min>,<max>,...", reply)
    try:
        return PtdStats(kind, tuple(float(p) for p in parts[1:]), reply)
    except ValueError:
        raise ReplyParseError(f"{kind} reply has a non-numeric field", reply) from None


def parse_data_line(line: str) -> SampleLine | None:
    """A data-log or RL line (``mlpower.ptdformat.parse_sample_line``); a broken one raises
    ``ReplyParseError`` with the raw line."""
    try:
        return parse_sample_line(line)
    except PtdFormatError as exc:
        raise ReplyParseError(exc.reason, exc.raw) from None


def reading_of(sample: SampleLine, ranges: tuple[float | None, float | None], crest_factor: str | int,
               group: SampleGroup | None = None) -> Reading:
    """A data-log sample as a ``Reading``: PTD's "not available" is MISSING, values beyond the fixed
    ranges OVERRANGE; with fixed ranges the director adds each sample's datasheet uncertainty.
    ``group``: one channel's group of a multichannel line (default: the line's first group)."""
    group = sample.total if group is None else group
    values = {k: parse_value(getattr(group, k)) for k in ("watts", "volts", "amps", "pf")}
    flags = SampleFlag.OK
    if any(v is None for v in values.values()):
        flags |= SampleFlag.MISSING
    v_range, a_range = ranges
    auto = v_range is None or a_range is None
    if auto:
        flags |= SampleFlag.AUTO_RANGE
    if rng.is_overrange(values["volts"], v_range) or rng.is_overrange(values["amps"], a_range):
        flags |= SampleFlag.OVERRANGE
    uncertainty = None
    if not flags & (SampleFlag.MISSING | SampleFlag.OVERRANGE) and not auto:
        uncertainty = sample_uncertainty_w(values["watts"], values["volts"], values["amps"], values["pf"],
                                           v_range, a_range, crest_factor=crest_factor)
    return Reading(t_utc_s=sample.t_utc_s, power_w=values["watts"], voltage_v=values["volts"],
                   current_a=values["amps"], power_factor=values["pf"], voltage_range_v=v_range,
                   current_range_a=a_range, uncertainty_w=uncertainty, flags=int(flags), raw=sample.raw)


@dataclass(frozen=True)
class RangingMaxima:
    """What power-dev derives from the ranging data-log lines (§3.6); texts as in the log."""

    max_volts: str | None  # None: no line matched (power-dev then sends -1)
    max_amps: str | None
    avg_watts: str  # "%.6f" of the mean positive watts, "-1.000000" if none
    lines: int

    def testing_args(self) -> tuple[str, str]:
        """The texts power-dev sends: ``SR,V,<max volts>`` and ``SR,A,<str(float(max amps) * 1.1)>``."""
        if self.max_volts is None or self.max_amps is None:
            raise RangeError("no ranging samples with the ranging mark in the PTDaemon data log")
        return self.max_volts, str(float(self.max_amps) * rng.CURRENT_MARGIN)


def ranging_maxima(lines: Iterable[str], mark: str, channel: Sequence[int] | None = None) -> RangingMaxima:
    """Max volts, max amps and mean positive watts of the data-log lines carrying ``mark``.

    ``channel`` as in power-dev's ``[analyzerN] channel``: None or ``(start, count)``; the groups
    ``Ch<start>`` .. ``Ch<start+count-1>`` count as well as the line's total group. A configured
    channel missing from a line raises ``RangeError``; a malformed line ``ReplyParseError``.
    """
    max_v: Decimal | None = None
    max_a: Decimal | None = None
    watts: list[Decimal] = []
    n = 0
    start, count = (int(channel[0]), int(channel[1])) if channel is not None and len(channel) >= 2 else (0, 0)
    for line in lines:
        sample = parse_data_line(line)
        if sample is None or sample.mark != mark:
            continue
        n += 1
        groups = [sample.total]
        wanted = list(range(start, start + count))
        for label, group in sample.channels:
            if wanted and label == f"Ch{wanted[0]}":
                groups.append(group)
                wanted.pop(0)
        if wanted:
            raise RangeError("There are extra ptd channels in configuration")
        for g in groups:
            try:
                v, a, w = Decimal(g.volts), Decimal(g.amps), Decimal(g.watts)
            except InvalidOperation:
                raise ReplyParseError("PTD data line has a non-decimal value", sample.raw) from None
            if not (v.is_finite() and a.is_finite() and w.is_finite()):  # NaN would raise on compare, Inf
                raise ReplyParseError("PTD data line has a non-finite value", sample.raw)  # become a range
            max_v = v if max_v is None or v > max_v else max_v
            max_a = a if max_a is None or a > max_a else max_a
            if w > 0:
                watts.append(w)
    avg = f"{sum(watts) / len(watts):.6f}" if watts else "-1.000000"
    return RangingMaxima(
        None if max_v is None or max_v <= 0 else str(max_v),
        None if max_a is None or max_a <= 0 else str(max_a),
        avg,
        n,
    )


def running_console_excerpt(text: str, offset: int) -> str:
    """A long-running PTDaemon's console as one session's ``ptd_logs.txt``: its start-up lines (up
    to the first accepted connection: the ``Uncertainty checking ... is activated`` line the checker
    needs is there) and then what it printed since this session connected, at byte ``offset``.
    Earlier sessions' lines are left out: their ``ERROR:`` lines lie outside this session's ranging
    window and would fail the checker."""
    data = text.encode("utf-8")
    head_end = text.find("Accepted connection from")
    head = text[: text.rfind("\n", 0, head_end) + 1] if head_end > 0 else ""
    if len(head.encode("utf-8")) >= offset:
        return text  # nothing before this session but the start-up lines
    return head + data[offset:].decode("utf-8", errors="replace")
