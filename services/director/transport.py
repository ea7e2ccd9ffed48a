"""Bytes to and from the analyzer: lines over pyvisa (pyvisa-py) or pyserial, with timeouts.

The WT310E driver talks in text lines; a ``Transport`` sends a line with the write terminator
and returns the next line with the terminators (LF, CR+LF) stripped. Failures become director
errors here, once:

* no reply within the timeout -> ``AnalyzerTimeout`` (an ``AnalyzerLost``; a query the meter did
  not understand also gets no reply, so the driver may then look at the error queue);
* connection closed, device gone, I/O error -> ``AnalyzerLost``;
* a reply longer than ``max_line`` bytes without a terminator -> ``ReplyParseError``.

Resources: any VISA resource string goes through pyvisa with the pyvisa-py backend (``@py``)
unless told otherwise: ``TCPIP0::host::10001::SOCKET`` (raw LF socket, the simulator),
``TCPIP::host::INSTR`` (VXI-11, the real meter), ``USB0::0x0B21::0x0025::<SN>::INSTR``,
``GPIB0::<addr>::INSTR``, ``ASRL<dev>::INSTR``. A device path (``/dev/ttyUSB0``, ``/dev/pts/3``,
``COM3``) goes through pyserial, 9600 8N1 without handshaking by default, CR+LF written.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import time
from abc import ABC, abstractmethod
from typing import Any

from mlpower.director.errors import AnalyzerError, AnalyzerLost, AnalyzerTimeout, ReplyParseError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 2.0
MAX_LINE = 65536

try:  # pyserial on POSIX lets termios.error (not an OSError) escape from flush() on a vanished tty
    import termios

    _TTY_ERRORS: tuple[type[BaseException], ...] = (OSError, termios.error)
except ImportError:  # pragma: no cover - Windows
    _TTY_ERRORS = (OSError,)


def peer_closed(sock: socket.socket) -> bool:
    """Whether the other end of a connected TCP socket has closed it (EOF or reset), without
    consuming data or blocking."""
    timeout = sock.gettimeout()
    try:
        sock.settimeout(0.0)
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass


def _strip_line(raw: bytes) -> str:
    return raw.decode("ascii", errors="backslashreplace").rstrip("\r\n")


class Transport(ABC):
    """A line-oriented connection to one analyzer."""

    address: str
    timeout_s: float

    def __init__(self, address: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, history: int = 200) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.address = address
        self.timeout_s = timeout_s
        self.history: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=history)
        """The last exchanges as (t_utc_s, ">" sent or "<" received, text), for evidence."""

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def _read_line(self, timeout_s: float) -> bytes: ...

    @abstractmethod
    def clear_input(self) -> None:
        """Discard whatever the analyzer sent that was not read (after a timeout)."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def write_termination(self) -> str: ...

    def write(self, line: str) -> None:
        self.history.append((time.time(), ">", line))
        self._write((line + self.write_termination).encode("ascii"))

    def read_line(self, timeout_s: float | None = None) -> str:
        raw = self._read_line(self.timeout_s if timeout_s is None else timeout_s)
        text = _strip_line(raw)
        self.history.append((time.time(), "<", text))
        return text

    def query(self, line: str, timeout_s: float | None = None) -> str:
        self.write(line)
        return self.read_line(timeout_s)

    def __enter__(self) -> Transport:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- pyvisa


class VisaTransport(Transport):
    """pyvisa with (by default) the pure-Python pyvisa-py backend."""

    def __init__(
        self,
        resource: str,
        *,
        backend: str = "@py",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        open_timeout_s: float = 5.0,
        write_termination: str = "\n",
        read_termination: str = "\n",
        baudrate: int = 9600,
        history: int = 200,
    ) -> None:
        super().__init__(resource, timeout_s=timeout_s, history=history)
        self.backend = backend
        self.open_timeout_s = open_timeout_s
        self._write_term = write_termination
        self._read_term = read_termination
        self.baudrate = baudrate
        self._rm: Any = None
        self._inst: Any = None
        self._timeout_set: float | None = None

    @property
    def write_termination(self) -> str:
        return self._write_term

    def open(self) -> None:
        import pyvisa

        try:
            self._rm = pyvisa.ResourceManager(self.backend)
            self._inst = self._rm.open_resource(self.address, open_timeout=int(self.open_timeout_s * 1000))
        except (pyvisa.errors.Error, OSError, ValueError) as exc:
            self._close_rm()
            raise AnalyzerError(f"cannot open {self.address} through pyvisa ({self.backend}): {exc}") from exc
        refused = self._socket_error()
        if refused:
            self.close()
            raise AnalyzerError(f"cannot open {self.address} through pyvisa ({self.backend}): {refused}")
        inst = self._inst
        inst.read_termination = self._read_term
        inst.write_termination = ""  # Transport.write adds it
        if self.address.upper().startswith("ASRL"):
            inst.baud_rate = self.baudrate
        self._set_timeout(self.timeout_s)

    def _set_timeout(self, timeout_s: float) -> None:
        if self._timeout_set != timeout_s:
            self._inst.timeout = max(1, int(timeout_s * 1000))
            self._timeout_set = timeout_s

    def _require(self) -> Any:
        if self._inst is None:
            raise AnalyzerLost(f"{self.address}: not open")
        return self._inst

    def _py_session(self) -> Any:
        """pyvisa-py's session object behind the instrument (None for another backend or when closed)."""
        try:
            return self._inst.visalib.sessions[self._inst.session]
        except Exception:  # noqa: BLE001 - another backend or session type
            return None

    def _raw_socket(self) -> socket.socket | None:
        sock = getattr(self._py_session(), "interface", None)
        return sock if isinstance(sock, socket.socket) else None

    def _pending_bytes(self) -> int | None:
        """Bytes pyvisa-py has received but not returned yet (None when unknown)."""
        buffer = getattr(self._py_session(), "_pending_buffer", None)
        return None if buffer is None else len(buffer)

    def _socket_error(self) -> str:
        """pyvisa-py connects SOCKET resources without noticing a refusal; ask the socket itself."""
        sock = self._raw_socket()
        if sock is None:
            return ""
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            return os.strerror(code)
        try:
            sock.getpeername()
        except OSError as exc:
            return f"not connected ({exc.strerror or exc})"
        return ""

    def _socket_closed(self) -> bool:
        """For a raw SOCKET session: whether the peer closed (pyvisa-py reports that as a timeout)."""
        sock = self._raw_socket()
        return sock is not None and peer_closed(sock)

    def _write(self, data: bytes) -> None:
        import pyvisa

        inst = self._require()
        try:
            inst.write_raw(data)
        except pyvisa.errors.VisaIOError as exc:
            raise AnalyzerLost(f"{self.address}: write failed: {exc.description}") from exc
        except Exception as exc:  # noqa: BLE001 - pyvisa-py lets OS, serial and termios errors through
            raise AnalyzerLost(f"{self.address}: write failed: {exc}") from exc

    def _read_line(self, timeout_s: float) -> bytes:
        import pyvisa
        from pyvisa import constants

        inst = self._require()
        if self._pending_bytes() == 0 and self._socket_closed():
            # the meter went away between replies: say so now rather than after the timeout
            raise AnalyzerLost(f"{self.address}: connection closed by the analyzer")
        self._set_timeout(timeout_s)
        try:
            raw = inst.read_raw()
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == constants.StatusCode.error_timeout:
                if self._socket_closed():
                    raise AnalyzerLost(f"{self.address}: connection closed by the analyzer") from exc
                raise AnalyzerTimeout(f"{self.address}: no reply within {timeout_s:g} s") from exc
            raise AnalyzerLost(f"{self.address}: read failed: {exc.description}") from exc
        except Exception as exc:  # noqa: BLE001 - pyvisa-py lets OS, serial and termios errors through
            raise AnalyzerLost(f"{self.address}: read failed: {exc}") from exc
        if len(raw) > MAX_LINE:
            raise ReplyParseError(f"{self.address}: reply longer than {MAX_LINE} bytes", raw[:200])
        return raw

    def clear_input(self) -> None:
        if self._inst is None:
            return
        sock = self._raw_socket()
        if sock is not None:
            # pyvisa-py's clear() of a SOCKET session reads until the socket would block, and a peer
            # that closed never blocks (recv returns b'' at EOF): it spun forever, holding the
            # director's instrument lock, on a meter that closed the connection (e.g. at its limit)
            self._drain(sock)
            buffer = getattr(self._py_session(), "_pending_buffer", None)
            if buffer is not None:  # another backend or session type keeps none
                buffer.clear()
            return
        try:
            self._inst.clear()
        except Exception as exc:  # noqa: BLE001 - best effort; the next read reports a real loss
            log.debug("%s: clear failed: %s", self.address, exc)

    def _drain(self, sock: socket.socket, limit_bytes: int = 1 << 20) -> None:
        """Discard what the meter sent and nobody read; a closed connection is a lost analyzer."""
        timeout, drained = sock.gettimeout(), 0
        try:
            sock.settimeout(0.0)
            while drained < limit_bytes:
                chunk = sock.recv(65536)
                if not chunk:
                    raise AnalyzerLost(f"{self.address}: connection closed by the analyzer")
                drained += len(chunk)
        except (BlockingIOError, InterruptedError):
            pass  # nothing more waiting: cleared
        except OSError as exc:
            raise AnalyzerLost(f"{self.address}: connection lost: {exc.strerror or exc}") from exc
        finally:
            try:
                sock.settimeout(timeout)
            except OSError:
                pass

    def _close_rm(self) -> None:
        # Dropped, never closed: pyvisa gives every caller in a process the same ResourceManager, and
        # closing it closes every resource it opened, so the other analyzers of this director (a SUT
        # with two power supplies) or of another lab in the process would lose their connections.
        self._rm = None

    def close(self) -> None:
        if self._inst is not None:
            session = getattr(self._inst, "session", None)
            sessions = getattr(getattr(self._inst, "visalib", None), "sessions", None)
            try:
                self._inst.close()
            except Exception:  # noqa: BLE001 - closing a lost connection
                pass
            if isinstance(sessions, dict):
                # pyvisa-py keeps every closed session in its library-wide table (and the shared
                # ResourceManager is never closed): a director that reopens its meter, or probes it
                # while idle, would grow that table for as long as it runs
                sessions.pop(session, None)
            self._inst = None
        self._close_rm()


# --------------------------------------------------------------------------- pyserial


class SerialTransport(Transport):
    """RS-232 through pyserial (a USB adapter, a pty): 9600 8N1, no handshaking, CR+LF by default."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        rtscts: bool = False,
        xonxoff: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        write_termination: str = "\r\n",
        history: int = 200,
    ) -> None:
        super().__init__(port, timeout_s=timeout_s, history=history)
        self.settings = {
            "baudrate": baudrate,
            "bytesize": bytesize,
            "parity": parity,
            "stopbits": stopbits,
            "rtscts": rtscts,
            "xonxoff": xonxoff,
        }
        self._write_term = write_termination
        self._ser: Any = None
        self._buf = bytearray()

    @property
    def write_termination(self) -> str:
        return self._write_term

    def open(self) -> None:
        import serial

        try:
            self._ser = serial.serial_for_url(self.address, timeout=0.05, write_timeout=self.timeout_s, **self.settings)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise AnalyzerError(f"cannot open serial port {self.address}: {exc}") from exc
        self._buf.clear()

    def _require(self) -> Any:
        if self._ser is None:
            raise AnalyzerLost(f"{self.address}: not open")
        return self._ser

    def _write(self, data: bytes) -> None:
        import serial

        ser = self._require()
        try:
            ser.write(data)
            ser.flush()
        except serial.SerialTimeoutException as exc:
            raise AnalyzerLost(f"{self.address}: write timed out (flow control, cable?)") from exc
        except (serial.SerialException, *_TTY_ERRORS) as exc:
            raise AnalyzerLost(f"{self.address}: write failed: {exc}") from exc

    def _read_line(self, timeout_s: float) -> bytes:
        import serial

        ser = self._require()
        deadline = time.monotonic() + timeout_s
        while True:
            nl = self._buf.find(b"\n", 0, MAX_LINE + 1)
            if nl >= 0:
                line = bytes(self._buf[: nl + 1])
                del self._buf[: nl + 1]
                return line
            if len(self._buf) > MAX_LINE:
                raw = bytes(self._buf[:200])
                self._buf.clear()
                raise ReplyParseError(f"{self.address}: reply longer than {MAX_LINE} bytes", raw)
            if time.monotonic() >= deadline:
                partial = bytes(self._buf)
                self._buf.clear()
                raise AnalyzerTimeout(
                    f"{self.address}: no reply within {timeout_s:g} s" + (f" (partial {partial!r})" if partial else "")
                )
            try:
                chunk = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, *_TTY_ERRORS) as exc:
                raise AnalyzerLost(f"{self.address}: read failed: {exc}") from exc
            self._buf.extend(chunk)

    def clear_input(self) -> None:
        self._buf.clear()
        if self._ser is None:
            return
        try:
            self._ser.reset_input_buffer()
            while self._ser.in_waiting:
                self._ser.read(self._ser.in_waiting)
        except Exception as exc:  # noqa: BLE001 - best effort
            log.debug("%s: clear failed: %s", self.address, exc)

    def close(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except Exception:  # noqa: BLE001
                pass
            self._ser = None


def open_transport(kind: str, address: str, **options: Any) -> Transport:
    """A transport (not yet opened) for a parsed resource: ``kind`` "visa" or "serial"."""
    if kind == "visa":
        return VisaTransport(address, **options)
    if kind == "serial":
        return SerialTransport(address, **options)
    raise ValueError(f"no transport for resource kind {kind!r}")
