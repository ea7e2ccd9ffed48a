"""Fetch the public result CSVs into a local cache, checked against the SHA-256 sums in ``sources.json``.

For users with internet access; everything else reads the folder ``MLPOWER_DATA_DIR`` points at
(the cache is such a folder). A file already in the cache with the right checksum is not fetched
again; a download whose checksum does not match is discarded with an error naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mlpower.figures.errors import DownloadError

SOURCES_FILE = "sources.json"


def expected_files() -> dict[str, dict[str, Any]]:
    document = json.loads(resources.files("mlpower.figures").joinpath(SOURCES_FILE).read_bytes())
    return document["files"]


@dataclass
class DownloadReport:
    cache_dir: str
    fetched: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download(
    cache_dir: Path, base_url: str, *, timeout_s: float = 30.0, files: dict[str, dict[str, Any]] | None = None
) -> DownloadReport:
    import httpx

    files = files or expected_files()
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    report = DownloadReport(str(cache_dir))
    base = base_url if base_url.endswith("/") else base_url + "/"
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        for name, expected in files.items():
            target = cache_dir / name
            if target.is_file() and _sha256(target) == expected["sha256"]:
                report.cached.append(name)
                continue
            url = base + name
            try:
                response = client.get(url)
            except httpx.HTTPError as exc:
                raise DownloadError(f"{name}: cannot fetch {url}: {exc}") from exc
            if response.status_code != 200:
                raise DownloadError(f"{name}: {url} answered HTTP {response.status_code}")
            got = hashlib.sha256(response.content).hexdigest()
            if got != expected["sha256"]:
                raise DownloadError(
                    f"{name}: checksum mismatch from {url}: expected sha256 {expected['sha256']}, "
                    f"got {got}; the file was not stored"
                )
            tmp = target.with_name(f".{name}.part{os.getpid()}")
            tmp.write_bytes(response.content)
            os.replace(tmp, target)
            report.fetched.append(name)
    (cache_dir / "SHA256SUMS").write_text("".join(f"{v['sha256']}  {k}\n" for k, v in files.items()))
    return report
