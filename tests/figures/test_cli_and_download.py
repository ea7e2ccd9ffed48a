"""``mlpower figures`` commands, and the download against a local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpower.figures.cli import app
from mlpower.figures.download import download, expected_files
from mlpower.figures.errors import DownloadError
from mlpower.figures.loader import ALL_FILES
from typer.testing import CliRunner


@pytest.fixture
def served(tmp_path: Path, data_dir: Path) -> Iterator[tuple[str, Path]]:
    """The shared CSVs behind http.server on 127.0.0.1 (a free port); yields (base URL, served folder)."""
    folder = tmp_path / "www"
    folder.mkdir()
    for name in ALL_FILES:
        shutil.copyfile(data_dir / name, folder / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    server.shutdown()
    server.server_close()


def test_checksums_are_those_of_the_shared_copies(data_dir: Path) -> None:
    for name, expected in expected_files().items():
        assert hashlib.sha256((data_dir / name).read_bytes()).hexdigest() == expected["sha256"]


def test_download_fetches_verifies_and_caches(served, tmp_path: Path) -> None:
    url, _ = served
    cache = tmp_path / "cache"
    first = download(cache, url)
    assert sorted(first.fetched) == sorted(ALL_FILES) and first.cached == []
    second = download(cache, url)
    assert second.fetched == [] and sorted(second.cached) == sorted(ALL_FILES)
    assert "data_performance.csv" in (cache / "SHA256SUMS").read_text()


def test_download_refuses_a_corrupted_file_and_a_missing_one(served, tmp_path: Path) -> None:
    url, folder = served
    (folder / "data_performance.csv").write_text("Dates,1/1/2020\nResNet,2\n")
    with pytest.raises(DownloadError, match="data_performance.csv: checksum mismatch"):
        download(tmp_path / "cache", url)
    assert not (tmp_path / "cache" / "data_performance.csv").exists()
    (folder / "data_performance.csv").unlink()
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(tmp_path / "cache", url)


def test_download_command_then_build_from_the_cache(served, tmp_path: Path, monkeypatch) -> None:
    url, _ = served
    runner = CliRunner()
    result = runner.invoke(app, ["download", "--cache", str(tmp_path / "cache"), "--url", url])
    assert result.exit_code == 0, result.output
    assert "MLPOWER_DATA_DIR=" in result.output
    monkeypatch.setenv("MLPOWER_DATA_DIR", str(tmp_path / "cache"))
    result = runner.invoke(app, ["build", "--out", str(tmp_path / "out"), "--only", "fig9,fig11b", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "rendered 2" in result.output
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"fig9.png", "fig9.svg", "fig9.json", "fig11b.json"}


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["build", "--out", str(tmp_path), "--only", "fig3"])
    assert result.exit_code == 2 and "unknown figure 'fig3'" in result.output
    result = runner.invoke(app, ["build", "--out", str(tmp_path), "--mode", "fancy", "--only", "fig9"])
    assert result.exit_code == 2 and "unknown mode 'fancy'" in result.output
    result = runner.invoke(app, ["audit", "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "missing" in result.output


def test_audit_command_writes_markdown(tmp_path: Path, data_dir: Path) -> None:
    result = CliRunner().invoke(
        app, ["audit", "--out", str(tmp_path / "a.md"), "--only", "fig2,fig9", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "a.md").read_text()
    assert "Datacenter_max_W" in text and "## fig9" in text and "## fig5a" not in text


def test_build_both_modes_into_subfolders(tmp_path: Path, data_dir: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "build",
            "--out",
            str(tmp_path),
            "--mode",
            "both",
            "--only",
            "fig2",
            "--data-dir",
            str(data_dir),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    paper = json.loads((tmp_path / "paper" / "fig2.json").read_text())
    corrected = json.loads((tmp_path / "corrected" / "fig2.json").read_text())
    assert paper["mode"] == "paper" and corrected["mode"] == "corrected"
    assert paper["key_values"]["Datacenter_max_W"] != corrected["key_values"]["Datacenter_max_W"]
