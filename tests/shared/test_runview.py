"""The run view: which kind of run it is and why, its windows, its samples and LoadGen's logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlpower.errors import InputError
from mlpower.runstream import RunStream
from mlpower.runview import KIND_NAMES, RunKind, RunView
from mlpower.schema import RunDocument, SourceInfo

T0 = 1_795_891_000.0


def stream_docs(settings: dict | None = None, *, loadgen: bool = True, end: bool = True,  # type: ignore[type-arg]
                detail: str = "") -> list[RunDocument]:
    stream = RunStream(None, dict(run_id="r1", lab="lab", sut="sut", analyzer="a", t_utc_s=T0,
                                  settings=settings or {}))
    docs: list[RunDocument] = [stream.start, stream.descriptor(stream="a", sample_interval_s=1.0,
                                                               source=SourceInfo(kind="wt310e"))]
    docs.append(stream.mark("testing_begin", mode="testing", t_utc_s=T0 + 1.0))
    if loadgen:
        docs.append(stream.mark("power_begin", mode="testing", t_utc_s=T0 + 2.2, source="loadgen"))
    for k in range(3):
        t = [T0 + 1.5 + 4 * k + i for i in range(4)]
        docs.append(stream.page("a", mode="testing", t_utc_s=t, power_w=[250.0] * 4, voltage_v=[230.0] * 4,
                                current_a=[1.1] * 4, power_factor=[1.0] * 4, voltage_range_v=[300.0] * 4,
                                current_range_a=[2.0] * 4, uncertainty_w=[0.8] * 4, flags=[0] * 4))
    if end:
        if loadgen:
            docs.append(stream.mark("power_end", mode="testing", t_utc_s=T0 + 11.9, source="loadgen",
                                    detail=detail))
        docs.append(stream.mark("testing_end", mode="testing", t_utc_s=T0 + 13.0))
    return docs


def tree(root: Path, *, client: bool = False, messages: list | None = None) -> Path:  # type: ignore[type-arg]
    for folder in ("power", "ranging", "run_1"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    server = {"messages": messages or [], "phases": {"testing": [[T0, 0], [T0 + 1, 1], [T0 + 12, 2], [T0 + 13, 3]]},
              "mlpower": {"sample_interval_s": 0.5}}
    (root / "power" / "server.json").write_text(json.dumps(server))
    if client:
        (root / "power" / "client.json").write_text(json.dumps({"session_name": root.name}))
    return root


@pytest.mark.parametrize("settings,kind,because", [
    ({"driver": "powerdev"}, RunKind.POWERDEV, "settings.driver"),
    ({"workload": "builtin:offline"}, RunKind.BUS, "settings.workload"),
    ({"workload": "", "phase_s": 30}, RunKind.DIRECT, "no workload"),
    ({}, RunKind.DIRECT, "a power-dev session would look the same"),
])
def test_kind_of_a_stream_and_why(settings: dict, kind: RunKind, because: str) -> None:  # type: ignore[type-arg]
    view = RunView.from_documents(stream_docs(settings))
    assert view.kind is kind and because in view.kind_evidence and kind in KIND_NAMES


def test_kind_of_a_tree_and_why(tmp_path: Path) -> None:
    client_tree = RunView.read(tree(tmp_path / "client", client=True))
    assert client_tree.kind is RunKind.POWERDEV and client_tree.client_side
    conversation = [{"cmd": "mlcommons/power client v3", "reply": "mlcommons/power server v3"}]
    director_side = RunView.read(tree(tmp_path / "director", messages=conversation))
    assert director_side.kind is RunKind.POWERDEV and not director_side.client_side
    assert "director's side" in director_side.kind_evidence
    bus = RunView.read(tree(tmp_path / "bus"), stream_docs({"workload": "builtin:offline"}))
    assert bus.kind is RunKind.BUS
    assert RunView.read(tree(tmp_path / "direct")).kind is RunKind.DIRECT


def test_windows_from_marks_the_tree_and_live(tmp_path: Path) -> None:
    view = RunView.from_documents(stream_docs())
    window = view.loadgen_window()
    assert window is not None and (window.begin_utc_s, window.end_utc_s) == (T0 + 2.2, T0 + 11.9)
    assert window.loadgen and "LoadGen's marks" in window.source
    phase = view.phase_window()
    assert phase is not None and not phase.loadgen and phase.seconds == 12.0
    # while the run goes on, a begun window reaches just past the latest sample
    running = RunView.from_documents(stream_docs(end=False))
    assert running.loadgen_window() is None
    live = running.loadgen_window(live=True)
    assert live is not None and live.open and live.end_utc_s == pytest.approx(T0 + 12.5)
    # a tree's detail log wins over the marks; without marks the phases come from server.json
    root = tree(tmp_path / "run")
    (root / "run_1" / "mlperf_log_detail.txt").write_text(
        ':::MLLOG {"key": "power_begin", "value": "11-28-2026 18:47:18.000"}\n'
        ':::MLLOG {"key": "power_end", "value": "11-28-2026 18:47:20.500"}\n')
    from_tree = RunView.read(root, stream_docs(loadgen=False))
    assert from_tree.loadgen_window() is not None
    assert from_tree.loadgen_window().seconds == pytest.approx(2.5)  # type: ignore[union-attr]
    bare = RunView.read(tree(tmp_path / "bare"))
    assert bare.phase_window() is not None and "server.json" in bare.phase_window().source  # type: ignore[union-attr]
    assert bare.sample_interval_s == 0.5  # server.json's, without a stream


def test_duplicates_change_nothing_and_samples_are_extended_in_order() -> None:
    docs = stream_docs()
    view = RunView.from_documents(docs)
    first = view.stream_samples("a")
    assert len(first) == 12 and list(first.t_utc_s) == sorted(first.t_utc_s)
    assert not view.add(docs[4])  # a redelivered page
    assert len(view.stream_samples("a")) == 12
    assert view.sample_columns()["t_utc_s"] == [t for d in docs if d.type == "run.page"  # type: ignore[attr-defined]
                                                for t in d.t_utc_s]  # type: ignore[attr-defined]


def test_loadgen_logs_named_by_the_agents_mark(tmp_path: Path) -> None:
    log = tmp_path / "agent" / "run_1" / "mlperf_log_detail.txt"
    log.parent.mkdir(parents=True)
    log.write_text(':::MLLOG {"key": "result_validity", "value": "VALID"}\n')
    found = RunView.from_documents(stream_docs({"workload": "w"}, detail=str(log))).loadgen_logs()
    assert found.detail is not None and found.detail.values["result_validity"] == "VALID"
    # only an absolute path to a file of that name is read; anything else is named, not opened
    for detail in ("run_1/mlperf_log_detail.txt", str(tmp_path / "agent" / "run_1" / "secrets.txt")):
        refused = RunView.from_documents(stream_docs({"workload": "w"}, detail=detail)).loadgen_logs()
        assert refused.detail is None and "none named" in refused.where
    gone = RunView.from_documents(stream_docs({"workload": "w"}, detail=str(tmp_path / "x" / log.name)))
    assert gone.loadgen_logs().detail is None and "not readable here" in gone.loadgen_logs().where


def test_broken_documents_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "documents.jsonl"
    path.write_text('{"type": "run.start"\n')
    with pytest.raises(InputError, match="documents.jsonl:1"):
        RunView.read_documents(path)
