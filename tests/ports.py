"""Ports for a whole lab started by a test, chosen so nothing else on the machine can hold them.

A lab's services listen on fixed base ports moved by ``MLPOWER_LAB_PORT_OFFSET``. An offset drawn
at random can land the ports in the kernel's ephemeral range, where any outgoing connection (the
broker clients of other tests) may already hold one: the director then fails with "Address already
in use" (seen in a whole-suite run). So the offset keeps every port below that range, and each port
is bound once to prove it free at the time of choosing.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable
from pathlib import Path

# The lab's base ports (mlpower lab up: power-dev, director, analytics, figures, simulator control,
# agent, simulator SCPI); tests/security/lab.py names them one by one.
LAB_BASE_PORTS = (4950, 8000, 8001, 8002, 8003, 8004, 10001)


def ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_offset(base_ports: Iterable[int] = LAB_BASE_PORTS, step: int = 10) -> int:
    """An offset (a multiple of ``step``) at which every base port is free and outside the ephemeral range."""
    ports = sorted(set(base_ports))
    highest = ephemeral_low() - 1 - ports[-1]
    rng = random.SystemRandom()
    for _ in range(200):
        offset = rng.randrange(step * 100, highest, step)
        if all(_bindable(port + offset) for port in ports):
            return offset
    raise AssertionError(f"no free set of ports below {ephemeral_low()} for the lab")
