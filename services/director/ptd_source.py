"""PTDaemon as an analyzer source: launch it (or connect to a running one) and drive it with the
command sequence power-dev uses (power-dev-protocol.md §3.5), so official runs keep SPEC's tool.

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

import contextlib
import dataclasses
import logging
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpower.ptdformat import SampleLine, spl_line_of_rl
from mlpower.schema import SourceInfo, Tier

from . import ranges as rng
from .errors import AnalyzerError, AnalyzerLost, RangeError, ReplyParseError
from .ptd_client import DataLogTail, PtdConnection, PtdMessage
from .ptd_format import (
    DEFAULT_PORT,
    HELLO,
    HELLO_REPLY,
    WT310_DEVICE_TYPE,
    PtdIdentity,
    PtdRanges,
    parse_data_line,
    parse_identify,
    parse_rl_header,
    parse_rr,
    reading_of,
    running_console_excerpt,
)
from .ptd_process import PtdProcess, build_ptd_argv, default_ptd_command, port_accepts
from .sources import Reading

log = logging.getLogger(__name__)

RANGE_SETTLE_S = 10.0
"""power-dev sleeps this long after setting ranges before ``Go``, and before ``Stop``."""


@dataclass(frozen=True)
class PtdConfig:
    """Where PTDaemon is, whether to launch it (and with which command line), and how to talk to it."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    launch: bool = False
    ptd_command: str | Sequence[str] | None = None  # None: mlpower's emulator
    device_type: int = WT310_DEVICE_TYPE
    device_port: str = ""
    interface_flag: str = ""
    gpib_board: int | None = None
    channel: tuple[int, ...] | None = None
    dc_flag: str | None = None
    log_path: Path | None = None  # the -l data log of a launched PTDaemon (a temporary one if None)
    console_path: Path | None = None  # where a launched PTDaemon's console is copied
    data_log: Path | None = None  # a running PTDaemon's data log on this host (tailed for samples)
    console_log: Path | None = None  # a running PTDaemon's console capture on this host
    interval_ms: int = 1000
    duplicate_auto_amps: bool = True
    timeout_s: float = 10.0
    lost_margin_s: float = 0.9
    connect_timeout_s: float = 30.0
    terminate_timeout_s: float = 10.0
    crest_factor: str | int = 3
    tier: Tier = "official"

    def __post_init__(self) -> None:
        if self.interval_ms < 100:
            raise RangeError("PTDaemon sampling interval below 100 ms")
        for name in ("log_path", "console_path", "data_log", "console_log"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.channel is not None:
            object.__setattr__(self, "channel", tuple(int(c) for c in self.channel) or None)
        object.__setattr__(self, "interval_ms", int(self.interval_ms))

    @classmethod
    def option_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @property
    def address(self) -> str:
        return f"ptd://{self.host}:{self.port}"


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
        return [spl_line_of_rl(line, self.mark) for line in self.rl_lines]


class PtdSource:
    """An ``AnalyzerSource`` backed by PTDaemon (SPEC's tool, or ``mlpower ptd``); also ``PtdDriven``."""

    min_interval_s = 0.1

    def __init__(self, config: PtdConfig) -> None:
        self.config = config
        self.ptd_command = default_ptd_command() if config.ptd_command is None else config.ptd_command
        self.channel = config.channel
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        log_path = config.log_path
        if config.launch and log_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="mlpower-ptd-")
            log_path = Path(self._tmpdir.name) / "ptd_logfile_1.log"
        self.log_path = log_path
        self.data_log = config.data_log or (log_path if config.launch else None)
        self._console_offset = 0
        self.host, self.port = config.host, config.port
        self.interval_ms = config.interval_ms
        self.address = config.address
        self.info = SourceInfo(kind="ptdaemon", address=self.address, tier=config.tier)
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
        self._pending: deque[SampleLine] = deque()
        self._polled: list[str] = []  # RL lines read live during the measurement (RL polling)
        self._tail = DataLogTail(self.data_log) if self.data_log is not None else None

    # ------------------------------------------------------------------ process and connection

    @property
    def interval_s(self) -> float:
        return self.interval_ms / 1000.0

    def ptd_config(self) -> dict[str, Any]:
        """server.json ``ptd_config`` for this analyzer: the command line power-dev would have run."""
        return {"command": list(self.argv or []), "device_type": self.config.device_type,
                "interface_flag": self.config.interface_flag, "dc_flag": self.config.dc_flag,
                "device_port": self.config.device_port, "channel": list(self.channel) if self.channel else None}

    def _model_for_ranges(self) -> str:
        model = self.identity.model if self.identity else "YokogawaWT310"
        return model.removeprefix("Yokogawa").split("_")[0] or "WT310"

    def open(self) -> None:
        if self._conn is not None:
            return
        self._lost = None
        try:
            if self.config.launch:
                self._launch()
            else:
                self._console_offset = _file_size(self.config.console_log)  # before connecting: "Accepted ..." follows
                conn = PtdConnection(self.host, self.port, timeout_s=self.config.timeout_s)
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
            device_type=self.config.device_type,
            device_port=self.config.device_port,
            interface_flag=self.config.interface_flag,
            gpib_board=self.config.gpib_board,
            channel=self.channel,
            dc_flag=self.config.dc_flag,
        )
        self.process = PtdProcess(self.argv, console_path=self.config.console_path)
        self.process.start()
        deadline = time.monotonic() + self.config.connect_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise AnalyzerError(
                    f"PTDaemon exited with status {self.process.returncode} while starting: "
                    + self.process.console_text()[-500:].strip()
                )
            conn = PtdConnection(self.host, self.port, timeout_s=self.config.timeout_s)
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
        if self.config.console_log is not None:
            try:
                text = self.config.console_log.read_bytes().decode("utf-8", errors="replace")
            except OSError as exc:
                log.warning("%s: PTDaemon console log %s unreadable: %s", self.address, self.config.console_log, exc)
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
            tier=self.config.tier,
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
        v = None if voltage_range_v is None else rng.valid_voltage_range(voltage_range_v, self.config.crest_factor)
        crest = self.config.crest_factor
        a = None if current_range_a is None else rng.valid_current_range(current_range_a, model, crest)
        self._set_range("V", voltage_range_v)
        self._set_range("A", current_range_a)
        if current_range_a is None and self.config.duplicate_auto_amps:
            self._set_range("A", None)
        self._ranges = (v, a)

    def set_range_texts(self, volts: str, amps: str) -> None:
        """Send range arguments exactly as power-dev would (``RangingMaxima.testing_args()``)."""
        self._set_range("V", volts)
        self._set_range("A", amps)
        model = self._model_for_ranges()
        self._ranges = (
            rng.valid_voltage_range(float(volts), self.config.crest_factor),
            rng.valid_current_range(float(amps), model, self.config.crest_factor),
        )

    def start(self, mark: str, mode: str | None = None) -> None:
        """``Go,<interval>,0,<mark>``; ``mode`` (ranging/testing) from the mark's suffix when not given."""
        if not mark or any(c in mark for c in ",\r\n"):
            raise AnalyzerError(f"bad PTDaemon mark {mark!r}: must be non-empty, without commas or newlines")
        self.mode = mode or ("testing" if mark.endswith("testing") else "ranging")
        self.mark = mark
        self._pending.clear()
        self._polled = []
        if self._tail is not None:
            self._tail.open()
        reply = self.command(f"Go,{self.interval_ms},0,{mark}")
        if not reply.startswith("Starting untimed measurement"):
            self._close_tail_if_any()
            raise AnalyzerError(f"{self.address}: Go refused: {reply!r}")
        self._measuring = True
        self.last_stop = None

    def _close_tail_if_any(self) -> None:
        if self._tail is not None:
            self._tail.close()

    def _poll_tail(self) -> None:
        assert self._tail is not None
        for line in self._tail.poll():
            sample = parse_data_line(line)
            if sample is not None and sample.mark == self.mark:
                self._pending.append(sample)

    def _poll_rl(self) -> None:
        # a multichannel PTDaemon gives every channel's group only to RL,*,* (RL: the sum group alone)
        reply = self.command("RL,*,*" if self.channel else "RL", live=True)
        n = parse_rl_header(reply)
        for _ in range(n):
            line = self._read_data_line()
            sample = parse_data_line(line)
            if sample is None:
                raise ReplyParseError("RL data line is not a sample", line)
            self._pending.append(sample)
            self._polled.append(line)  # RL answers each sample once: spl.txt needs the ones read live too

    def _read_data_line(self) -> str:
        conn = self._check_alive()
        try:
            return conn.read_line()
        except AnalyzerLost as exc:
            self._lost = str(exc)
            raise

    def read_sample(self) -> Reading:
        """The next sample of the running measurement (data-log tail, or RL polls)."""
        return reading_of(self.read_line(), self._ranges, self.config.crest_factor)

    @property
    def ranges(self) -> tuple[float | None, float | None]:
        """The ranges set (None: auto), which each sample's uncertainty is computed on."""
        return self._ranges

    def read_line(self) -> SampleLine:
        """The next sample line of the running measurement (a multichannel line with its groups)."""
        self._check_alive()
        if not self._measuring:
            raise AnalyzerError(f"{self.address}: no measurement running (call start first)")
        budget = self.interval_s + self.config.lost_margin_s
        deadline = time.monotonic() + budget
        while not self._pending:
            if self._tail is not None:
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
        return self._pending.popleft()

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
            result.rl_lines = [*self._polled, *(self._read_data_line() for _ in range(n))]
            result.uncertainty = self.command("Uncertainty")
            result.watts = self.command("Watts")
        finally:
            self._measuring = False
            self._close_tail_if_any()
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
        self._close_tail_if_any()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.process is not None:
            self.process.terminate(self.config.terminate_timeout_s)
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


def _range_text(value: float) -> str:
    """A range argument as power-dev formats numbers (Python ``str(float)``)."""
    return str(float(value))
