"""A minimal power-dev v3 server written from power-dev-protocol.md §2, for the client's tests.

No PTDaemon and no sleeps: ``stop`` writes a few made-up ``spl.txt`` lines, ``done`` writes
``server.json``/``server.log``. Faults for the bad-input tests: a skewed clock, and closing the
connection right after answering a given command.
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

from mlpower.ptdformat import console_line, ptd_logs_text, sample_line, spl_text

CLIENT_MAGIC = "mlcommons/power client v3"
SERVER_MAGIC = "mlcommons/power server v3"
DOWNLOADABLE = ("power/ptd_logs.txt", "ranging/spl.txt", "power/server.json", "power/server.log",
                "run_1/spl.txt", "run_1/ptd_out.txt")


class FakePowerDevServer:
    def __init__(self, *, clock_skew_s: float = 0.0, close_after: str | None = None,
                 close_delay_s: float = 0.0) -> None:
        self.clock_skew_s = clock_skew_s
        self.close_after = close_after  # a command prefix: answer it, then hang up after close_delay_s
        self.close_delay_s = close_delay_s
        self.commands: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="fake-powerdev-"))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self.disconnected = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FakePowerDevServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.2)
                self._handle(conn)
            self.disconnected.set()

    def _handle(self, conn: socket.socket) -> None:
        buffer = b""
        session: dict[str, object] = {}
        messages: list[dict[str, object]] = []
        hang_up_at: float | None = None
        while not self._stop.is_set():
            if hang_up_at is not None and time.monotonic() >= hang_up_at:
                return
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                command = raw.decode().rstrip("\r")
                self.commands.append(command)
                received = time.time()
                if command.startswith("download,"):
                    self._send_file(conn, session, command)
                    continue
                # power-dev records every exchange except done, download and cleanup (§4.3).
                recorded = not (command.startswith("cleanup,") or command.endswith(",done"))
                if recorded:
                    messages.append({"cmd": command, "cmd_time": received, "reply": "", "reply_time": 0.0})
                reply = self._reply(command, session, messages)
                if recorded:
                    messages[-1].update(reply=reply, reply_time=time.time())
                conn.sendall(reply.encode() + b"\r\n")
                if self.close_after is not None and command.startswith(self.close_after) and hang_up_at is None:
                    hang_up_at = time.monotonic() + self.close_delay_s
                    if self.close_delay_s <= 0:
                        return

    def _reply(self, command: str, session: dict[str, object], messages: list[dict[str, object]]) -> str:
        fields = command.split(",")
        if command == CLIENT_MAGIC:
            return SERVER_MAGIC
        if command == "time":
            return str(time.time() + self.clock_skew_s)
        if command == "stop":
            return "OK"
        if fields[0] == "new" and len(fields) == 3:
            sid = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime()) + (f"_{fields[1]}" if fields[1] else "")
            session.update(sid=sid, client_uuid=fields[2], server_uuid=str(uuid.uuid4()))
            (self.root / sid / "power").mkdir(parents=True)
            return f"OK {sid},{session['server_uuid']}"
        if fields[0] == "session" and len(fields) >= 3:
            if fields[1] not in (session.get("sid"), "*"):
                return "Error: unknown session"
            return self._session_command(fields[2:], session, messages)
        if fields[0] == "cleanup":
            return "OK"
        return "Error"

    def _session_command(self, args: list[str], session: dict[str, object], messages: list[dict[str, object]]) -> str:
        sid = str(session["sid"])
        folder = self.root / sid
        if args[0] == "start":
            return "OK"
        if args[0] == "stop":
            mode_dir = "ranging" if args[1] == "ranging" else "run_1"
            (folder / mode_dir).mkdir(exist_ok=True)
            now = time.time()
            line = sample_line(now, 100.0, 230.0, 0.5, 0.9, mark=f"{sid}_{args[1]}")
            (folder / mode_dir / "spl.txt").write_text(spl_text([line] * 3))
            if args[1] == "testing":
                (folder / "run_1" / "ptd_out.txt").write_text("Analyzer 1:\nPower: Watts,100,100,100,3,0,3 \n")
                (folder / "power" / "ptd_logs.txt").write_text(
                    ptd_logs_text([console_line(now, f"Go with mark '{sid}_ranging'") + "\n"]))
            return "OK"
        if args[0] == "done":
            (folder / "power" / "server.log").write_text("ptd-server fake\n")
            summary = {"version": "1.0", "timezone": 0, "modules": {}, "sources": {}, "messages": messages,
                       "uuid": {"client": session["client_uuid"], "server": session["server_uuid"]},
                       "session_name": sid, "results": {}, "phases": {}, "ptd_messages": [], "ptd_config": []}
            (folder / "power" / "server.json").write_text(json.dumps(summary, indent=4))
            return "OK"
        return "Error Unknown session command"

    def _send_file(self, conn: socket.socket, session: dict[str, object], command: str) -> None:
        _, sid, relpath = command.split(",", 2)
        path = self.root / sid / relpath
        if sid != session.get("sid") or relpath not in DOWNLOADABLE or not path.is_file():
            conn.sendall(b"Error\r\n")
            return
        data = path.read_bytes()
        if data:
            conn.sendall(f"{len(data)}\r\n".encode() + data)
        conn.sendall(b"0\r\n")
