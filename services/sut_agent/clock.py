"""Clock offset to the director (Cristian's method) and to an NTP server, against the rules' limit.

Pure estimation first: a request/response sample is (local send, remote time, local receive);
the offset is the remote time minus the local midpoint, and its error is at most half the round
trip, so the sample with the shortest round trip is kept. The socket calls live at the bottom.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlpower.sut_agent.errors import ClockOffsetError

MAX_OFFSET_S = 0.4  # client-server and NTP limit (mlperf-power-rules.md §2.4: 400 ms)
NTP_EPOCH_DELTA_S = 2_208_988_800  # 1900-01-01 to 1970-01-01


@dataclass(frozen=True)
class ClockSample:
    sent_utc_s: float
    remote_utc_s: float
    received_utc_s: float

    @property
    def round_trip_s(self) -> float:
        return self.received_utc_s - self.sent_utc_s

    @property
    def offset_s(self) -> float:
        """Remote clock minus local clock."""
        return self.remote_utc_s - (self.sent_utc_s + self.received_utc_s) / 2

    @property
    def upstream_difference_s(self) -> float:
        """power-dev's own test (§2.7): the larger distance of the remote time to either local time."""
        return max(abs(self.sent_utc_s - self.remote_utc_s), abs(self.received_utc_s - self.remote_utc_s))


@dataclass(frozen=True)
class ClockOffset:
    offset_s: float
    round_trip_s: float
    samples: int
    reference: str

    @property
    def uncertainty_s(self) -> float:
        return self.round_trip_s / 2

    def as_dict(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "offset_s": self.offset_s,
            "round_trip_s": self.round_trip_s,
            "uncertainty_s": self.uncertainty_s,
            "samples": self.samples,
            "method": "best round trip of request/response (Cristian)",
        }


def best_offset(samples: list[ClockSample], reference: str) -> ClockOffset:
    if not samples:
        raise ValueError("no clock samples")
    best = min(samples, key=lambda s: s.round_trip_s)
    return ClockOffset(best.offset_s, best.round_trip_s, len(samples), reference)


def check_offset(offset: ClockOffset, limit_s: float = MAX_OFFSET_S, *, allow: bool = False) -> bool:
    """True when within the limit; False when over it but allowed; raises when over it and not allowed."""
    if abs(offset.offset_s) <= limit_s:
        return True
    if allow:
        return False
    raise ClockOffsetError(
        f"clock offset to {offset.reference} is {offset.offset_s * 1000:+.1f} ms "
        f"(round trip {offset.round_trip_s * 1000:.1f} ms), beyond the {limit_s * 1000:.0f} ms limit; "
        "synchronise the clocks (NTP) or pass --allow-clock-offset for a non-compliant run"
    )


def measure(ask_remote_utc_s: Callable[[], float], reference: str, count: int = 3,
            now_utc_s: Callable[[], float] = time.time) -> ClockOffset:
    """Ask ``count`` times and keep the best round trip."""
    samples = []
    for _ in range(max(1, count)):
        sent = now_utc_s()
        remote = ask_remote_utc_s()
        samples.append(ClockSample(sent, remote, now_utc_s()))
    return best_offset(samples, reference)


def ntp_offset_from_timestamps(t1: float, t2: float, t3: float, t4: float) -> tuple[float, float]:
    """SNTP (RFC 4330): offset ((t2 - t1) + (t3 - t4)) / 2 and delay (t4 - t1) - (t3 - t2)."""
    return ((t2 - t1) + (t3 - t4)) / 2, (t4 - t1) - (t3 - t2)


def _ntp_time(data: bytes, offset: int) -> float:
    seconds, fraction = struct.unpack("!II", data[offset : offset + 8])
    return seconds - NTP_EPOCH_DELTA_S + fraction / 2**32


# --------------------------------------------------------------------------- edges (sockets)


def ntp_offset(host: str, port: int = 123, timeout_s: float = 5.0) -> ClockOffset:
    """One SNTPv4 query (UDP 123, 5 s timeout, as power-dev's check does)."""
    request = b"\x23" + 47 * b"\0"  # LI 0, version 4, mode 3 (client)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout_s)
            t1 = time.time()
            sock.sendto(request, (host, port))
            data, _ = sock.recvfrom(512)
            t4 = time.time()
    except OSError as exc:
        raise ClockOffsetError(f"NTP server {host}:{port} did not answer: {exc}") from exc
    if len(data) < 48:
        raise ClockOffsetError(f"NTP server {host}:{port} sent a short reply ({len(data)} bytes)")
    offset_s, delay_s = ntp_offset_from_timestamps(t1, _ntp_time(data, 32), _ntp_time(data, 40), t4)
    return ClockOffset(offset_s, delay_s, 1, f"ntp {host}")
