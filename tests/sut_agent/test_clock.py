"""Clock offset: Cristian's estimate keeps the best round trip; the limit refuses unless allowed."""

from __future__ import annotations

import itertools

import pytest
from mlpower.sut_agent.clock import (
    ClockOffset,
    ClockSample,
    best_offset,
    check_offset,
    measure,
    ntp_offset_from_timestamps,
)
from mlpower.sut_agent.errors import ClockOffsetError


def test_best_round_trip_wins() -> None:
    samples = [ClockSample(100.0, 100.9, 101.0), ClockSample(200.0, 200.35, 200.1), ClockSample(300.0, 301.0, 302.0)]
    best = best_offset(samples, "x")
    assert best.round_trip_s == pytest.approx(0.1)
    assert best.offset_s == pytest.approx(0.3)
    assert best.samples == 3 and best.uncertainty_s == pytest.approx(0.05)


def test_measure_against_a_skewed_remote() -> None:
    local = itertools.count(1000.0, 0.01)  # each local reading advances 10 ms
    offset = measure(lambda: 1000.0 + 0.75 + 0.01, "remote", count=4, now_utc_s=lambda: next(local))
    # First sample: sent 1000.00, received 1000.01, remote 1000.76 -> offset 0.755
    assert offset.offset_s == pytest.approx(0.755)
    assert offset.samples == 4


def test_limit_refuses_unless_allowed() -> None:
    small, large = ClockOffset(0.39, 0.01, 3, "d"), ClockOffset(-0.41, 0.01, 3, "d")
    assert check_offset(small) is True
    with pytest.raises(ClockOffsetError, match=r"-410\.0 ms.*400 ms limit.*--allow-clock-offset"):
        check_offset(large)
    assert check_offset(large, allow=True) is False


def test_sntp_offset_and_delay() -> None:
    offset, delay = ntp_offset_from_timestamps(10.0, 12.05, 12.06, 10.11)
    assert offset == pytest.approx(2.0)
    assert delay == pytest.approx(0.1)


def test_ntp_query_against_a_local_responder() -> None:
    import socket
    import struct
    import threading
    import time

    from mlpower.sut_agent.clock import NTP_EPOCH_DELTA_S, ntp_offset

    def ntp_stamp(t: float) -> bytes:
        seconds = t + NTP_EPOCH_DELTA_S
        return struct.pack("!II", int(seconds), int((seconds % 1) * 2**32))

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))

        def answer() -> None:
            request, peer = server.recvfrom(48)
            assert request[0] & 0x07 == 3  # client mode
            now = time.time() + 1.5  # a server clock 1.5 s ahead
            server.sendto(b"\x24" + 31 * b"\0" + ntp_stamp(now) + ntp_stamp(now), peer)

        thread = threading.Thread(target=answer)
        thread.start()
        offset = ntp_offset("127.0.0.1", server.getsockname()[1], timeout_s=5)
        thread.join()
    assert offset.offset_s == pytest.approx(1.5, abs=0.05)
    with pytest.raises(ClockOffsetError, match="ntp 127.0.0.1"):
        check_offset(offset)
