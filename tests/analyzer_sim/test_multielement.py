"""WT332E/WT333E: per-element readings, the Σ function, item numbering, per-element ranges, the
SUT's load split over PSUs, and two simulators standing for two meters of one SUT."""

from __future__ import annotations

import json
import math
import socket
import urllib.request

import pytest
from mlpower.analyzer_sim import VirtualClock, start_simulator
from mlpower.analyzer_sim.errors import LoadSpecError
from mlpower.analyzer_sim.instrument import SIGMA, Identity, Instrument, default_items
from mlpower.analyzer_sim.loads import parse_load
from mlpower.analyzer_sim.scpi import Dispatcher
from mlpower.analyzer_sim.settings import Settings
from mlpower.analyzer_sim.split import PsuSplit, element_feed
from mlpower.settings import SettingsError, load_settings


def _dispatcher(model: str, load: str = "constant:900", shares: tuple[float, ...] | None = None,
                imbalance: float = 0.0, clock: VirtualClock | None = None) -> Dispatcher:
    n = {"WT332E": 2, "WT333E": 3}[model]
    inst = Instrument(parse_load(load), clock or VirtualClock(), seed=3, identity=Identity(model=model),
                      feed=element_feed(n, shares, imbalance))
    d = Dispatcher(inst)
    d.execute(":COMM:HEAD OFF")
    return d


def _values(d: Dispatcher, *items: int) -> list[float]:
    return [float(d.execute(f":NUM:NORM:VAL? {i}")) for i in items]


def test_the_split_keeps_the_total_and_moves_the_imbalance() -> None:
    assert PsuSplit((0.5, 0.5), 0.05).effective_shares() == pytest.approx((0.525, 0.475))
    split = PsuSplit((2, 1, 1), 0.03)  # shares are normalised: 0.5, 0.25, 0.25, then 1 % moves
    assert split.effective_shares() == pytest.approx((0.51, 0.25, 0.24))
    assert sum(split.psu_powers_w(1234.5)) == pytest.approx(1234.5)
    assert PsuSplit((1, 0)).psu_powers_w(300) == (300, 0)  # a dead PSU
    for bad in [lambda: PsuSplit((0.5, 0.5), 1.5), lambda: PsuSplit((0, 0)), lambda: PsuSplit((1, -1)),
                lambda: element_feed(2, (1, 1), psus=(1, 3)), lambda: element_feed(3, (1, 1)),
                lambda: element_feed(2, (1, 1, 1), psus=(2, 2))]:
        with pytest.raises(LoadSpecError):
            bad()


def test_each_element_reads_its_psu_and_sigma_sums_them() -> None:
    clock = VirtualClock()
    d = _dispatcher("WT333E", "constant:900", (0.5, 0.3, 0.2), 0.06, clock)
    clock.advance(5.0)
    inst = d.inst
    truth = inst.true_element_w
    assert truth == pytest.approx((900 * 0.52, 900 * 0.3, 900 * 0.18)) and inst.true_power_w == pytest.approx(900)
    # items 3, 13, 23, 33: P of elements 1, 2, 3 and Σ (blocks of ten per element, then Σ)
    p1, p2, p3, p_sigma = _values(d, 3, 13, 23, 33)
    for p, r, true_w in zip((p1, p2, p3), inst.readings, truth, strict=True):
        assert abs(p - true_w) <= r.uncertainty_w  # every element within its own stated uncertainty
    assert p_sigma == pytest.approx(p1 + p2 + p3, abs=0.02)
    assert abs(p_sigma - 900) <= sum(r.uncertainty_w for r in inst.readings)
    u1, u2, u3, u_sigma = _values(d, 1, 11, 21, 31)
    i1, i2, i3, i_sigma = _values(d, 2, 12, 22, 32)
    assert u_sigma == pytest.approx((u1 + u2 + u3) / 3, abs=0.02)
    assert i_sigma == pytest.approx((i1 + i2 + i3) / 3, abs=1e-3)
    lam_sigma = _values(d, 36)[0]
    s_sigma = _values(d, 34)[0]
    assert lam_sigma == pytest.approx(p_sigma / s_sigma, abs=2e-4)
    assert d.execute(":NUM:NORM:ITEM33?") == b"P,SIGM" and d.execute(":NUM:NORM:ITEM13?") == b"P,2"
    assert d.execute(":NUM:NORM:ITEM10?") == b"NONE"


def test_items_can_name_any_element_or_sigma() -> None:
    d = _dispatcher("WT332E", "constant:400")
    d.execute(":NUM:NORM:NUM 3;:NUM:NORM:ITEM1 P,1;ITEM2 P,2;ITEM3 P,SIGMA")
    assert d.execute(":NUM:NORM:ITEM3?") == b"P,SIGM"
    p1, p2, total = (float(v) for v in d.execute(":NUM:NORM:VAL?").split(b","))
    assert total == pytest.approx(p1 + p2, abs=0.02) and total == pytest.approx(400, rel=0.01)
    d.execute(":NUM:NORM:ITEM1 P,3")  # a WT332E has no element 3: the item reads no data
    assert d.execute(":NUM:NORM:VAL? 1") == b"NAN"
    assert default_items(2)[20:23] == [("U", SIGMA), ("I", SIGMA), ("P", SIGMA)]


def test_ranges_are_per_element() -> None:
    d = _dispatcher("WT333E")
    d.execute(":INP:CURR:RANG:ELEM2 5A;:INP:VOLT:RANG:ELEM3 150")
    assert d.execute(":INP:CURR:RANG:ELEM2?") == b"5.000E+00" and d.execute(":INP:CURR:AUTO:ELEM2?") == b"0"
    assert d.execute(":INP:CURR:AUTO:ELEM1?") == b"1" and d.execute(":INP:VOLT:RANG:ELEM3?") == b"150.0E+00"
    d.execute(":INP:CURR:RANG 2")  # without ELEMent: every element
    assert [e.current_range_a for e in d.inst.settings.elements] == [2.0, 2.0, 2.0]
    assert d.execute(":STAT:ERR?") == b'0,"No error"'
    d.execute(":INP:CURR:RANG 0.1")  # the multi-element models have no mA ranges
    assert d.execute(":STAT:ERR?").startswith(b"222,")
    d.execute(":INP:CURR:RANG:ELEM4 2")
    assert d.execute(":STAT:ERR?").startswith(b"114,")


def test_overrange_on_one_element_sets_its_own_status_bit() -> None:
    clock = VirtualClock()
    d = _dispatcher("WT332E", "constant:1000", (0.1, 0.9), clock=clock)
    d.execute(":INP:VOLT:RANG 300;:INP:CURR:RANG 1")  # element 2 draws ~4 A on 1 A
    clock.advance(2.0)
    condition = int(d.execute(":STAT:COND?"))
    assert not condition & (1 << 6) and condition & (1 << 9)  # OVR1 clear, OVR2 set
    assert math.isinf(float(d.execute(":NUM:NORM:VAL? 13").replace(b"INF", b"inf")))


def test_settings_check_the_model_the_split_and_the_psus() -> None:
    assert load_settings(Settings, model="WT333E").element_feed().psus == (1, 2, 3)
    feed = load_settings(Settings, model="WT310E", split="0.5,0.5", imbalance=0.05, psus="2").element_feed()
    assert feed.element_powers_w(1000) == pytest.approx((475.0,))
    for bad in [{"model": "WT333E", "psus": "1,2"}, {"split": "0.5,x"}, {"model": "WT332E", "split": "1"},
                {"split": "0.5,0.5", "psus": "3"}]:
        with pytest.raises(SettingsError):
            load_settings(Settings, **bad)


def _scpi(port: int, line: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(line.encode() + b"\n")
        return sock.makefile("rb").readline().decode().strip()


def test_two_simulators_are_two_meters_of_one_sut() -> None:
    """Two WT310Es on the two PSUs of one SUT (one per PSU), over TCP: each reads its PSU's
    share, the two add up to the SUT's load within their combined uncertainty, and the control
    API shows the per-element truth to compare with."""
    common = {"model": "WT310E", "split": "0.5,0.5", "imbalance": 0.05}
    clock = VirtualClock()
    sims = [start_simulator(port=0, control_port=0, clock=clock, seed=k, api_token="", load="constant:800",
                            settings=load_settings(Settings, psus=str(k), **common)) for k in (1, 2)]
    try:
        clock.advance(3.0)
        readings = [float(_scpi(s.port, ":COMM:HEAD OFF;:NUM:NORM:VAL? 3")) for s in sims]
        states = [json.load(urllib.request.urlopen(f"http://127.0.0.1:{s.control_port}/state", timeout=5))
                  for s in sims]
    finally:
        for s in sims:
            s.stop()
    truths = [state["elements"][0]["true_power_w"] for state in states]
    assert truths == pytest.approx([420.0, 380.0])
    assert [state["elements"][0]["psu"] for state in states] == [1, 2]
    assert all(state["sut_true_power_w"] == pytest.approx(800.0) for state in states)
    bounds = [state["elements"][0]["reading"]["uncertainty_w"] for state in states]
    for reading, truth, bound in zip(readings, truths, bounds, strict=True):
        assert abs(reading - truth) <= bound
    assert abs(sum(readings) - 800.0) <= sum(bounds)


def test_metrics_have_one_series_per_element() -> None:
    settings = load_settings(Settings, model="WT332E", split="0.75,0.25")
    clock = VirtualClock()
    with start_simulator(port=0, load="constant:400", settings=settings, clock=clock) as sim:
        clock.advance(2.0)
        text = sim.metrics.exposition().decode()
    for channel, truth in (("1", 300.0), ("2", 100.0)):
        true_line = f'mlpower_sim_true_channel_power_watts{{analyzer="C2PH13047V",channel="{channel}"}} {truth}'
        assert true_line in text
        power = [line for line in text.splitlines()
                 if line.startswith(f'mlpower_sim_reading_power_watts{{analyzer="C2PH13047V",channel="{channel}"}}')]
        assert len(power) == 1 and float(power[0].split()[-1]) == pytest.approx(truth, rel=0.01)
    assert "mlpower_sim_true_power_watts 400.0" in text
