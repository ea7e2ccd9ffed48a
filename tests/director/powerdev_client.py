"""The client side of the power-dev protocol, written from power-dev-protocol.md §2 for the tests.

Deliberately independent of the director's server code and of the SUT agent's client: it speaks
only what the document says (CRLF lines, one reply line per command, the chunked download).
"""

from __future__ import annotations

import socket


class ProtocolClient:
    def __init__(self, host: str, port: int, timeout_s: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self._buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        self.sock.sendall(data + b"\r\n")

    def _read_line_bytes(self) -> bytes | None:
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.rstrip(b"\r")

    def read_line(self) -> str | None:
        line = self._read_line_bytes()
        return None if line is None else line.decode("utf-8")

    def command(self, line: str) -> str | None:
        self.send(line)
        return self.read_line()

    def _read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed inside a chunk")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def download(self, sid: str, relpath: str) -> bytes:
        """`download,<sid>,<relpath>`: chunks of `<n>\\r\\n` + n bytes, ending with `0\\r\\n`."""
        self.send(f"download,{sid},{relpath}")
        content = b""
        while True:
            header = self._read_line_bytes()
            if header is None:
                raise EOFError("connection closed inside the download")
            n = int(header)  # "Error" raises ValueError, as in the upstream client
            if n < 0:
                raise ValueError("negative chunk length")
            if n == 0:
                return content
            content += self._read_exact(n)
