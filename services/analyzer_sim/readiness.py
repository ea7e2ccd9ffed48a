"""Wait until a socket or pty can be read, for any descriptor number.

``select.select`` refuses descriptors at or above FD_SETSIZE (1024) with ``ValueError``: in a
long-lived process (a test session, a lab with many connections) an accepted socket can get
such a number, and a server loop built on ``select`` then drops the client at once or never
answers. ``poll`` has no such limit (these servers are POSIX-only already: ptys, ``tty``).
"""

from __future__ import annotations

import select
import socket

_READ_EVENTS = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR


def wait_readable(target: socket.socket | int, timeout_s: float) -> bool:
    """True when ``target`` has data, a pending connection, EOF or an error; False after ``timeout_s``.

    A closed socket (descriptor -1) raises ``ValueError``, as ``select`` did."""
    poller = select.poll()
    poller.register(target, _READ_EVENTS)
    return bool(poller.poll(max(0, int(timeout_s * 1000))))
