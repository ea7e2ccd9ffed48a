"""A PTDaemon emulator that the MLCommons power server accepts as its ``ptd`` binary.

Protocol, console and data-log formats: power-dev-protocol.md sections 3.2-3.10. Readings come
from the simulator's physics, in-process, or over SCPI from a WT310E (simulated or real) when the
command line names a network analyzer with ``-n host[:port]``.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from mlpower.analyzer_sim import physics
from mlpower.analyzer_sim.errors import PtdArgumentError
from mlpower.analyzer_sim.faults import Faults
from mlpower.analyzer_sim.instrument import Clock, Instrument
from mlpower.analyzer_sim.models import meter_model
from mlpower.analyzer_sim.readiness import wait_readable
from mlpower.listen import listen
from mlpower.logtext import client_text
from mlpower.ptdformat import (
    MULTICHANNEL_DEVICE_TYPES,
    SampleGroup,
    channel_numbers,
    format_ptd_time,
    multichannel_log_line,
    multichannel_rl_line,
    sample_line,
    uncertainty_reply,
    watts_reply,
)

PTD_VERSION = "1.11.1"
PTD_BUILD_DATE = "20240910"
PTD_CRC = f"{zlib.crc32(b'mlpower ptd emulator'):08x}"
# PTD device type -> its driver name, the first field of Identify (power-dev-protocol.md §3.3, §5.2):
# 49 = WT310/WT310E; the multichannel types read several elements of one meter (-c). The names of
# 59 and 61 are not documented: ours say so rather than guess a model.
DEVICE_MODELS = {
    49: "YokogawaWT310",
    48: "YokogawaWT500_multichannel",
    59: "YokogawaMultichannel59",
    61: "YokogawaMultichannel61",
    77: "YokogawaWT330_multichannel",
}
MAX_EMULATED_CHANNEL = 3  # the simulated meter behind a multichannel type is a WT332E or a WT333E
DEFAULT_SCPI_PORT = 10001
MAX_SAMPLES = 500000
UNCERTAINTY_MARGIN = 1.5  # PTD is about 1.5x more conservative than the bare datasheet formula (wt310e.md 2.2)
UNCERTAINTY_LIMIT = 0.01
CONSOLE_PADDING_BYTES = 9 * 1024  # power-dev copies ptd_logs.txt through a block buffer (quirk Q1)
# Like PTDaemon, one client at a time; unlike it, a connection that says nothing cannot hold the
# daemon: the first command must come within HANDSHAKE_TIMEOUT_S, and outside a measurement a
# client silent for IDLE_TIMEOUT_S is let go (during one, the director may wait the whole phase).
# Further clients are told at once that the daemon is busy instead of waiting in the backlog.
HANDSHAKE_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 300.0
MAX_LINE_BYTES = 4096  # PTD's commands are short; a client that never sends LF must not grow the buffer
MAX_MARK_CHARS = 256
BUSY_REPLY = "Error: busy, another client is connected"
BUSY_GRACE_S = 1.0  # a client that just closed its connection and connects again is not "another client"


# ---------------------------------------------------------------------------------- command line


@dataclass(frozen=True)
class PtdArgs:
    log_path: Path | None
    port: int = 8888
    device_type: int = 49
    device_port: str = ""
    interface_flag: str = ""
    gpib_board: int | None = None
    channels: tuple[int, ...] = ()
    dc: bool = False
    extended_log: bool = False
    baud: int | None = None
    debug: bool = False

    @property
    def read_channels(self) -> tuple[int, ...]:
        """The meter channels a multichannel device type reads (empty for a single-channel one)."""
        if self.device_type not in MULTICHANNEL_DEVICE_TYPES:
            return ()
        return channel_numbers(self.device_type, self.channels)


USAGE = """usage: ptd [-l <logfile>] [-p <port>] [-b <gpib board>] [-c <channel>[,<channel>]] [-B <baud>]
           [-D] [-n | -g | -y | -U] [-e] [-d] <deviceType> <devicePort>
  -l  data log file (one Time,...,Mark,<mark> line per sample)     -p  TCP port to listen on (8888)
  -n  network analyzer: devicePort is host[:port] of a WT310E SCPI socket (e.g. mlpower sim)
  -c  multichannel types 59/61/77: <first channel>,<count> (1,3 = channels 1-3); 48: <count>
  -e  extended logging (event lines in the data log)
  deviceType 49 = Yokogawa WT310/WT310E; multichannel 77 = WT330 family (WT332E/WT333E), 48, 59, 61
Emulated by mlpower; without -n the readings come from the built-in simulated WT310E (WT332E/WT333E
for a multichannel type)."""

_VALUE_FLAGS = {"-l", "-p", "-b", "-c", "-B"}
_INTERFACE_FLAGS = {"-n", "-g", "-y", "-U"}


def parse_ptd_args(argv: list[str]) -> PtdArgs:
    """``-l <file> -p <port> [-b n] [-c ch] [-D|-n|-g|-y|-U] [-e] <deviceType> <devicePort>``."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _VALUE_FLAGS:
            if i + 1 >= len(argv):
                raise PtdArgumentError(f"option {arg} needs a value")
            values[arg] = argv[i + 1]
            i += 2
            continue
        if arg in _INTERFACE_FLAGS or arg in {"-D", "-e", "-d"}:
            flags.add(arg)
        elif arg.startswith("-") and not arg.lstrip("-").replace(".", "").isdigit():
            raise PtdArgumentError(f"unknown option {arg}")
        else:
            positional.append(arg)
        i += 1
    if len(positional) != 2:
        raise PtdArgumentError(f"expected <deviceType> <devicePort>, got {positional}")
    interface = [f for f in flags if f in _INTERFACE_FLAGS]
    if len(interface) > 1:
        raise PtdArgumentError(f"only one interface flag allowed, got {sorted(interface)}")
    try:
        device_type = int(positional[0])
        port = int(values.get("-p", "8888"))
        board = int(values["-b"]) if "-b" in values else None
        channels = tuple(int(c) for c in values["-c"].split(",")) if "-c" in values else ()
        baud = int(values["-B"]) if "-B" in values else None
    except ValueError as exc:
        raise PtdArgumentError(f"not a number: {exc}") from exc
    if device_type not in DEVICE_MODELS:
        raise PtdArgumentError(f"device type {device_type} is not emulated (only {sorted(DEVICE_MODELS)})")
    if device_type in MULTICHANNEL_DEVICE_TYPES:
        try:
            read = channel_numbers(device_type, channels)
        except ValueError as exc:
            raise PtdArgumentError(f"-c: {exc}") from None
        if read[-1] > MAX_EMULATED_CHANNEL:
            raise PtdArgumentError(f"-c: channel {read[-1]} is beyond the emulated meter's {MAX_EMULATED_CHANNEL}")
    elif len(channels) > 1:
        raise PtdArgumentError(f"-c: device type {device_type} takes at most one channel number")
    if not 0 <= port <= 65535:
        raise PtdArgumentError(f"port {port} out of range")
    return PtdArgs(log_path=Path(values["-l"]) if "-l" in values else None, port=port, device_type=device_type,
                   device_port=positional[1], interface_flag=interface[0] if interface else "", gpib_board=board,
                   channels=channels, dc="-D" in flags, extended_log="-e" in flags, baud=baud, debug="-d" in flags)


# ---------------------------------------------------------------------------------- the analyzer link


@dataclass(frozen=True)
class ChannelReading:
    channel: int  # the meter's element number
    power_w: float
    voltage_v: float
    current_a: float
    power_factor: float

    def group(self) -> SampleGroup:
        return SampleGroup.of(self.power_w, self.voltage_v, self.current_a, self.power_factor)


@dataclass(frozen=True)
class MeterSample:
    """One sample: for a multichannel PTD, ``power_w`` is the channels' sum (volts, amps and PF
    are not given for a sum) and ``channels`` holds each channel read."""

    power_w: float
    voltage_v: float
    current_a: float
    power_factor: float
    auto_range: bool
    uncertainty_ratio: float | None  # None: cannot be evaluated (auto range, no data)
    channels: tuple[ChannelReading, ...] = ()


class MeterLink(Protocol):
    def identity(self) -> str: ...

    def sample(self) -> MeterSample: ...

    def ranges(self) -> tuple[int, float, int, float]: ...

    def set_range(self, channel: str, value: float | None) -> float | None: ...

    def close(self) -> None: ...


def _sample_uncertainty(power_w: float, voltage_v: float, current_a: float, power_range_w: float,
                        auto: bool) -> float | None:
    if auto or not all(math.isfinite(x) for x in (power_w, voltage_v, current_a)) or power_w == 0:
        return None
    bound = physics.power_uncertainty_w(power_w, voltage_v * current_a, power_range_w)
    return UNCERTAINTY_MARGIN * bound / abs(power_w)


def _multichannel_sample(parts: list[tuple[int, float, float, float, float, float | None]],
                         auto: bool) -> MeterSample:
    """The sum sample of channels given as (channel, P, U, I, PF, uncertainty bound in W or None).
    Its uncertainty is the channels' bounds added up (worst case) over the summed power."""
    channels = tuple(ChannelReading(k, p, u, i, pf) for k, p, u, i, pf, _ in parts)
    total = sum(c.power_w for c in channels)
    bounds = [b for *_, b in parts]
    unc = None
    if not auto and math.isfinite(total) and total != 0 and all(b is not None for b in bounds):
        unc = UNCERTAINTY_MARGIN * sum(b for b in bounds if b is not None) / abs(total)
    return MeterSample(total, math.nan, math.nan, math.nan, auto, unc, channels)


def _channel_bound_w(p: float, u: float, i: float, power_range_w: float) -> float | None:
    if not all(math.isfinite(x) for x in (p, u, i)):
        return None
    return physics.power_uncertainty_w(p, u * i, power_range_w)


class InProcessMeter:
    """The simulator's instrument, read directly: element 1, or the ``channels`` (elements) a
    multichannel PTD reads."""

    def __init__(self, inst: Instrument, channels: tuple[int, ...] = ()) -> None:
        self.inst = inst
        self.channels = channels

    def identity(self) -> str:
        return self.inst.identity.idn()

    def sample(self) -> MeterSample:
        with self.inst.lock:
            self.inst.advance()
            readings = list(self.inst.readings)
            elements = self.inst.settings.elements
            if not self.channels:
                auto = elements[0].voltage_auto or elements[0].current_auto
            else:
                auto = any(elements[k - 1].voltage_auto or elements[k - 1].current_auto for k in self.channels)
        if not self.channels:
            r = readings[0]
            unc = _sample_uncertainty(r.power_w, r.voltage_v, r.current_a, r.power_range_w, auto)
            return MeterSample(r.power_w, r.voltage_v, r.current_a, r.power_factor, auto, unc)
        parts = []
        for k in self.channels:
            r = readings[k - 1]
            parts.append((k, r.power_w, r.voltage_v, r.current_a, r.power_factor,
                          _channel_bound_w(r.power_w, r.voltage_v, r.current_a, r.power_range_w)))
        return _multichannel_sample(parts, auto)

    def ranges(self) -> tuple[int, float, int, float]:
        e = self.inst.settings.elements[(self.channels or (1,))[0] - 1]  # the first channel read
        return int(e.current_auto), e.current_range_a, int(e.voltage_auto), e.voltage_range_v

    def set_range(self, channel: str, value: float | None) -> float | None:
        # A multichannel PTD sets a range on every channel it reads.
        elements: tuple[int | None, ...] = self.channels or (None,)
        if value is None:
            for element in elements:
                self.inst.set_auto(channel, True, element)
            return None
        choices = self.inst.voltage_ranges() if channel == "V" else self.inst.current_ranges()
        chosen = physics.smallest_range_at_least(value, choices)
        if chosen is None:
            raise ValueError(f"{value} is above the largest range {choices[-1]}")
        for element in elements:
            (self.inst.set_voltage_range if channel == "V" else self.inst.set_current_range)(chosen, element)
        return chosen

    def close(self) -> None:
        pass


class ScpiMeter:
    """A WT310E, or the ``channels`` (elements) of a WT332E/WT333E, over a raw SCPI socket (the
    simulator, or a meter behind a socket bridge)."""

    def __init__(self, host: str, port: int, timeout_s: float = 5.0, channels: tuple[int, ...] = ()) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._file = self._sock.makefile("rb")
        self._lock = threading.Lock()
        self.channels = channels
        try:
            self._idn = self.query("*IDN?")
            idn_model = self._idn.split(",")[1] if self._idn.count(",") >= 1 else ""
            self.model = meter_model(idn_model)
            if channels and max(channels) > self.model.elements:
                raise PtdArgumentError(f"-c: channel {max(channels)} is beyond the {self.model.elements} "
                                       f"element(s) of the meter ({client_text(idn_model)})")
            # P, U, I, PF of each element read, four items per element (element 1 alone without -c)
            items = ";".join(f"ITEM{4 * n + 1} P,{c};ITEM{4 * n + 2} U,{c};ITEM{4 * n + 3} I,{c};"
                             f"ITEM{4 * n + 4} LAMB,{c}" for n, c in enumerate(channels or (1,)))
            self.command(f":COMM:HEAD OFF;:COMM:VERB OFF;:NUM:FORM ASCII;:NUM:NORM:NUM {4 * len(channels or (1,))};"
                         f":NUM:NORM:{items};:RATE 250MS")
        except BaseException:
            self.close()
            raise

    def command(self, line: str) -> None:
        """Send settings and wait until the meter has taken them (``*OPC?``), so replies stay in step."""
        self.query(f"{line};*OPC?")

    def query(self, line: str) -> str:
        with self._lock:
            self._sock.sendall(line.encode("ascii") + b"\n")
            reply = self._file.readline()
        if not reply:
            raise ConnectionError("the analyzer closed the connection")
        return reply.decode("ascii", errors="replace").strip()

    def identity(self) -> str:
        return self._idn

    def _element_ranges(self, element: int | None) -> tuple[int, float, int, float]:
        if element is None:
            # The combined query PTD itself sends ("Buffer was 1.000E+00;1;300.0E+00;1").
            parts = self.query(":INP:CURR:RANG?;AUTO?;:INP:VOLT:RANG?;AUTO?").split(";")
        else:
            e = f"ELEM{element}"
            parts = self.query(f":INP:CURR:RANG:{e}?;:INP:CURR:AUTO:{e}?;:INP:VOLT:RANG:{e}?;"
                               f":INP:VOLT:AUTO:{e}?").split(";")
        return int(parts[1]), float(parts[0]), int(parts[3]), float(parts[2])

    def ranges(self) -> tuple[int, float, int, float]:
        return self._element_ranges(self.channels[0] if self.channels else None)

    def sample(self) -> MeterSample:
        values = [float(v) for v in self.query(":NUM:NORM:VAL?").split(",")]
        if not self.channels:
            amp_auto, amp_range, volt_auto, volt_range = self.ranges()
            auto = bool(amp_auto or volt_auto)
            unc = _sample_uncertainty(values[0], values[1], values[2], amp_range * volt_range, auto)
            return MeterSample(values[0], values[1], values[2], values[3], auto, unc)
        parts = []
        auto = False
        for n, c in enumerate(self.channels):
            p, u, i, pf = values[4 * n: 4 * n + 4]
            amp_auto, amp_range, volt_auto, volt_range = self._element_ranges(c)
            auto = auto or bool(amp_auto or volt_auto)
            parts.append((c, p, u, i, pf, _channel_bound_w(p, u, i, amp_range * volt_range)))
        return _multichannel_sample(parts, auto)

    def set_range(self, channel: str, value: float | None) -> float | None:
        # without -c the plain command (every element); with -c each channel read by its ELEMent form
        name = "VOLT" if channel == "V" else "CURR"
        targets = [f":ELEM{c}" for c in self.channels] or [""]
        if value is None:
            self.command(";".join(f":INP:{name}:AUTO{t} ON" for t in targets))
            return None
        choices = self.model.voltage_ranges("3") if channel == "V" else self.model.current_ranges("3")
        chosen = physics.smallest_range_at_least(value, choices)
        if chosen is None:
            raise ValueError(f"{value} is above the largest range {choices[-1]}")
        self.command(";".join(f":INP:{name}:AUTO{t} OFF;:INP:{name}:RANG{t} {chosen}" for t in targets))
        return chosen

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()


# ---------------------------------------------------------------------------------- samples and formats


@dataclass(frozen=True)
class Sample:
    t_utc_s: float
    reading: MeterSample
    mark: str

    def rl_line(self, all_channels: bool = False) -> str:
        """The line of an RL reply: with ``all_channels`` (``RL,*,*`` to a multichannel PTD) the
        sum group and every channel's group; else the one group (the sum, for a multichannel PTD)."""
        r = self.reading
        if all_channels and r.channels:
            return multichannel_rl_line(self.t_utc_s, [c.group() for c in r.channels])
        if r.channels:
            return sample_line(self.t_utc_s, r.power_w, None, None, None)
        return sample_line(self.t_utc_s, r.power_w, r.voltage_v, r.current_a, r.power_factor)

    def log_line(self) -> str:
        r = self.reading
        if r.channels:
            return multichannel_log_line(self.t_utc_s, self.mark, [(c.channel, c.group()) for c in r.channels])
        return f"{self.rl_line()},Mark,{self.mark}"

    @property
    def watts_valid(self) -> bool:
        return math.isfinite(self.reading.power_w)


@dataclass
class Measurement:
    mark: str
    interval_s: float
    samples: list[Sample] = field(default_factory=list)
    unread: int = 0
    running: bool = True


# ---------------------------------------------------------------------------------- the console


class console_file_sink:  # noqa: N801 - used like a function: console_file_sink(path).write
    """PTDaemon's console into a file, each chunk flushed at once (a reader copies it mid-run), and
    optionally passed on to another sink as well."""

    def __init__(self, path: Path, also: Callable[[str], None] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = path.open("a", encoding="utf-8")
        self._also = also
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            if self._file is not None:
                self._file.write(text + "\n")
                self._file.flush()
        if self._also is not None:
            self._also(text)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# ---------------------------------------------------------------------------------- the daemon


class PtdServer:
    def __init__(self, meter: MeterLink, clock: Clock, *, port: int = 8888, host: str = "127.0.0.1",
                 log_path: Path | None = None, device_type: int = 49, console: Callable[[str], None] | None = None,
                 faults: Faults | None = None, extended_log: bool = False, range_ack_delay_s: float = 0.0,
                 idle_interval_s: float = 1.0, handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
                 idle_timeout_s: float = IDLE_TIMEOUT_S, channels: tuple[int, ...] = ()) -> None:
        self.meter, self.clock = meter, clock
        self.model_name = DEVICE_MODELS[device_type]
        self.meter_name = "WT330" if device_type == 77 else "WT310"  # as PTD names the meter in errors
        self.device_type = device_type
        self.multichannel = device_type in MULTICHANNEL_DEVICE_TYPES
        self.channels = channels if self.multichannel else ()
        self.channel_count = len(self.channels) or 1
        self.faults = faults or Faults()
        self.extended_log, self.range_ack_delay_s = extended_log, range_ack_delay_s
        self.handshake_timeout_s, self.idle_timeout_s = handshake_timeout_s, idle_timeout_s
        self.busy_refusals = 0
        self._console_sink = console or (lambda text: None)
        self.console_lines: list[str] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self.mark = "notset"
        self.interval_s = idle_interval_s
        self.measurement: Measurement | None = None
        self.log_path = log_path
        self._log: TextIO | None = log_path.open("a", encoding="utf-8") if log_path is not None else None
        self._startup_banner()
        self._listener = listen(host, port, backlog=16, what="PTDaemon emulator")
        self.port = int(self._listener.getsockname()[1])
        self.say(f"Establishing the listener on port {self.port}...")
        self.say("Waiting for a connection...")
        self._conn: socket.socket | None = None
        self._free = threading.Event()  # set while no client is connected
        self._free.set()
        self._threads = [
            threading.Thread(target=self._sample_loop, name="ptd-sampler", daemon=True),
            threading.Thread(target=self._accept_loop, name=f"ptd-{self.port}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # ---- console and log
    def raw(self, text: str) -> None:
        with self._lock:
            self.console_lines.extend(text.split("\n"))
        try:
            self._console_sink(text)
        except (OSError, ValueError):
            # stdout gone (a closed pipe, a closed file): the console is lost, but the daemon must
            # keep answering its client and sampling, or the session dies with "connection closed".
            pass

    def say(self, message: str) -> None:
        self.raw(f"{format_ptd_time(self.clock.now())}: {message}")

    def _log_line(self, line: str) -> None:
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()  # the server reads this file right after Stop

    def _event(self, kind: str, message: str) -> None:
        if self.extended_log:
            self._log_line(f"Time,{format_ptd_time(self.clock.now())},{kind},{message}")

    def _startup_banner(self) -> None:
        self.raw("PTDaemon emulator (mlpower): speaks SPEC PTDaemon's network protocol; not the SPEC PTDaemon Tool")
        self.raw(f"Version {PTD_VERSION}-{PTD_CRC}-{PTD_BUILD_DATE}")
        if self.log_path is not None:
            self.raw(f"Redirecting data output to file {self.log_path}")
        self.raw(f"Calculated PTD CRC: {PTD_CRC}")
        self.say(f"Attempting to connect to measurement device type {self.device_type}...")
        idn = self.meter.identity()
        self.say(f"Analyzer identity response of {len(idn) + 1} bytes: {idn}")
        self._event("NOTICE", f"Analyzer identity response of {len(idn) + 1} bytes: {idn}")
        self.say(f"Uncertainty checking for {self.model_name} is activated")
        self.say(f"Connected to {self.model_name} successfully")

    # ---- sampling
    def _sample_loop(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                interval = self.measurement.interval_s if self.measurement and self.measurement.running \
                    else self.interval_s
            next_t += interval
            self._stop.wait(max(0.0, next_t - time.monotonic()))
            if self._stop.is_set():
                return
            if next_t < time.monotonic() - interval:
                next_t = time.monotonic()  # fell far behind (suspended host): do not burst
            self._take_sample()

    def _take_sample(self) -> None:
        try:
            reading = self.meter.sample()
        except (OSError, ValueError, IndexError) as exc:
            self.say(f"ERROR: analyzer read failed: {exc}")
            nan = math.nan
            reading = MeterSample(nan, nan, nan, nan, True, None,
                                  tuple(ChannelReading(k, nan, nan, nan, nan) for k in self.channels))
        # All under the lock: a sample's console lines must come before a concurrent Stop's
        # "Completed test" (the checker accepts auto-range errors only inside the ranging window).
        with self._lock:
            sample = Sample(self.clock.now(), reading, self.mark)
            self._log_line(sample.log_line())
            m = self.measurement
            if m is None or not m.running:
                return
            if len(m.samples) < MAX_SAMPLES:
                m.samples.append(sample)
            # a multichannel sum has no volts, amps or PF of its own: its channels are checked
            checked = reading.channels or (reading,)
            for part in checked:
                for name, value in (("watts", part.power_w), ("volts", part.voltage_v),
                                    ("amps", part.current_a), ("pf", part.power_factor)):
                    if not math.isfinite(value):
                        text = f"Bad {name} reading {'inf' if math.isinf(value) else 'nan'} from {self.meter_name}"
                        self.say(f"ERROR: {text}")
                        self._event("ERROR", text)
            if reading.uncertainty_ratio is None:
                self.say("ERROR: Can't evaluate uncertainty of this sample!")
                self.say("WARNING: Uncertainty unknown for the last measurement sample!")
            elif reading.uncertainty_ratio > UNCERTAINTY_LIMIT:
                self.say(f"WARNING: Uncertainty {reading.uncertainty_ratio * 100:.2f}%, which is above 1.00% limit "
                         "for the last sample!")

    # ---- the network side
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                if not wait_readable(self._listener, 0.2):
                    continue
                conn, address = self._listener.accept()
            except (OSError, ValueError):
                continue
            if self.faults.snapshot().drop_connection:
                conn.close()
                continue
            if not self._claim(conn):
                self._refuse_busy(conn)
                continue
            self.say(f"Accepted connection from {address[0]}:{address[1]}")
            threading.Thread(target=self._session, args=(conn,), name=f"ptd-client-{self.port}", daemon=True).start()

    def _claim(self, conn: socket.socket) -> bool:
        deadline = time.monotonic() + BUSY_GRACE_S
        while True:
            with self._lock:
                if self._conn is None:
                    self._conn = conn
                    self._free.clear()
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._free.wait(remaining):
                return False

    def _refuse_busy(self, conn: socket.socket) -> None:
        self.busy_refusals += 1
        with contextlib.suppress(OSError):
            conn.settimeout(1.0)
            conn.sendall((BUSY_REPLY + "\r\n").encode())
        with contextlib.suppress(OSError):
            conn.close()

    def _session(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)  # one client at a time, like PTDaemon
        except Exception as exc:  # noqa: BLE001 - a broken client must not end the daemon
            self.say(f"ERROR: connection handling failed: {type(exc).__name__}: {client_text(str(exc))}")
        finally:
            self.say("Shutting connection down...")
            self.say("Connection is down.")
            self.say("Waiting for a connection...")
            with self._lock:
                self._conn = None
                self._free.set()

    def _silence_limit_s(self, spoken: bool) -> float | None:
        """How long this client may stay silent now; None while a measurement runs."""
        if not spoken:
            return self.handshake_timeout_s
        with self._lock:
            running = self.measurement is not None and self.measurement.running
        return None if running else self.idle_timeout_s

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        spoken = False
        last_heard = time.monotonic()
        try:
            while not self._stop.is_set():
                if not wait_readable(conn, 0.2):
                    limit = self._silence_limit_s(spoken)
                    if limit is not None and time.monotonic() - last_heard > limit:
                        self.say(f"Closing the connection: no {'further ' if spoken else ''}command "
                                 f"within {limit:g} s")
                        return
                    continue
                data = conn.recv(4096)
                if not data:
                    self.say("No data returned by socket read.")
                    return
                last_heard = time.monotonic()
                if self.faults.snapshot().drop_connection:
                    return
                buffer += data
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    line = raw.decode("utf-8", errors="replace").strip("\r").strip()
                    if not line:
                        continue
                    spoken = True
                    self._answer(conn, line)
                if len(buffer) > MAX_LINE_BYTES:
                    buffer = b""
                    self._answer(conn, None)
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _answer(self, conn: socket.socket, line: str | None) -> None:
        """One command's reply; ``None`` for a line over MAX_LINE_BYTES (discarded unread)."""
        if line is None:
            reply = [f"Error: command longer than {MAX_LINE_BYTES} bytes"]
        elif not line.isascii() or not line.isprintable():
            # Client text reaches the console and the data log (a Go mark): control characters
            # there could forge lines or drive a terminal, so such a command is refused whole.
            self.say(f"Refused a command with non-printable characters: {client_text(line)}")
            reply = ["Error: command has non-printable characters"]
        else:
            reply = self.handle(line)
        stall_s = self.faults.snapshot().stall_s
        if stall_s > 0:
            self._stop.wait(stall_s)
        conn.sendall(("\r\n".join(reply) + "\r\n").encode("utf-8"))
        self.raw(f"{format_ptd_time(self.clock.now())}: Response to client sent: {reply[0]}" +
                 "".join(f"\n{extra}" for extra in reply[1:]))

    # ---- commands
    def handle(self, line: str) -> list[str]:
        """One command line in, the reply lines out (several only for RL)."""
        parts = [p.strip() for p in line.split(",")]
        name = parts[0]
        handler = _COMMANDS.get(name.lower())
        if handler is None:
            return [f"Unknown command: {name[:64]}"]
        try:
            return handler(self, parts[1:])
        except Exception as exc:  # a bad command must never take the daemon down
            return [f"Error: {exc}"]

    def _hello(self, args: list[str]) -> list[str]:
        return ["Hello, PTDaemon here!"]

    def _identify(self, args: list[str]) -> list[str]:
        idn = self.meter.identity().replace(",", ";")
        interval_ms = int(round(self.interval_s * 1000))
        # ..., mode=power, uncertainty on, ranging on, <channel count>, 0, 0, calibration date, IDN
        return [f"{self.model_name},{interval_ms},1,1,1,1,0,0,1,version={PTD_VERSION}-{PTD_CRC}-{PTD_BUILD_DATE},"
                f"OS=Linux,mode=power,1,1,{self.channel_count},0,0,no_cal_date,{idn}"]

    def _read_ranges(self, args: list[str]) -> list[str]:
        amp_auto, amp_range, volt_auto, volt_range = self.meter.ranges()
        return [f"Ranges,{amp_auto},{amp_range:.6f},{volt_auto},{volt_range:.6f}"]

    def _set_range(self, args: list[str]) -> list[str]:
        if len(args) != 2 or args[0].upper() not in ("V", "A"):
            return ["Error: expected SR,V|A,<Auto or value>"]
        channel, text = args[0].upper(), args[1]
        meter_channel = "V" if channel == "V" else "I"
        if text.lower() == "auto":
            value = None
        else:
            try:
                value = float(text)
            except ValueError:
                return [f"Error: invalid range value {text[:64]}"]
            if not math.isfinite(value) or value <= 0:
                return [f"Error: invalid range value {text[:64]}"]
        try:
            chosen = self.meter.set_range(meter_channel, value)
        except Exception as exc:
            return [f"Error: {exc}"]
        what = "Volt" if channel == "V" else "Amp"
        if chosen is None:
            self.say(f"{'Volt' if channel == 'V' else 'Ampere'} range set to Auto")
        else:
            self.say(f"{what} range set to {chosen:.6f}{channel}")
        if self.range_ack_delay_s > 0:
            self._stop.wait(self.range_ack_delay_s)
        return [f"Range {channel} changed"]

    def _go(self, args: list[str]) -> list[str]:
        if len(args) < 2:
            return ["Error: expected Go,<interval ms>,<duration>[,<mark>]"]
        try:
            interval_ms, duration = int(args[0]), int(args[1])
        except ValueError:
            return ["Error: invalid Go parameters"]
        if interval_ms < 10 or duration < 0:
            return ["Error: invalid Go parameters"]
        with self._lock:
            if self.measurement is not None and self.measurement.running:
                return ["Error: measurement already running"]
            if len(args) > 2 and len(args[2]) > MAX_MARK_CHARS:
                return [f"Error: mark longer than {MAX_MARK_CHARS} characters"]
            if len(args) > 2 and args[2]:
                self.mark = args[2]
            # printed before the first sample can be taken: its console lines belong after this one
            self.say(f"Go with mark '{self.mark}'")
            self.measurement = Measurement(self.mark, interval_ms / 1000.0)
        kind = "untimed" if duration == 0 else "timed"
        return [f"Starting {kind} measurement, maximum {MAX_SAMPLES} samples at {interval_ms}ms with 0 rampup samples"]

    def _stop_measurement(self, args: list[str]) -> list[str]:
        with self._lock:
            m = self.measurement
            if m is None or not m.running:
                return ["Error: no measurement to stop"]
            m.running = False
            watts = self._watts_stats(m)
            self.say("Completed test")
        avg, low, high, count, errors, valid = watts
        self.say(f"Avg watts {avg:.6f}, min watts {low:.6f}, max watts {high:.6f}, samples {count}, "
                 f"errors {errors}, valid {valid}")
        self._pad_console()
        return ["Stopping untimed measurement"]

    def _pad_console(self) -> None:
        # power-dev snapshots the console log through a block buffer while PTD still runs (quirk Q1):
        # the last few KiB would be missing. Real PTD survives by echoing long RL dumps; we pad.
        self.raw("\n" * CONSOLE_PADDING_BYTES)

    def _read_last(self, args: list[str]) -> list[str]:
        # RL,*,* is the multichannel form (every channel's group); a single-channel PTD refuses it.
        all_channels = args == ["*", "*"]
        if all_channels and not self.multichannel:
            return ["Invalid number of parameters"]
        if all_channels:
            args = []
        if len(args) > 1:
            return ["Invalid number of parameters"]
        with self._lock:
            m = self.measurement
            if m is None:
                return ["Last 0 samples"]
            unread = m.samples[m.unread:]
            if args:
                try:
                    limit = int(args[0])
                except ValueError:
                    return ["Invalid number of parameters"]
                unread = unread[-limit:] if limit > 0 else []
            m.unread = len(m.samples)
        return [f"Last {len(unread)} samples", *(s.rl_line(all_channels) for s in unread)]

    @staticmethod
    def _watts_stats(m: Measurement) -> tuple[float, float, float, int, int, int]:
        valid = [s.reading.power_w for s in m.samples if s.watts_valid]
        count = len(m.samples)
        if not valid:
            return -1.0, -1.0, -1.0, count, count, 0
        return sum(valid) / len(valid), min(valid), max(valid), count, count - len(valid), len(valid)

    def _watts(self, args: list[str]) -> list[str]:
        with self._lock:
            m = self.measurement
            if m is None:
                return ["Error: no measurement"]
            powers = [s.reading.power_w for s in m.samples if s.watts_valid]
            return [watts_reply(powers, len(m.samples))]

    def _uncertainty(self, args: list[str]) -> list[str]:
        with self._lock:
            m = self.measurement
            if m is None:
                return ["Error: no measurement"]
            total = len(m.samples)
            invalid = sum(1 for s in m.samples if not s.watts_valid)
            known = [s.reading.uncertainty_ratio for s in m.samples
                     if s.watts_valid and s.reading.uncertainty_ratio is not None]
        return [uncertainty_reply(known, total, invalid)]

    def _mark(self, args: list[str]) -> list[str]:
        if len(args) != 1 or not args[0]:
            return ["Invalid number of parameters"]
        if len(args[0]) > MAX_MARK_CHARS:
            return [f"Error: mark longer than {MAX_MARK_CHARS} characters"]
        with self._lock:
            self.mark = args[0]
        return [f"Mark set to {self.mark}"]

    # ---- life cycle
    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # close() alone leaves it listening while poll() runs
        with contextlib.suppress(OSError):
            self._listener.close()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=3)
        self.meter.close()
        if self._log is not None:
            self._log.close()
            self._log = None


_COMMANDS: dict[str, Callable[[PtdServer, list[str]], list[str]]] = {
    "hello": PtdServer._hello,
    "identify": PtdServer._identify,
    "rr": PtdServer._read_ranges,
    "sr": PtdServer._set_range,
    "go": PtdServer._go,
    "stop": PtdServer._stop_measurement,
    "rl": PtdServer._read_last,
    "watts": PtdServer._watts,
    "uncertainty": PtdServer._uncertainty,
    "accuracy": PtdServer._uncertainty,  # the old name of Uncertainty
    "mark": PtdServer._mark,
}
