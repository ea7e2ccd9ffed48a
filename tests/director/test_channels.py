"""Channel declarations: [name=]resource[#element], several channels as one SUT measurement."""

from __future__ import annotations

import pytest
from mlpower.director.channels import ChannelSpec, analyzer_indexes, parse_channels
from mlpower.director.errors import ResourceError
from mlpower.director.settings import DirectorSettings
from mlpower.director.sources import parse_resource
from mlpower.errors import SettingsError
from mlpower.settings import load_settings

A = "TCPIP0::127.0.0.1::10001::SOCKET"
B = "TCPIP0::127.0.0.1::10002::SOCKET"


def test_a_plain_resource_is_one_channel_named_as_before() -> None:
    assert parse_channels(A, "analyzer1") == (ChannelSpec("analyzer1", A),)
    assert [c.name for c in parse_channels(f"{A},{B}", "an")] == ["an_1", "an_2"]
    assert parse_channels(A)[0].address == A  # the source factory gets the resource unchanged


def test_named_channels_on_two_analyzers_and_on_elements_of_one() -> None:
    two = parse_channels(f"psu1={A}#1,psu2={B}#1")
    assert [(c.name, c.resource, c.element) for c in two] == [("psu1", A, 1), ("psu2", B, 1)]
    assert analyzer_indexes(two) == [1, 2]
    one = parse_channels(f"psu1={A}#1,psu2={A}#2,psu3={A}#3")
    assert analyzer_indexes(one) == [1, 1, 1] and [c.address for c in one] == [f"{A}#{k}" for k in (1, 2, 3)]
    assert parse_resource(f"{A}#2").element == 2 and parse_resource(f"{A}#2").address == A


@pytest.mark.parametrize("text", [f"total={A}", f"a={A},a={B}", f"a={A}#1,b={A}#1", f"a={A}#9", "bad name=x"])
def test_unclear_declarations_are_refused(text: str) -> None:
    with pytest.raises(ResourceError):
        parse_channels(text)
    with pytest.raises(SettingsError, match="MLPOWER_ANALYZER"):
        load_settings(DirectorSettings, analyzer=text)


def test_software_meters_have_no_elements() -> None:
    from mlpower.director.sources import open_source

    with pytest.raises(ResourceError, match="no elements"):
        open_source("nvml#2")


def test_the_idle_probe_opens_each_analyzer_once_and_answers_for_its_channels(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mlpower.analyzer_sim.settings import Settings
    from mlpower.analyzer_sim.simulator import start_simulator
    from mlpower.director.director import Director

    from .conftest import fast_settings

    wt333e = load_settings(Settings, model="WT333E")
    with start_simulator(port=0, settings=wt333e) as meter, start_simulator(port=0) as single:
        three = ",".join(f"psu{k}=TCPIP0::127.0.0.1::{meter.port}::SOCKET#{k}" for k in (1, 2, 3))
        analyzer = f"{three},psu4=TCPIP0::127.0.0.1::{single.port}::SOCKET"
        director = Director(fast_settings(tmp_path, analyzer=analyzer))
        assert director.probe_analyzers() == {"psu1": True, "psu2": True, "psu3": True, "psu4": True}
        single.stop()
        found = director.probe_analyzers()
    assert found == {"psu1": True, "psu2": True, "psu3": True, "psu4": False}
    assert set(director.analyzer_problems) == {"psu4"}
