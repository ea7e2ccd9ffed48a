"""``mlpower check`` through the real command line: table, JSON, exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlpower.cli import _register, app
from typer.testing import CliRunner

from .trees import SOURCES, edit_json

_register(app)
runner = CliRunner()


def test_check_passes_with_table_and_json(ptd_tree: Path, tmp_path: Path) -> None:
    checksums = tmp_path / "sources_checksums.json"
    checksums.write_text(json.dumps([SOURCES]))
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["check", str(ptd_tree), "--json", str(out), "--sources-checksums", str(checksums)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "ptd_log_messages" in result.output and "verdict: pass" in result.output
    report = json.loads(out.read_text())
    from mlpower.analytics.rules import RULES

    assert report["verdict"] == "pass" and len(report["findings"]) == len(RULES)
    assert report["kind"] == "powerdev" and "power-dev client session" in result.output
    assert report["summary"]["avg_power_w"] > 0


def test_check_fails_with_status_1_naming_the_rule(ptd_tree: Path, tmp_path: Path) -> None:
    edit_json(ptd_tree, "server", lambda d: d.update({"debug": True}))
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["check", str(ptd_tree), "--json", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    failed = [f for f in json.loads(out.read_text())["findings"] if f["status"] == "fail"]
    assert [f["rule"] for f in failed] == ["debug_disabled"] and failed[0]["evidence"] == {"debug": True}


def test_check_on_a_folder_that_is_no_run_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mlpower", "check", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"mlpower: error: {tmp_path}: not a run folder (no power/, ranging/ or run_1/)"


def test_readme_lists_every_rule() -> None:
    from mlpower.analytics.rules import RULES

    readme = (Path(__file__).resolve().parents[2] / "services" / "analytics" / "README.md").read_text()
    assert [r.id for r in RULES if f"| `{r.id}` |" in readme] == [r.id for r in RULES]
