"""The PTDaemon emulator's multichannel commands (device type 77, three channels) fed hostile lines:
every one gets an error (or, with extra arguments, the command's ordinary answer) in one line,
nothing is echoed longer than the daemon's own limit, a measurement in progress survives them, and
the daemon still answers the next client."""

from __future__ import annotations

import socket
from pathlib import Path

from mlpower.analyzer_sim.simulator import start_ptd

from tests.security.ledger import LEDGER

HOSTILE = [
    "RL,*,*,*", "RL,*", "RL,-5", "RL,99999999999999999999999", "RL,nan", "SR,V,Auto,3", "SR,A,1e308", "SR,A,nan",
    "SR,A,-1", "SR,A,inf", "SR,X,5", "SR,V," + "9" * 3000, "Go,10,-1", "Go,1,0", "Go,1000,0," + "M" * 300,
    "Go,1000,0,mark\x1b[2J", "Identify,../../etc/passwd", "Hello,$(touch /tmp/x)", "Watts,1,2,3",
    "\x00\x00", "\xff\xfe", "A" * 4000, ",,,,,,,,", "rl,*,*" + ",*" * 500,
]


def _client(port: int) -> tuple[socket.socket, object]:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    return conn, conn.makefile("rb")


def _ask(conn: socket.socket, reader: object, line: str) -> str:
    conn.sendall(line.encode("utf-8", "surrogateescape") + b"\r\n")
    return reader.readline().decode("utf-8", "replace").strip()  # type: ignore[attr-defined]


def test_hostile_multichannel_commands_get_errors_and_the_measurement_survives(tmp_path: Path) -> None:
    with start_ptd(port=0, log_path=tmp_path / "ptd.log", device_type=77, channels=(1, 2, 3)) as ptd:
        conn, reader = _client(ptd.port)
        try:
            assert _ask(conn, reader, "Hello") == "Hello, PTDaemon here!"
            assert _ask(conn, reader, "Go,1000,0,good").startswith("Starting untimed measurement")
            for line in HOSTILE:
                answer = _ask(conn, reader, line)
                # an error, or the command's ordinary answer with its extra arguments ignored; never an
                # echo of more than the daemon's 64 characters, a control character or a file's content
                refused = (len(answer) <= 400 and "\x1b" not in answer and "root:" not in answer
                           and not (len(line) > 70 and line[:70] in answer) and "$(" not in answer)
                LEDGER.attempt("ptd multichannel", repr(line[:40]), refused)
                assert refused, (line[:60], answer[:300])
            assert _ask(conn, reader, "Stop") == "Stopping untimed measurement"  # the good one was still running
        finally:
            conn.close()
        again, reader = _client(ptd.port)  # and the daemon serves the next client
        try:
            assert _ask(again, reader, "Hello") == "Hello, PTDaemon here!"
        finally:
            again.close()
