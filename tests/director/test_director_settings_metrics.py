"""Settings (the sleeps, MLPP_DEBUG honesty, bad values) and the metrics' arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlpower.director.metrics import DirectorMetrics
from mlpower.director.settings import DirectorSettings
from mlpower.director.sources import Reading
from mlpower.errors import SettingsError
from mlpower.schema import SampleFlag
from mlpower.settings import load_settings


def test_sleep_defaults_to_upstream_and_any_shortening_is_marked_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPP_DEBUG", raising=False)
    monkeypatch.delenv("MLPOWER_ANALYZER_SLEEP_S", raising=False)
    plain = load_settings(DirectorSettings)
    assert (plain.sleep_s, plain.debug) == (10.0, False)
    monkeypatch.setenv("MLPP_DEBUG", "")  # any value, even empty, as upstream
    debug = load_settings(DirectorSettings)
    assert (debug.sleep_s, debug.debug) == (0.5, True)
    monkeypatch.delenv("MLPP_DEBUG")
    monkeypatch.setenv("MLPOWER_ANALYZER_SLEEP_S", "0.1")
    assert load_settings(DirectorSettings).debug is True
    monkeypatch.setenv("MLPOWER_ANALYZER_SLEEP_S", "10")
    assert load_settings(DirectorSettings).debug is False


@pytest.mark.parametrize(("variable", "value"), [
    ("MLPOWER_SAMPLE_INTERVAL_S", "0.05"), ("MLPOWER_POWERDEV_PORT", "70000"), ("MLPOWER_SUT", "a.b"),
    ("MLPOWER_MAX_LINE_BYTES", "10"),
])
def test_bad_settings_name_their_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings(DirectorSettings)


def test_several_analyzers_and_results_dir(tmp_path: Path) -> None:
    s = load_settings(DirectorSettings, analyzer=" a , b ,", results_dir=tmp_path)
    assert s.analyzers == ("a", "b") and s.results_dir == tmp_path


def _r(t: float, w: float | None, flags: int = 0) -> Reading:
    return Reading(t, w, 230.0, None if w is None else w / 230, 0.9, 300.0, 1.0, None if w is None else w * 0.002,
                   flags)


def _value(metrics: DirectorMetrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"analyzer": "a", "channel": "1", "sut": "s"})


def test_metrics_energy_gaps_and_flagged_samples() -> None:
    m = DirectorMetrics(sample_interval_s=1.0)
    m.observe("a", 1, "s", _r(0.0, 100))
    m.observe("a", 1, "s", _r(1.0, 200))
    m.observe("a", 1, "s", _r(2.0, None, int(SampleFlag.MISSING)))
    m.observe("a", 1, "s", _r(3.0, 9999, int(SampleFlag.OVERRANGE)))
    m.observe("a", 1, "s", _r(10.0, 300))  # late: a gap, and at most 1.5 intervals of energy
    assert _value(m, "mlpower_analyzer_power_watts") == 300
    assert _value(m, "mlpower_analyzer_energy_joules_total") == pytest.approx(200 * 1 + 300 * 1.5)
    assert _value(m, "mlpower_analyzer_samples_total") == 5
    assert _value(m, "mlpower_analyzer_sample_gaps_total") == 3
    assert _value(m, "mlpower_analyzer_uncertainty_ratio") == pytest.approx(0.002)
    assert _value(m, "mlpower_analyzer_range_voltage_volts") == 300
    m.set_run("r1", "s", "resnet", "Offline", "testing")
    m.set_run("r2", "s", "resnet", "Offline", "ranging")
    text = m.exposition().decode()
    assert 'run_id="r2"' in text and 'run_id="r1"' not in text
