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
