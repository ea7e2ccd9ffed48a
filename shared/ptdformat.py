"""The text formats of PTDaemon and of power-dev's output tree, written and read in one place.

Every part of mlpower that writes or reads these lines comes here: the director (spl.txt,
ptd_out.txt, ptd_logs.txt, server.log, PTDaemon's data log and RL replies), the PTDaemon
emulator, the SUT agent and analytics (LoadGen's ``power_begin``/``power_end`` markers use the
same timestamp), and the tests. docs/power-dev-protocol.md §3.4, §3.7, §3.8 and §4.3 describe
them:

* a PTD timestamp is ``MM-DD-YYYY HH:MM:SS.mmm`` in UTC (milliseconds written, truncated; up to
  six fractional digits read);
* a sample line is ``Time,<ts>,Watts,<w>,Volts,<v>,Amps,<a>,PF,<pf>`` (PTD's RL reply), followed
  in spl.txt and the data log by ``,Mark,<mark>``; a value is ``%.6f`` and ``-1.000000`` means
  "not available";
* a multichannel analyzer's line starts with the *sum group* (the channels' watts summed; volts,
  amps and PF not available), then one group per channel: unlabelled in its ``RL,*,*`` reply
  (``Time,<ts>,<sum>,Watts,..,PF,..,Watts,..``), labelled ``Ch<k>`` after the Mark in the data log
  and spl.txt (``Time,<ts>,<sum>,Mark,<m>,Ch1,Watts,..,PF,..,Ch2,..``); which channels a
  multichannel device type reads follows from its ``-c`` argument (``channel_numbers``);
* a console line is ``<ts>: <message>``; a server.log line is
  ``ptd-server YYYY-MM-DD HH:MM:SS,mmm [LEVEL] <message>``.

Pure: text in, values out and back. A line that breaks the layout raises ``PtdFormatError`` (a
``ValueError``) carrying the raw line.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

NOT_AVAILABLE = "-1.000000"
"""PTD's text for a value it could not measure."""

_PTD_TIME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$")
_GROUP_TAGS = ("Watts", "Volts", "Amps", "PF")
_CHANNEL_LABEL_RE = re.compile(r"^Ch(\d+)$")


class PtdFormatError(ValueError):
    """A line or timestamp that does not follow the format; ``raw`` is the text as given."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(f"{message}: {raw!r}")
        self.reason = message
        self.raw = raw


# --------------------------------------------------------------------------- timestamps


def format_ptd_time(t_utc_s: float) -> str:
    """``MM-DD-YYYY HH:MM:SS.mmm`` in UTC (milliseconds truncated, as PTDaemon prints them)."""
    moment = dt.datetime.fromtimestamp(t_utc_s, tz=dt.UTC)
    return moment.strftime("%m-%d-%Y %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def parse_ptd_time(text: str) -> float:
    """``02-27-2023 20:50:55.939`` read as UTC -> seconds since the epoch."""
    m = _PTD_TIME_RE.match(text.strip())
    if not m:
        raise PtdFormatError("not a PTD timestamp (MM-DD-YYYY HH:MM:SS.mmm)", text)
    month, day, year, hh, mm, ss = (int(m[i]) for i in range(1, 7))
    try:
        dt.datetime(year, month, day, hh, mm, ss)  # the calendar fields must name a moment
    except ValueError:
        raise PtdFormatError("not a calendar date and time", text) from None
    fraction = float("0." + m[7]) if m[7] else 0.0
    return calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0)) + fraction


def format_log_time(t_utc_s: float) -> str:
    """Python logging's ``asctime`` (``YYYY-MM-DD HH:MM:SS,mmm``) in UTC, as server.log writes it."""
    moment = dt.datetime.fromtimestamp(t_utc_s, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S,") + f"{moment.microsecond // 1000:03d}"


# --------------------------------------------------------------------------- values


def format_value(value: float | None) -> str:
    """A value as PTD writes it: ``%.6f``; missing or non-finite -> ``-1.000000``."""
    return NOT_AVAILABLE if value is None or not math.isfinite(value) else f"{value:.6f}"


def parse_value(text: str) -> float | None:
    """A PTD value; ``-1`` (PTD's "not available"), anything unparsable or non-finite -> None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return None if not math.isfinite(value) or value == -1.0 else value


# --------------------------------------------------------------------------- sample lines


@dataclass(frozen=True)
class SampleGroup:
    """The four values of one group of a sample line, as text."""

    watts: str
    volts: str
    amps: str
    pf: str

    @classmethod
    def of(cls, watts: float | None, volts: float | None, amps: float | None, pf: float | None) -> SampleGroup:
        return cls(format_value(watts), format_value(volts), format_value(amps), format_value(pf))

    def fields(self) -> list[str]:
        return ["Watts", self.watts, "Volts", self.volts, "Amps", self.amps, "PF", self.pf]

    @property
    def power_w(self) -> float | None:
        return parse_value(self.watts)

    def values(self) -> tuple[float | None, float | None, float | None, float | None]:
        """(watts, volts, amps, PF) as numbers; None where not available."""
        return parse_value(self.watts), parse_value(self.volts), parse_value(self.amps), parse_value(self.pf)


def sum_group(groups: Sequence[SampleGroup]) -> SampleGroup:
    """A multichannel line's sum group: the channels' watts added up (a channel without a value is
    left out; none with a value -> not available); volts, amps and PF are never given for the sum."""
    powers = [p for p in (g.power_w for g in groups) if p is not None]
    return SampleGroup.of(sum(powers) if powers else None, None, None, None)


@dataclass(frozen=True)
class SampleLine:
    """``Time,<ts>,Watts,..,Volts,..,Amps,..,PF,..[,Mark,<m>][,[Ch<k>,]Watts,..]``: PTD's RL reply
    line, a data-log line and an spl.txt line are all this, with or without the mark. ``channels``
    holds (label, group) pairs; the label is ``""`` for an unlabelled group (a multichannel RL
    reply)."""

    t_utc_s: float
    time_text: str
    total: SampleGroup
    mark: str | None = None
    channels: tuple[tuple[str, SampleGroup], ...] = ()
    raw: str = ""

    @classmethod
    def of(cls, t_utc_s: float, total: SampleGroup, mark: str | None = None,
           channels: Sequence[tuple[str, SampleGroup]] = ()) -> SampleLine:
        return cls(t_utc_s, format_ptd_time(t_utc_s), total, mark, tuple(channels))

    def text(self) -> str:
        fields = ["Time", self.time_text, *self.total.fields()]
        if self.mark is not None:
            fields += ["Mark", self.mark]
        for label, group in self.channels:
            fields += [label, *group.fields()] if label else group.fields()
        return ",".join(fields)

    @property
    def power_w(self) -> float | None:
        return parse_value(self.total.watts)

    def channel_groups(self) -> dict[int, SampleGroup]:
        """The channel groups by channel number: ``Ch<k>`` -> k; unlabelled groups (an RL reply)
        are numbered 1, 2, ... in order, as power-dev numbers them when it writes spl.txt."""
        out: dict[int, SampleGroup] = {}
        for position, (label, group) in enumerate(self.channels, start=1):
            if not label:
                out[position] = group
                continue
            m = _CHANNEL_LABEL_RE.match(label)
            if m is None:
                raise PtdFormatError(f"not a channel label (Ch<k>): {label!r}", self.raw or self.text())
            out[int(m[1])] = group
        return out


def sample_line(t_utc_s: float, watts: float | None, volts: float | None, amps: float | None,
                pf: float | None, mark: str | None = None) -> str:
    """One sample as a line (with ``,Mark,<mark>`` when a mark is given)."""
    return SampleLine.of(t_utc_s, SampleGroup.of(watts, volts, amps, pf), mark).text()


def channel_label(channel: int) -> str:
    """``Ch<k>``: the label of channel k's group in the data log and spl.txt."""
    return f"Ch{channel}"


def multichannel_rl_line(t_utc_s: float, groups: Sequence[SampleGroup]) -> str:
    """One line of a multichannel ``RL,*,*`` reply: the sum group, then each channel's group
    unlabelled, in channel order."""
    return SampleLine.of(t_utc_s, sum_group(groups), None, [("", g) for g in groups]).text()


def multichannel_log_line(t_utc_s: float, mark: str, channels: Sequence[tuple[int, SampleGroup]]) -> str:
    """One line of a multichannel data log: the sum group, the Mark, then ``Ch<k>`` and channel k's
    group for each channel read."""
    groups = [g for _, g in channels]
    return SampleLine.of(t_utc_s, sum_group(groups), mark, [(channel_label(k), g) for k, g in channels]).text()


MULTICHANNEL_DEVICE_TYPES = frozenset({48, 59, 61, 77})
"""PTD device types that read several channels of one meter and need the ``-c`` argument."""


def channel_numbers(device_type: int, channel: Sequence[int]) -> tuple[int, ...]:
    """The meter channels a multichannel PTD reads, from its ``-c`` numbers (power-dev's
    ``channel`` setting): type 48 takes one number n (channels 1 .. n); the others take a first
    channel and a count (``1,3`` -> 1, 2, 3). ValueError for any other shape."""
    if device_type not in MULTICHANNEL_DEVICE_TYPES:
        raise ValueError(f"device type {device_type} is not multichannel")
    if device_type == 48:
        if len(channel) != 1 or channel[0] < 1:
            raise ValueError(f"device type 48 needs one channel count >= 1, got {list(channel)}")
        return tuple(range(1, channel[0] + 1))
    if len(channel) != 2 or channel[0] < 1 or channel[1] < 1:
        raise ValueError(f"device type {device_type} needs a first channel and a count (two numbers >= 1), "
                         f"got {list(channel)}")
    return tuple(range(channel[0], channel[0] + channel[1]))


def _group(tokens: list[str], i: int, raw: str) -> tuple[SampleGroup, int]:
    values = []
    for tag in _GROUP_TAGS:
        if i + 1 >= len(tokens):
            raise PtdFormatError(f"sample line ends before {tag!r}", raw)
        if tokens[i] != tag:
            raise PtdFormatError(f"Expected {tag!r}, got {tokens[i]!r}", raw)
        values.append(tokens[i + 1])
        i += 2
    return SampleGroup(*values), i


def parse_sample_line(line: str) -> SampleLine | None:
    """A sample line -> ``SampleLine``; anything that is no sample (a console line, ``NOTICE``,
    ``Buffer was ...``, an event line ``Time,<ts>,ERROR,...``) -> None.

    A line that starts like a sample (``Time,<ts>,Watts``) but breaks the layout raises
    ``PtdFormatError`` (e.g. "Expected 'Watts', got 'Watts1'")."""
    raw = line.rstrip("\r\n")
    tokens = raw.split(",")
    if len(tokens) < 3 or tokens[0] != "Time" or tokens[2] != "Watts":
        return None
    try:
        t_utc_s = parse_ptd_time(tokens[1])
    except PtdFormatError:
        raise PtdFormatError("sample line has a bad timestamp", raw) from None
    total, i = _group(tokens, 2, raw)
    mark: str | None = None
    if i < len(tokens) and tokens[i] == "Mark":
        if i + 1 >= len(tokens):
            raise PtdFormatError("sample line ends after 'Mark'", raw)
        mark = tokens[i + 1]
        i += 2
    channels: list[tuple[str, SampleGroup]] = []
    while i < len(tokens):
        # a labelled group (Ch<k>,Watts,..) or, in a multichannel RL reply, an unlabelled one; several
        # analyzers' merged spl.txt (§3.7) labels each analyzer's own line (Analyzer<j>,Time,<ts>,Watts,..
        # [,Mark,<m>]), or ``Analyzer<j>,missing`` where mlpower's merge found no sample of it
        label = "" if tokens[i] == "Watts" else tokens[i]
        if label and i + 1 < len(tokens) and tokens[i + 1] == "missing":
            channels.append((label, SampleGroup.of(None, None, None, None)))
            i += 2
            continue
        if label and i + 2 < len(tokens) and tokens[i + 1] == "Time":
            group, i = _group(tokens, i + 3, raw)
            if i + 1 < len(tokens) and tokens[i] == "Mark":
                i += 2
        else:
            group, i = _group(tokens, i + 1 if label else i, raw)
        channels.append((label, group))
    return SampleLine(t_utc_s, tokens[1], total, mark, tuple(channels), raw)


def spl_line_of_rl(rl_line: str, mark: str) -> str:
    """An RL reply line rewritten for spl.txt (§3.7): the Mark after the total group, and ``Ch1``,
    ``Ch2`` ... labels before the unlabelled channel groups of a multichannel reply."""
    tokens = rl_line.rstrip("\r\n").split(",")
    head, rest = tokens[:10], tokens[10:]
    out = head + ["Mark", mark]
    for k in range(0, len(rest), 8):
        out += [f"Ch{k // 8 + 1}"] + rest[k : k + 8]
    return ",".join(out)


def spl_text(lines: Sequence[str]) -> str:
    """spl.txt: one line per sample, then one extra empty line (§3.7)."""
    return "".join(f"{line}\n" for line in lines) + "\n"


# --------------------------------------------------------------------------- other power-dev files


def console_line(t_utc_s: float, message: str) -> str:
    """A PTDaemon console line: ``MM-DD-YYYY HH:MM:SS.mmm: <message>``."""
    return f"{format_ptd_time(t_utc_s)}: {message}"


def server_log_line(t_utc_s: float, level: str, message: str) -> str:
    """A server.log line, with its line end: ``ptd-server <asctime> [LEVEL] <message>``."""
    return f"ptd-server {format_log_time(t_utc_s)} [{level}] {message}\n"


def watts_reply(powers: Sequence[float], samples: int) -> str:
    """PTD's ``Watts,<avg>,<min>,<max>,<samples>,<errors>,<valid>`` over the valid ``powers`` of
    ``samples`` samples (``-1`` for the values when none is valid)."""
    if not powers:
        return f"Watts,{NOT_AVAILABLE},{NOT_AVAILABLE},{NOT_AVAILABLE},{samples},{samples},0"
    return (f"Watts,{sum(powers) / len(powers):.6f},{min(powers):.6f},{max(powers):.6f},{samples},"
            f"{samples - len(powers)},{len(powers)}")


def uncertainty_reply(relative: Sequence[float], samples: int, invalid: int) -> str:
    """PTD's ``Uncertainty,<avg>,<min>,<max>,<samples>,<invalid>,<valid>,<unknown>``: the relative
    uncertainties that could be evaluated, of ``samples`` samples of which ``invalid`` had no valid
    power (PTD's own text when none could be evaluated)."""
    unknown = samples - invalid - len(relative)
    if not relative:
        return f"Uncertainty,-1.0,10000000.000000,0.000000,{samples},{invalid},0,{unknown}"
    return (f"Uncertainty,{sum(relative) / len(relative):.6f},{min(relative):.6f},{max(relative):.6f},{samples},"
            f"{invalid},{len(relative)},{unknown}")


def ptd_out_text(replies: Sequence[tuple[str, str]]) -> str:
    """run_1/ptd_out.txt: per analyzer ``Analyzer <i>:``, ``Power: <Watts reply> `` (with the
    trailing space power-dev writes) and ``Uncertainty: <Uncertainty reply>``."""
    return "".join(f"Analyzer {i}:\nPower: {watts} \nUncertainty: {unc}\n"
                   for i, (watts, unc) in enumerate(replies, start=1))


def ptd_logs_text(consoles: Sequence[str]) -> str:
    """power/ptd_logs.txt: per analyzer a line ``Analyzer <i>`` and its console capture."""
    return "".join(f"Analyzer {i}\n{console}" for i, console in enumerate(consoles, start=1))
