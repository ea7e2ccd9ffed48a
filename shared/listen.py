"""One way to open a TCP listening socket, for every server of the project (HTTP, power-dev, SCPI, PTD).

The address family follows the address (``::1`` or ``[::1]`` is IPv6, anything else IPv4), so an
IPv6 bind address works everywhere instead of failing in ``bind`` with a resolver error, and a
failure names what could not listen where, as one ``MlpowerError`` (an error the command line prints
in one line), never a traceback.
"""

from __future__ import annotations

import socket

from mlpower.errors import MlpowerError


class ListenError(MlpowerError):
    """A server cannot listen on the address and port it was given."""


def url_host(host: str) -> str:
    """The host as it goes before ``:port`` in an address or URL: IPv6 in one pair of brackets,
    whether it was given with them (``[::1]``) or without (``::1``)."""
    address = host.strip("[]")
    return f"[{address}]" if ":" in address else address


def listen(host: str, port: int, *, backlog: int, what: str,
           error: type[MlpowerError] = ListenError) -> socket.socket:
    """A bound, listening TCP socket (``SO_REUSEADDR``); ``error`` is raised, naming ``what``, when it cannot be."""
    address = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise error(f"{what} cannot listen on {url_host(host)}:{port}: {exc.strerror or exc}") from exc
    return sock
