"""deploy/prometheus: promtool accepts the configurations and rules; the alerts' own unit tests pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import DEPLOY, DeployTools, derive_config
from .promql import alert_vector, load_rules

HERE = Path(__file__).resolve().parent
ALERTS = DEPLOY / "prometheus" / "alerts.yml"


def promtool(tools: DeployTools, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools.promtool), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("config", [DEPLOY / "prometheus" / "prometheus.yml",
                                    DEPLOY / "k8s" / "base" / "prometheus" / "prometheus.yml"],
                         ids=["compose", "k8s-base"])
def test_promtool_checks_the_configuration(deploy_tools: DeployTools, config: Path) -> None:
    result = promtool(deploy_tools, "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_the_rules(deploy_tools: DeployTools) -> None:
    result = promtool(deploy_tools, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass(deploy_tools: DeployTools) -> None:
    result = promtool(deploy_tools, "test", "rules", str(HERE / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


# A broken threshold or broken idle handling must make the unit tests fail, naming the alert.
MUTATIONS = {
    "uncertainty threshold 2 %": ('|testing"})) > 0.01', '|testing"})) > 0.02', "MlpowerUncertaintyAboveOnePercent"),
    "uncertainty without the running-phase guard": ('(mlpower_run_info{phase=~"ranging|testing"})) > 0.01',
                                                    "(mlpower_run_info)) > 0.01", "MlpowerUncertaintyAboveOnePercent"),
    "silent alert in any phase": ('(mlpower_run_info{phase=~"ranging|testing"})) < 0.5',
                                  '(mlpower_run_info{phase=~".+"})) < 0.5', "MlpowerAnalyzerSilentDuringRun"),
    "gap alert from 2 gaps on": ("(increase(mlpower_analyzer_sample_gaps_total[5m])) > 0",
                                 "(increase(mlpower_analyzer_sample_gaps_total[5m])) > 1", "MlpowerSampleGaps"),
    "clock offset 500 ms": ("(abs(mlpower_clock_offset_seconds)) > 0.4", "(abs(mlpower_clock_offset_seconds)) > 0.5",
                            "MlpowerClockOffsetHigh"),
    "service down without RabbitMQ": ('up{job=~"mlpower-.*|rabbitmq"}', 'up{job=~"mlpower-.*"}', "MlpowerServiceDown"),
    "dead letters from 5 on": ("(mlpower_dead_letter_messages) > 0", "(mlpower_dead_letter_messages) > 4",
                               "MlpowerDeadLetters"),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
def test_alert_unit_tests_catch_a_broken_threshold_or_idle_handling(deploy_tools: DeployTools, tmp_path: Path,
                                                                    mutation: str) -> None:
    old, new, alert = MUTATIONS[mutation]
    rules = ALERTS.read_text()
    assert rules.count(old) == 1, f"the mutation no longer applies: {old!r}"
    (tmp_path / "alerts.yml").write_text(rules.replace(old, new))
    tests = yaml.safe_load((HERE / "alerts_test.yml").read_text())
    tests["rule_files"] = [str(tmp_path / "alerts.yml")]
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests))
    result = promtool(deploy_tools, "test", "rules", str(tmp_path / "alerts_test.yml"))
    assert result.returncode != 0 and alert in result.stdout + result.stderr, result.stdout


def test_every_alert_is_tested_firing_and_clearing() -> None:
    tests = yaml.safe_load((HERE / "alerts_test.yml").read_text())["tests"]
    firing: set[str] = set()
    cleared: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else cleared).add(check["alertname"])
    alerts = {rule["alert"] for rule in load_rules() if "alert" in rule}
    assert alerts - firing == set(), "alerts without a firing test"
    assert alerts - cleared == set(), "alerts without a quiet or clearing test"


def test_every_alert_links_its_runbook_section() -> None:
    runbook = (DEPLOY / "prometheus" / "RUNBOOK.md").read_text(encoding="utf-8")
    sections = {line[3:].strip().lower() for line in runbook.splitlines() if line.startswith("## ")}
    for rule in load_rules():
        if "alert" in rule:
            url = rule["annotations"].get("runbook_url", "")
            assert url == f"deploy/prometheus/RUNBOOK.md#{rule['alert'].lower()}", rule["alert"]
            assert rule["alert"].lower() in sections, rule["alert"]


def test_every_alert_has_a_severity_a_summary_and_a_comparable_vector() -> None:
    alerts = [rule for rule in load_rules() if "alert" in rule]
    assert {rule["alert"] for rule in alerts} >= {
        "MlpowerLiveComplianceError", "MlpowerLiveComplianceWarning", "MlpowerAnalyzerLost",
        "MlpowerSampleGaps", "MlpowerUncertaintyAboveOnePercent"}
    for rule in alerts:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert alert_vector(rule["expr"]) != rule["expr"].strip()


def test_derived_test_configuration_remaps_targets_and_keeps_the_rules() -> None:
    config = derive_config({"director:8000": "127.0.0.1:1", "mlpower-analytics": ["127.0.0.1:2", "127.0.0.1:3"]},
                           "127.0.0.1:9")
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert jobs == {"prometheus": ["127.0.0.1:9"], "mlpower-director": ["127.0.0.1:1"],
                    "mlpower-analytics": ["127.0.0.1:2", "127.0.0.1:3"]}
    assert config["rule_files"] == [str(ALERTS.resolve())]
    with pytest.raises(ValueError, match="directr:8000"):
        derive_config({"directr:8000": "127.0.0.1:1"}, "127.0.0.1:9")
