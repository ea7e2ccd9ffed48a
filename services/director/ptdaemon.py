"""PTDaemon as an analyzer source: launch it (or connect to a running one) and drive it with the
command sequence power-dev uses (power-dev-protocol.md §3), so official runs keep SPEC's tool.

The sequence one session produces (§3.5), through this source's methods::

    open()                  Hello, Identify, RR                      (initial ranges remembered)
    set_ranges(None, None)  SR,V,Auto  SR,A,Auto  SR,A,Auto          (the second SR,A,Auto: Q2)
    start("<sid>_ranging")  Go,1000,0,<sid>_ranging
    stop()                  Stop  RL,*,*  RL  Uncertainty  Watts
    set_ranges(v, a)        SR,V,<v>  SR,A,<a>
    start("<sid>_testing")  Go,1000,0,<sid>_testing
    stop()                  Watts  Uncertainty  Stop  RL,*,*  RL  Uncertainty  Watts
    close()                 SR,V,<initial>  SR,A,<initial>           (then SIGTERM if launched)

Every exchange is kept in ``messages`` (``{"cmd", "reply"}`` as in server.json ``ptd_messages``);
the launched PTDaemon's console (stdout + stderr, what power-dev captures into ``ptd_logs.txt``)
is copied, flushed, into ``console_path`` and kept in ``console_text()``; for a running PTDaemon
on this host, ``console_log`` names the file its console goes to.

Samples during a measurement come from tailing PTD's data log (the ``-l`` file, one line per
sample with its Mark), which sends PTDaemon nothing, so the command log stays the documented
sequence. Without access to the data log (a remote PTDaemon) the source polls ``RL`` instead and
those exchanges are recorded with ``live=True``.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from mlpower.director import ranges as rng
from mlpower.director.errors import AnalyzerError, AnalyzerLost, AnalyzerTimeout, RangeError, ReplyParseError
from mlpower.director.sources import Reading
from mlpower.director.transport import peer_closed
from mlpower.director.uncertainty import sample_uncertainty_w
from mlpower.schema import SampleFlag, SourceInfo, Tier

log = logging.getLogger(__name__)

HELLO = "Hello"
HELLO_REPLY = "Hello, PTDaemon here!"
RANGE_SETTLE_S = 10.0
"""power-dev sleeps this long after setting ranges before ``Go``, and before ``Stop``."""
DEFAULT_PORT = 8888
WT310_DEVICE_TYPE = 49
MAX_LINE = 65536

# --------------------------------------------------------------------------- time format


def format_ptd_time(t_utc_s: float) -> str:
    """``MM-DD-YYYY HH:MM:SS.mmm`` in UTC, PTDaemon's timestamp format."""
    d = dt.datetime.fromtimestamp(t_utc_s, tz=dt.UTC)
    return d.strftime("%m-%d-%Y %H:%M:%S.") + f"{d.microsecond // 1000:03d}"


_PTD_TIME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$")


def parse_ptd_time(text: str) -> float:
    """``02-27-2023 20:50:55.939`` (UTC) -> seconds since the epoch."""
    m = _PTD_TIME_RE.match(text.strip())
    if not m:
        raise ValueError(f"not a PTDaemon timestamp (MM-DD-YYYY HH:MM:SS.mmm): {text!r}")
    month, day, year, hh, mm, ss = (int(m[i]) for i in range(1, 7))
    frac = float("0." + m[7]) if m[7] else 0.0
    dt.datetime(year, month, day, hh, mm, ss)  # validates the calendar fields
    return calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0)) + frac


def console_line(t_utc_s: float, message: str) -> str:
    """A line in PTDaemon's console format: ``MM-DD-YYYY HH:MM:SS.mmm: <message>``."""
    return f"{format_ptd_time(t_utc_s)}: {message}"


# --------------------------------------------------------------------------- replies (pure)


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


# --------------------------------------------------------------------------- data-log lines (pure)

_GROUP_TAGS = ("Watts", "Volts", "Amps", "PF")


@dataclass(frozen=True)
class PtdGroup:
    watts: str
    volts: str
    amps: str
    pf: str


@dataclass(frozen=True)
class PtdSample:
    """One ``Time,<ts>,Watts,..,Volts,..,Amps,..,PF,..[,Mark,<m>][,Ch<k>,Watts,..]`` line; values as text."""

    t_utc_s: float
    time_text: str
    total: PtdGroup
    mark: str | None
    channels: tuple[tuple[str, PtdGroup], ...]
    raw: str


def _group(tokens: list[str], i: int, raw: str) -> tuple[PtdGroup, int]:
    values = []
    for tag in _GROUP_TAGS:
        if i + 1 >= len(tokens):
            raise ReplyParseError(f"PTD data line ends before {tag!r}", raw)
        if tokens[i] != tag:
            raise ReplyParseError(f"Expected {tag!r}, got {tokens[i]!r}", raw)
        values.append(tokens[i + 1])
        i += 2
    return PtdGroup(*values), i


def parse_data_line(line: str) -> PtdSample | None:
    """A data-log or RL line -> PtdSample; event lines (NOTICE/ERROR, ``Buffer was``, console text) -> None.

    A line that starts like a sample (``Time,<ts>,Watts``) but breaks the layout raises
    ``ReplyParseError`` (e.g. "Expected 'Watts', got 'Watts1'")."""
    raw = line.rstrip("\r\n")
    tokens = raw.split(",")
    if len(tokens) < 3 or tokens[0] != "Time" or tokens[2] != "Watts":
        return None
    try:
        t = parse_ptd_time(tokens[1])
    except ValueError:
        raise ReplyParseError("PTD data line has a bad timestamp", raw) from None
    total, i = _group(tokens, 2, raw)
    mark: str | None = None
    if i < len(tokens) and tokens[i] == "Mark":
        if i + 1 >= len(tokens):
            raise ReplyParseError("PTD data line ends after 'Mark'", raw)
        mark = tokens[i + 1]
        i += 2
    channels: list[tuple[str, PtdGroup]] = []
    while i < len(tokens):
        label = tokens[i]
        group, i = _group(tokens, i + 1, raw)
        channels.append((label, group))
    return PtdSample(t, tokens[1], total, mark, tuple(channels), raw)


def _num(text: str) -> float | None:
    """A PTD value; ``-1.000000`` (and anything unparsable or non-finite) means not available."""
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")) or value == -1.0:
        return None
    return value


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


def spl_line(rl_line: str, mark: str) -> str:
    """An RL data line rewritten for ``spl.txt`` (§3.7): the Mark after the total group, and
    ``Ch1``, ``Ch2`` ... labels before the channel groups of a multichannel line."""
    tokens = rl_line.rstrip("\r\n").split(",")
    head = tokens[:10]
    rest = tokens[10:]
    out = head + ["Mark", mark]
    for k in range(0, len(rest), 8):
        out += [f"Ch{k // 8 + 1}"] + rest[k : k + 8]
    return ",".join(out)


# --------------------------------------------------------------------------- launching PTDaemon


def default_ptd_command() -> list[str]:
    """Our PTDaemon emulator, ``mlpower ptd``, run with this interpreter."""
    return [sys.executable, "-m", "mlpower", "ptd"]


def build_ptd_argv(
    ptd_command: str | Sequence[str],
    *,
    log_path: str | os.PathLike[str],
    port: int,
    device_type: int,
    device_port: str,
    interface_flag: str = "",
    gpib_board: int | None = None,
    channel: Sequence[int] | None = None,
    dc_flag: str | None = None,
) -> list[str]:
    """``<ptd> -l <log> -p <port> [-b n] [-c a[,b]] [<dcFlag>] [<interfaceFlag>] <deviceType> <devicePort>`` (§3.2)."""
    argv = shlex.split(ptd_command) if isinstance(ptd_command, str) else list(ptd_command)
    if not argv:
        raise AnalyzerError("empty PTDaemon command")
    argv += ["-l", str(log_path), "-p", str(int(port))]
    if gpib_board is not None:
        argv += ["-b", str(int(gpib_board))]
    if channel:
        argv += ["-c", ",".join(str(int(c)) for c in channel)]
    if dc_flag:
        argv.append(dc_flag)
    if interface_flag:
        argv.append(interface_flag)
    argv += [str(int(device_type)), str(device_port)]
    return argv


def port_accepts(host: str, port: int, timeout_s: float = 0.1) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        return s.connect_ex((host, port)) == 0


class PtdProcess:
    """A PTDaemon child: TZ=UTC, stdout+stderr merged and copied (flushed) to a console file."""

    def __init__(self, argv: list[str], *, console_path: str | os.PathLike[str] | None = None) -> None:
        self.argv = argv
        self.console_path = Path(console_path) if console_path else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._console = bytearray()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        env = {**os.environ, "TZ": "UTC"}
        try:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
            )
        except OSError as exc:
            raise AnalyzerError(f"cannot start PTDaemon {self.argv[0]!r}: {exc}") from exc
        self._reader = threading.Thread(target=self._copy, name="ptd-console", daemon=True)
        self._reader.start()

    def _copy(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        out = self.console_path.open("ab", buffering=0) if self.console_path else None
        try:
            for chunk in iter(lambda: self._proc.stdout.read1(65536), b""):  # type: ignore[union-attr, attr-defined]
                with self._lock:
                    self._console += chunk
                if out is not None:
                    out.write(chunk)
        finally:
            if out is not None:
                out.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def exited_within(self, timeout_s: float) -> bool:
        """Whether the child has exited, waiting up to ``timeout_s`` (its sockets close a moment
        before it can be reaped, so a closed connection is followed by a short wait)."""
        if self._proc is None:
            return False
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def console_text(self) -> str:
        with self._lock:
            return self._console.decode("utf-8", errors="replace")

    def terminate(self, timeout_s: float = 10.0) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._reader is not None:
            self._reader.join(5)


# --------------------------------------------------------------------------- the PTD line protocol


@dataclass
class PtdMessage:
    cmd: str
    reply: str
    cmd_time: float
    reply_time: float
    live: bool = False  # an RL poll for live samples, not part of power-dev's sequence

    def as_dict(self) -> dict[str, str]:
        """The server.json ``ptd_messages`` form."""
        return {"cmd": self.cmd, "reply": self.reply}


class PtdConnection:
    """``cmd\\r\\n`` out, one ``\\n``-terminated line back (``\\r`` stripped), with a timeout."""

    def __init__(self, host: str, port: int, *, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buf = bytearray()

    def connect(self, connect_timeout_s: float = 2.0) -> None:
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=connect_timeout_s)
        except OSError as exc:
            raise AnalyzerLost(f"cannot connect to PTDaemon at {self.host}:{self.port}: {exc}") from exc
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, cmd: str) -> None:
        if self._sock is None:
            raise AnalyzerLost("PTDaemon connection is closed")
        try:
            self._sock.sendall((cmd + "\r\n").encode("ascii"))
        except OSError as exc:
            raise AnalyzerLost(f"PTDaemon connection lost while sending {cmd!r}: {exc}") from exc

    def read_line(self, timeout_s: float | None = None) -> str:
        if self._sock is None:
            raise AnalyzerLost("PTDaemon connection is closed")
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            nl = self._buf.find(b"\n", 0, MAX_LINE + 1)
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return line.decode("utf-8", errors="backslashreplace").rstrip("\r")
            if len(self._buf) > MAX_LINE:
                raw = bytes(self._buf[:200])
                self._buf.clear()
                raise ReplyParseError(f"PTDaemon reply longer than {MAX_LINE} bytes", raw)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AnalyzerTimeout(f"PTDaemon at {self.host}:{self.port}: no reply in time")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise AnalyzerLost(f"PTDaemon connection lost: {exc}") from exc
            if not chunk:
                raise AnalyzerLost(f"PTDaemon at {self.host}:{self.port} closed the connection")
            self._buf += chunk

    def peer_closed(self) -> bool:
        if self._sock is None:
            return True
        return not self._buf and peer_closed(self._sock)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


# --------------------------------------------------------------------------- the source


@dataclass
class PtdStopResult:
    """What ``stop`` collected: the inputs of ``run_1/ptd_out.txt`` and ``spl.txt``."""

    mark: str
    mode: str
    watts_before_stop: str | None = None  # testing: the Watts / Uncertainty replies before Stop
    uncertainty_before_stop: str | None = None
    stop_reply: str = ""
    rl_lines: list[str] = field(default_factory=list)  # the RL data lines, as PTD sent them
    uncertainty: str = ""
    watts: str = ""

    def spl_lines(self) -> list[str]:
        return [spl_line(line, self.mark) for line in self.rl_lines]


class PtdSource:
    """An ``AnalyzerSource`` backed by PTDaemon (SPEC's tool, or ``mlpower ptd``)."""

    min_interval_s = 0.1

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        launch: bool = False,
        ptd_command: str | Sequence[str] | None = None,
        device_type: int = WT310_DEVICE_TYPE,
        device_port: str = "",
        interface_flag: str = "",
        gpib_board: int | None = None,
        channel: Sequence[int] | None = None,
        dc_flag: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        console_path: str | os.PathLike[str] | None = None,
        data_log: str | os.PathLike[str] | None = None,
        console_log: str | os.PathLike[str] | None = None,
        interval_ms: int = 1000,
        duplicate_auto_amps: bool = True,
        timeout_s: float = 10.0,
        lost_margin_s: float = 0.9,
        connect_timeout_s: float = 30.0,
        terminate_timeout_s: float = 10.0,
        crest_factor: str | int = 3,
        tier: Tier = "official",
    ) -> None:
        if interval_ms < 100:
            raise RangeError("PTDaemon sampling interval below 100 ms")
        self.host = host
        self.port = port
        self.launch = launch
        self.ptd_command = default_ptd_command() if ptd_command is None else ptd_command
        self.device_type = device_type
        self.device_port = device_port
        self.interface_flag = interface_flag
        self.gpib_board = gpib_board
        self.channel = tuple(channel) if channel else None
        self.dc_flag = dc_flag
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if launch and log_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="mlpower-ptd-")
            log_path = Path(self._tmpdir.name) / "ptd_logfile_1.log"
        self.log_path = Path(log_path) if log_path else None
        self.console_path = Path(console_path) if console_path else None
        self.data_log = Path(data_log) if data_log else (self.log_path if launch else None)
        # A running PTDaemon's console capture (its stdout redirected to a file on this host): what
        # ptd_logs.txt must carry, as the launched child's pipe does (power-dev-protocol.md §3.8).
        self.console_log = Path(console_log) if console_log else None
        self._console_offset = 0
        self.interval_ms = int(interval_ms)
        self.duplicate_auto_amps = duplicate_auto_amps
        self.timeout_s = timeout_s
        self.lost_margin_s = lost_margin_s
        self.connect_timeout_s = connect_timeout_s
        self.terminate_timeout_s = terminate_timeout_s
        self.crest_factor = crest_factor
        self.tier: Tier = tier
        self.address = f"ptd://{host}:{port}"
        self.info = SourceInfo(kind="ptdaemon", address=self.address, tier=tier)
        self.messages: list[PtdMessage] = []
        self.identity: PtdIdentity | None = None
        self.initial_ranges: PtdRanges | None = None
        self.last_stop: PtdStopResult | None = None
        self.process: PtdProcess | None = None
        self.argv: list[str] | None = None
        self.mark = ""
        self.mode = ""
        self._conn: PtdConnection | None = None
        self._lost: str | None = None
        self._ranges: tuple[float | None, float | None] = (None, None)  # what PTD rounded to; None = auto
        self._measuring = False
        self._restored = False
        self._pending: deque[PtdSample] = deque()
        self._tail: Any = None
        self._tail_buf = b""
        self._tail_offset = 0

    # ------------------------------------------------------------------ process and connection

    @property
    def interval_s(self) -> float:
        return self.interval_ms / 1000.0

    def _model_for_ranges(self) -> str:
        model = self.identity.model if self.identity else "YokogawaWT310"
        return model.removeprefix("Yokogawa").split("_")[0] or "WT310"

    def open(self) -> None:
        if self._conn is not None:
            return
        self._lost = None
        try:
            if self.launch:
                self._launch()
            else:
                self._console_offset = _file_size(self.console_log)  # before connecting: "Accepted ..." follows
                conn = PtdConnection(self.host, self.port, timeout_s=self.timeout_s)
                conn.connect()
                self._conn = conn
            reply = self.command(HELLO)
            if reply != HELLO_REPLY:
                raise AnalyzerError(f"{self.address}: this is not PTDaemon (Hello answered {reply!r})")
            self.identify()
            self.initial_ranges = parse_rr(self.command("RR"))
        except BaseException:
            self._shutdown()
            raise

    def _launch(self) -> None:
        if self.log_path is None:
            raise AnalyzerError("launching PTDaemon needs a data-log path")
        if port_accepts(self.host, self.port):
            raise AnalyzerError(
                f"something already accepts connections on {self.host}:{self.port}; not starting PTDaemon"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.argv = build_ptd_argv(
            self.ptd_command,
            log_path=self.log_path,
            port=self.port,
            device_type=self.device_type,
            device_port=self.device_port,
            interface_flag=self.interface_flag,
            gpib_board=self.gpib_board,
            channel=self.channel,
            dc_flag=self.dc_flag,
        )
        self.process = PtdProcess(self.argv, console_path=self.console_path)
        self.process.start()
        deadline = time.monotonic() + self.connect_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise AnalyzerError(
                    f"PTDaemon exited with status {self.process.returncode} while starting: "
                    + self.process.console_text()[-500:].strip()
                )
            conn = PtdConnection(self.host, self.port, timeout_s=self.timeout_s)
            try:
                conn.connect(connect_timeout_s=1.0)
            except AnalyzerLost as exc:
                last = exc
                time.sleep(0.1)
                continue
            self._conn = conn
            return
        raise AnalyzerError(f"PTDaemon did not accept connections on {self.host}:{self.port} in time: {last}")

    def _check_alive(self) -> PtdConnection:
        if self._lost is not None:
            raise AnalyzerLost(self._lost)
        if self.process is not None and not self.process.alive():
            self._lost = f"PTDaemon unexpectedly terminated (status {self.process.returncode})"
            raise AnalyzerLost(self._lost)
        if self._conn is None:
            raise AnalyzerError(f"{self.address}: not open")
        return self._conn

    def command(self, cmd: str, *, live: bool = False, timeout_s: float | None = None) -> str:
        """Send one command, return its one-line reply, and record the exchange."""
        conn = self._check_alive()
        t0 = time.time()
        try:
            conn.send(cmd)
            reply = conn.read_line(timeout_s)
        except AnalyzerLost as exc:
            self._lost = self._loss_reason(str(exc))
            raise AnalyzerLost(self._lost) from exc
        self.messages.append(PtdMessage(cmd, reply, t0, time.time(), live))
        return reply

    def _loss_reason(self, what: str) -> str:
        """Why the connection went: a launched PTDaemon that died says so (with its exit status)."""
        if self.process is not None and self.process.exited_within(0.5):
            return f"PTDaemon unexpectedly terminated (status {self.process.returncode}): {what}"
        return what

    def ptd_messages(self) -> list[dict[str, str]]:
        """server.json ``ptd_messages``: the exchanges of the documented sequence (live RL polls left out)."""
        return [m.as_dict() for m in self.messages if not m.live]

    def console_text(self) -> str:
        """PTDaemon's console output so far: the launched child's, else the ``console_log`` file of a
        running one ("" when neither is available)."""
        if self.process is not None:
            return self.process.console_text()
        if self.console_log is not None:
            try:
                text = self.console_log.read_bytes().decode("utf-8", errors="replace")
            except OSError as exc:
                log.warning("%s: PTDaemon console log %s unreadable: %s", self.address, self.console_log, exc)
                return ""
            return running_console_excerpt(text, self._console_offset)
        return ""

    # ------------------------------------------------------------------ AnalyzerSource

    def identify(self) -> str:
        reply = self.command("Identify")
        self.identity = parse_identify(reply)
        idn = self.identity.meter_idn.split(";")
        self.info = SourceInfo(
            kind="ptdaemon",
            model=self.identity.model,
            serial=idn[2] if len(idn) > 2 else "",
            firmware=f"PTDaemon {self.identity.version}" + (f"; meter {idn[3]}" if len(idn) > 3 else ""),
            address=self.address,
            channel=self.channel[0] if self.channel else 1,
            tier=self.tier,
        )
        return reply

    def _set_range(self, which: str, value: float | str | None) -> None:
        arg = "Auto" if value is None else (value if isinstance(value, str) else _range_text(value))
        reply = self.command(f"SR,{which},{arg}")
        if "Error" in reply or reply != f"Range {which} changed":
            raise AnalyzerError(f"{self.address}: SR,{which},{arg} refused: {reply!r}")

    def set_ranges(self, voltage_range_v: float | None, current_range_a: float | None) -> None:
        """``SR,V,..`` then ``SR,A,..``; auto current is sent twice like power-dev (the checker counts)."""
        model = self._model_for_ranges()
        v = None if voltage_range_v is None else rng.valid_voltage_range(voltage_range_v, self.crest_factor)
        a = None if current_range_a is None else rng.valid_current_range(current_range_a, model, self.crest_factor)
        self._set_range("V", voltage_range_v)
        self._set_range("A", current_range_a)
        if current_range_a is None and self.duplicate_auto_amps:
            self._set_range("A", None)
        self._ranges = (v, a)

    def set_range_texts(self, volts: str, amps: str) -> None:
        """Send range arguments exactly as power-dev would (``RangingMaxima.testing_args()``)."""
        self._set_range("V", volts)
        self._set_range("A", amps)
        model = self._model_for_ranges()
        self._ranges = (
            rng.valid_voltage_range(float(volts), self.crest_factor),
            rng.valid_current_range(float(amps), model, self.crest_factor),
        )

    def start(self, mark: str, mode: str | None = None) -> None:
        """``Go,<interval>,0,<mark>``; ``mode`` (ranging/testing) from the mark's suffix when not given."""
        if not mark or any(c in mark for c in ",\r\n"):
            raise AnalyzerError(f"bad PTDaemon mark {mark!r}: must be non-empty, without commas or newlines")
        self.mode = mode or ("testing" if mark.endswith("testing") else "ranging")
        self.mark = mark
        self._pending.clear()
        self._open_tail()
        reply = self.command(f"Go,{self.interval_ms},0,{mark}")
        if not reply.startswith("Starting untimed measurement"):
            self._close_tail()
            raise AnalyzerError(f"{self.address}: Go refused: {reply!r}")
        self._measuring = True
        self.last_stop = None

    def _open_tail(self) -> None:
        self._close_tail()
        if self.data_log is None:
            return
        try:
            f = self.data_log.open("rb")
        except FileNotFoundError:
            self._tail = None  # PTDaemon creates it on the first sample; opened lazily
            self._tail_offset = 0
            return
        f.seek(0, os.SEEK_END)  # the log grows across sessions (Q3): only what follows this Go
        self._tail = f
        self._tail_offset = f.tell()

    def _close_tail(self) -> None:
        if self._tail is not None:
            self._tail.close()
        self._tail = None
        self._tail_buf = b""

    def _poll_tail(self) -> None:
        if self._tail is None:
            if self.data_log is None or not self.data_log.exists():
                return
            self._tail = self.data_log.open("rb")
            self._tail.seek(self._tail_offset)
        data = self._tail.read()
        if not data:
            return
        self._tail_buf += data
        *lines, self._tail_buf = self._tail_buf.split(b"\n")
        for line in lines:
            sample = parse_data_line(line.decode("utf-8", errors="replace"))
            if sample is not None and sample.mark == self.mark:
                self._pending.append(sample)

    def _poll_rl(self) -> None:
        reply = self.command("RL", live=True)
        n = parse_rl_header(reply)
        for _ in range(n):
            line = self._read_data_line()
            sample = parse_data_line(line)
            if sample is None:
                raise ReplyParseError("RL data line is not a sample", line)
            self._pending.append(sample)

    def _read_data_line(self) -> str:
        conn = self._check_alive()
        try:
            return conn.read_line()
        except AnalyzerLost as exc:
            self._lost = str(exc)
            raise

    def read_sample(self) -> Reading:
        """The next sample of the running measurement (data-log tail, or RL polls)."""
        self._check_alive()
        if not self._measuring:
            raise AnalyzerError(f"{self.address}: no measurement running (call start first)")
        budget = self.interval_s + self.lost_margin_s
        deadline = time.monotonic() + budget
        while not self._pending:
            if self.data_log is not None:
                self._poll_tail()
            else:
                self._poll_rl()
            if self._pending:
                break
            conn = self._check_alive()
            if conn.peer_closed():
                self._lost = self._loss_reason(f"{self.address}: PTDaemon closed the connection")
                raise AnalyzerLost(self._lost)
            if time.monotonic() >= deadline:
                self._lost = f"{self.address}: no sample from PTDaemon within {budget:g} s"
                raise AnalyzerLost(self._lost)
            time.sleep(0.02 if self.data_log is not None else min(0.25, self.interval_s / 2))
        return self._reading(self._pending.popleft())

    def _reading(self, s: PtdSample) -> Reading:
        values = {k: _num(getattr(s.total, k)) for k in ("watts", "volts", "amps", "pf")}
        flags = SampleFlag.OK
        if any(v is None for v in values.values()):
            flags |= SampleFlag.MISSING
        v_range, a_range = self._ranges
        auto = v_range is None or a_range is None
        if auto:
            flags |= SampleFlag.AUTO_RANGE
        if rng.is_overrange(values["volts"], v_range) or rng.is_overrange(values["amps"], a_range):
            flags |= SampleFlag.OVERRANGE
        uncertainty = None
        if not flags & (SampleFlag.MISSING | SampleFlag.OVERRANGE) and not auto:
            uncertainty = sample_uncertainty_w(
                values["watts"], values["volts"], values["amps"], values["pf"], v_range, a_range,
                crest_factor=self.crest_factor,
            )  # fmt: skip
        return Reading(
            t_utc_s=s.t_utc_s,
            power_w=values["watts"],
            voltage_v=values["volts"],
            current_a=values["amps"],
            power_factor=values["pf"],
            voltage_range_v=v_range,
            current_range_a=a_range,
            uncertainty_w=uncertainty,
            flags=int(flags),
            raw=s.raw,
        )

    def stop(self) -> None:
        """End the measurement with power-dev's sequence for the mode; results in ``last_stop``."""
        result = PtdStopResult(mark=self.mark, mode=self.mode)
        try:
            if self.mode == "testing":
                result.watts_before_stop = self.command("Watts")
                result.uncertainty_before_stop = self.command("Uncertainty")
            result.stop_reply = self.command("Stop")
            self._measuring = False
            reply = self.command("RL,*,*")
            if reply.startswith("Last "):
                n = parse_rl_header(reply)
            else:
                n = parse_rl_header(self.command("RL"))
            result.rl_lines = [self._read_data_line() for _ in range(n)]
            result.uncertainty = self.command("Uncertainty")
            result.watts = self.command("Watts")
        finally:
            self._measuring = False
            self._close_tail()
            self.last_stop = result
        if result.stop_reply != "Stopping untimed measurement":
            log.warning("%s: Stop answered %r", self.address, result.stop_reply)

    def restore_initial_ranges(self) -> None:
        """``SR,V,<initial>`` and ``SR,A,<initial>`` from the ``RR`` reply (power-dev at ``done``)."""
        if self.initial_ranges is None or self._restored:
            return
        self._set_range("V", self.initial_ranges.initial_volts)
        self._set_range("A", self.initial_ranges.initial_amps)
        self._restored = True

    def close(self) -> None:
        try:
            if self._conn is not None and self._lost is None:
                if self._measuring:
                    with contextlib.suppress(AnalyzerError):
                        self.command("Stop")
                    self._measuring = False
                with contextlib.suppress(AnalyzerError):
                    self.restore_initial_ranges()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self._close_tail()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.process is not None:
            self.process.terminate(self.terminate_timeout_s)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> PtdSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _file_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


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


def _range_text(value: float) -> str:
    """A range argument as power-dev formats numbers (Python ``str(float)``)."""
    return str(float(value))
