"""The power-dev client/server protocol's vocabulary, shared by the director's server and the SUT
agent's client (power-dev-protocol.md section 2): magic strings, the label rule, the files a
client downloads and the TCP keepalive both ends set."""

from __future__ import annotations

import re
import socket

PROTOCOL_VERSION = 3
CLIENT_MAGIC = f"mlcommons/power client v{PROTOCOL_VERSION}"
SERVER_MAGIC = f"mlcommons/power server v{PROTOCOL_VERSION}"
DEFAULT_PORT = 4950
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9_\-]*$")
"""Labels and ids: only this alphabet, so commas cannot occur inside a field."""

FETCH_FILES: tuple[str, ...] = (
    "power/ptd_logs.txt",
    "ranging/spl.txt",
    "power/server.json",
    "power/server.log",
    "run_1/spl.txt",
    "run_1/ptd_out.txt",
)
"""power-dev's FETCH_FILES_LIST, in the client's order: the only files ``download`` serves."""

CHUNK_BYTES = 1 << 20
"""The download stream's largest chunk."""

KEEPALIVE = {"TCP_KEEPIDLE": 2, "TCP_KEEPINTVL": 2, "TCP_KEEPCNT": 10}
"""Idle 2 s, probes every 2 s, 10 probes: a dead peer shows after about 22 s."""


def set_keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE.items():
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
