"""The vocabulary: validation, versioning and the drift test of the committed JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlpower import schema as s
from mlpower import schema_files
from pydantic import ValidationError, create_model

from tests.shared.examples import example_of


def test_committed_schemas_match_the_models() -> None:
    assert schema_files.drift() == [], "run 'mlpower schemas write' and commit shared/schemas/"


def test_drift_is_detected_when_a_field_is_added_without_regenerating(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    schema_files.write(tmp_path)
    assert schema_files.drift(tmp_path) == []
    grown = create_model("RunStop", __base__=s.RunStop, energy_j=(float, 0.0))
    monkeypatch.setattr(s, "MESSAGE_TYPES", tuple(grown if t is s.RunStop else t for t in s.MESSAGE_TYPES))
    assert schema_files.drift(tmp_path) == ["run.stop.json"]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        s.StopRun(run_id="r", reason="x", colour="red")  # type: ignore[call-arg]


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'{"type": "run.nope", "v": 1}', b"\xff\xfe",
                                  b'{"type": "cmd.stop_run", "v": 1}'])
def test_bad_bodies_raise_decode_error(body: bytes) -> None:
    with pytest.raises(s.DecodeError):
        s.decode(body)


def test_a_message_of_another_version_does_not_decode() -> None:
    body = s.encode(example_of(s.StopRun, "r")).replace(b'"v":1', b'"v":2')
    with pytest.raises(s.DecodeError, match="schema version 2"):
        s.decode(body)


def test_sample_page_columns_must_have_equal_length() -> None:
    page = example_of(s.SamplePage, "r")
    with pytest.raises(ValidationError, match="power_w has 1 rows"):
        s.SamplePage(**{**page.model_dump(), "power_w": [1.0]})


def test_families_route_to_their_exchange() -> None:
    assert s.family(example_of(s.SamplePage, "r")) == "runs"
    assert s.family(example_of(s.StartRun, "r")) == "commands"
    assert s.family(example_of(s.RunAnalyzed, "r")) == "events"


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_are_refused_rather_than_sent_as_null(value: float) -> None:
    with pytest.raises(ValidationError, match="finite"):
        s.StartRun(sut="s", settings={"nested": {"x": [1.0, value]}})
    with pytest.raises(ValidationError):
        example_of(s.PhaseMark, "r", t_utc_s=value)
    with pytest.raises(s.DecodeError):
        s.decode(b'{"type": "cmd.start_run", "v": 1, "sut": "s", "settings": {"": Infinity}}')


SHELL_TEXT = ["; touch /tmp/PWNED", "builtin:offline; touch x", "$(id)", "`id`", "a b", "a|b", "a&b", "a>b", "a\nb",
              "../x", "/bin/sh", "x" * 65, "", " builtin:offline", "'q'", '"q"', "a\\b", "*", "~root"]


@pytest.mark.parametrize("text", SHELL_TEXT)
def test_a_workload_is_a_name_no_shell_text_matches(text: str) -> None:
    for build in (lambda w: s.StartRun(sut="s", workload={"name": w}),
                  lambda w: s.RunWorkloadPhase(run_id="r", sut="s", mode="testing", workload={"name": w})):
        with pytest.raises(ValidationError):
            build(text)
    if text:  # a bare string is shorthand for {"name": ...}: the same pattern applies
        with pytest.raises(ValidationError):
            s.StartRun(sut="s", workload=text)
        body = s.encode(s.StartRun(sut="s", workload="x")).replace(b'"name":"x"', f'"name":{json.dumps(text)}'.encode())
        with pytest.raises(s.DecodeError, match="workload"):
            s.decode(body)


def test_a_workload_request_carries_typed_parameters_only() -> None:
    request = s.StartRun(sut="s", workload={"name": "resnet50", "duration_s": 60, "scenario": "Server"}).workload
    assert request == s.WorkloadRequest(name="resnet50", duration_s=60.0, scenario="Server")
    assert s.StartRun(sut="s", workload="builtin:offline").workload == s.WorkloadRequest(name="builtin:offline")
    assert s.StartRun(sut="s", workload="").workload is None and s.StartRun(sut="s").workload is None
    for bad in ({"name": "x", "command": "id"}, {"name": "x", "duration_s": -1}, {"name": "x", "duration_s": 1e9},
                {"name": "x", "scenario": "Sideways"}, {"name": "x", "env": {"LD_PRELOAD": "/x.so"}}):
        with pytest.raises(ValidationError):
            s.RunWorkloadPhase(run_id="r", sut="s", mode="testing", workload=bad)


@pytest.mark.parametrize("run_id", ["../x", "a/b", "..", ".", "a b", "x" * 129, "a\x00", "/etc", "~"])
def test_a_run_id_names_a_folder_and_is_never_a_path(run_id: str) -> None:
    for message in (s.StopRun, s.RunStop, s.RunAnalyzed, s.WorkloadPhase):
        fields = example_of(message, "r").model_dump()
        with pytest.raises(ValidationError):
            message(**{**fields, "run_id": run_id})
    with pytest.raises(ValidationError):
        s.StartRun(sut="s", run_id=run_id)


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"v":1,"type":"cmd.stop_workload","reason":' + b"[" * 100_000])
def test_a_body_nested_deeper_than_the_stack_is_a_decode_error_not_a_crash(body: bytes) -> None:
    # a RecursionError out of decode would escape the consumer's dead-letter handling
    with pytest.raises(s.DecodeError, match="nested too deeply"):
        s.decode(body)
