"""The client's own files of the output tree: ``power/client.json`` and ``power/client.log``.

client.json follows power-dev's summary schema (power-dev-protocol.md §4.3): the upstream keys in
the upstream order, ``json.dumps(indent=4)``, no trailing newline. What power-dev has no key for
(clock offsets, the time-zone contract, LoadGen results, duration compliance) goes under one
extra trailing key, ``mlpower``, which the compliance checker ignores.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

SUMMARY_VERSION = "1.0"
LOG_PREFIX = "client"
SKIPPED_SOURCE_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE_NAME = "mlpower.sut_agent"


class SessionLog(logging.Handler):
    """Buffers the session's log records, formatted as power-dev's client.log (§4.4)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        formatter = logging.Formatter(f"{LOG_PREFIX} %(asctime)s [%(levelname)s] %(message)s")
        formatter.converter = time.gmtime  # UTC like every mlpower timestamp; client.json says timezone 0 offset
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def sha1_file(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_tree(root: Path) -> dict[str, str]:
    """SHA-1 of every file under ``root``, keyed by ``/``-separated relative path, sorted."""
    return {
        path.relative_to(root).as_posix(): sha1_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def source_hashes(package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    return {
        path.relative_to(package_dir).as_posix(): sha1_file(path)
        for path in sorted(package_dir.rglob("*.py"))
        if not SKIPPED_SOURCE_DIRS.intersection(path.relative_to(package_dir).parts)
    }


def loaded_modules(package_name: str = PACKAGE_NAME, package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """The package's loaded modules with a non-empty source file: module name -> relative path."""
    found: dict[str, str] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not (name == package_name or name.startswith(package_name + ".")) or not file:
            continue
        path = Path(file).resolve()
        if path.is_file() and path.stat().st_size > 0 and package_dir in path.parents:
            found[name] = path.relative_to(package_dir).as_posix()
    return dict(sorted(found.items()))


def timezone_west_s() -> int:
    """Seconds west of UTC of this machine, as power-dev records it (``-tm_gmtoff``)."""
    return -int(time.localtime().tm_gmtoff)


def client_summary(
    *,
    messages: list[dict[str, Any]],
    client_uuid: str,
    server_uuid: str,
    session_name: str,
    results: dict[str, str],
    phases: dict[str, list[list[float]]],
    mlpower: dict[str, Any],
    modules: dict[str, str] | None = None,
    sources: dict[str, str] | None = None,
    timezone_s: int | None = None,
) -> dict[str, Any]:
    return {
        "version": SUMMARY_VERSION,
        "timezone": timezone_west_s() if timezone_s is None else timezone_s,
        "modules": loaded_modules() if modules is None else modules,
        "sources": source_hashes() if sources is None else sources,
        "messages": messages,
        "uuid": {"client": client_uuid, "server": server_uuid},
        "session_name": session_name,
        "results": results,
        "phases": phases,
        "ptd_config": [None],
        "mlpower": mlpower,
    }


def dump_summary(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=4)
