"""Downloads are confined to the session's own files: over HTTP and over the power-dev protocol.

A finished session, a sentinel file outside the results folder, and a symlink inside the run
folder pointing at it. Every traversal attempt (``../``, absolute paths, ``%2e%2e`` and ``%2f``
encodings, backslashes, NUL bytes, the symlink) is refused and never returns the sentinel; the
whole temporary tree (names, sizes, modification times) is the same afterwards.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower.director.service import DirectorService

from tests.director.conftest import fast_settings
from tests.director.fakes import FakeSource
from tests.director.powerdev_client import ProtocolClient

SECRET = b"SENTINEL-outside-the-results-folder"
CLIENT = "mlcommons/power client v3"


class Lab:
    def __init__(self, root: Path, service: DirectorService, sid: str, client: ProtocolClient) -> None:
        self.root, self.service, self.sid, self.client = root, service, sid, client
        self.sentinel = root / "outside" / "secret.txt"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SECRET)
    service = DirectorService(fast_settings(tmp_path / "results", analyzer_sleep_s=0.0),
                              source_factory=lambda resource, interval_s: FakeSource()).start()
    client = ProtocolClient("127.0.0.1", service.powerdev_port, timeout_s=10)
    try:
        assert client.command(CLIENT) == "mlcommons/power server v3"
        reply = client.command(f"new,trav,{uuid.uuid4()}") or ""
        assert reply.startswith("OK "), reply
        sid = reply[3:].split(",")[0]
        for command in ("start,ranging", "stop,ranging", "start,testing", "stop,testing", "done"):
            assert client.command(f"session,{sid},{command}") == "OK", command
        run = tmp_path / "results" / sid
        os.symlink(tmp_path / "outside" / "secret.txt", run / "power" / "link.txt")
        os.symlink(tmp_path / "outside", run / "escape")
        yield Lab(tmp_path, service, sid, client)
    finally:
        client.close()
        service.stop()


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


def _raw_get(port: int, target: str) -> tuple[int, bytes]:
    """A request line sent as written: no client library normalises the dots or decodes anything."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_http_downloads_refuse_traversal_and_leave_the_file_system_alone(lab: Lab) -> None:
    port, sid = lab.service.http_port, lab.sid
    status, body = _raw_get(port, f"/runs/{sid}/files/power/server.json")
    assert status == 200 and body.startswith(b"{")  # the session's own file is served
    before = _tree(lab.root)
    attempts = [
        f"/runs/{sid}/files/../../outside/secret.txt",
        f"/runs/{sid}/files/%2e%2e/%2e%2e/outside/secret.txt",
        f"/runs/{sid}/files/%2E%2E%2F%2E%2E%2Foutside%2Fsecret.txt",
        f"/runs/{sid}/files/power/../../../outside/secret.txt",
        f"/runs/{sid}/files/..%5c..%5coutside%5csecret.txt",
        f"/runs/{sid}/files/{lab.sentinel}",  # absolute: //tmp/...
        f"/runs/{sid}/files/%2f{str(lab.sentinel).lstrip('/').replace('/', '%2f')}",
        f"/runs/{sid}/files/power/link.txt",  # a symlink out of the run folder
        f"/runs/{sid}/files/escape/secret.txt",  # through a symlinked directory
        f"/runs/{sid}/files/power/server.json%00",
        f"/runs/{sid}/files/%00/../../outside/secret.txt",
        "/runs/..%2f..%2foutside/files/secret.txt",
        "/runs/%2e%2e/files/outside/secret.txt",
        f"/runs/{sid}%00/files/power/server.json",
    ]
    for target in attempts:
        status, body = _raw_get(port, target)
        assert status in (400, 403, 404), (target, status)
        assert SECRET not in body, target
    assert _tree(lab.root) == before
    assert lab.sentinel.read_bytes() == SECRET


def test_powerdev_downloads_refuse_traversal_and_leave_the_file_system_alone(lab: Lab) -> None:
    sid, client = lab.sid, lab.client
    assert client.download(sid, "power/server.json").startswith(b"{")  # the session's own file
    os.replace(lab.root / "results" / sid / "power" / "link.txt", lab.root / "results" / sid / "run_1" / "spl.txt")
    time.sleep(0.01)  # coarse file-system clocks: a later write must show as a new st_mtime_ns in _tree
    before = _tree(lab.root)
    attempts = [
        f"download,{sid},../../outside/secret.txt",
        f"download,{sid},{lab.sentinel}",
        f"download,{sid},%2e%2e/%2e%2e/outside/secret.txt",
        f"download,{sid},power/../../../outside/secret.txt",
        f"download,{sid},power/server.json\x00",
        f"download,{sid},\x00../../outside/secret.txt",
        f"download,{sid},escape/secret.txt",
        f"download,{sid},run_1/spl.txt",  # an allowed name that is now a symlink out of the folder
        f"download,../{sid},power/server.json",
        "download,*,power/server.json",
        f"cleanup,../{sid}",
    ]
    for line in attempts:
        assert client.command(line) == "Error", line
    assert _tree(lab.root) == before
    assert lab.sentinel.read_bytes() == SECRET
    assert client.command("time") is not None  # the connection is still served
