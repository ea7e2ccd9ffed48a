"""The loader, the parsing rules of each mode, and the two pairings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlpower.figures import parse
from mlpower.figures.errors import DataError
from mlpower.figures.loader import DATACENTER, INFERENCE_COLUMNS, TRAINING, load_results, read_table
from mlpower.figures.pairing import (
    Metric,
    Skipped,
    corrected_model_name,
    pair_in_file_order,
    paper_join,
    paper_model_name,
    resolve_bare_targets,
    without_exact_duplicates,
)


def test_rows_keep_their_file_line(results, data_dir: Path) -> None:
    lines = (data_dir / DATACENTER).read_text().splitlines()
    frame = results.datacenter
    assert frame.height == 1205  # the data README's count
    for row in frame.sample(20, seed=1).iter_rows(named=True):
        text = lines[row["_line"] - 1]
        assert text.startswith(row["Public ID"] + ","), (row["_line"], text)
        assert row["Units"] in text


def test_training_table_has_no_final_newline_and_48_rows(results) -> None:
    assert results.training.height == 48
    assert results.training["_line"].max() == 49


def test_parsing_rules_differ_as_upstream_does() -> None:
    assert parse.coerce_like_pandas("5,888.19") is None  # fig 2 datacenter: the row silently vanishes upstream
    assert parse.strip_then_coerce("5,888.19") == 5888.19
    assert parse.coerce_like_pandas(" 12.5 ") == 12.5
    assert parse.coerce_like_pandas("1_000") is None  # Python's float would accept it, pandas does not
    assert parse.plain_number("6,919.38") is None and parse.plain_number("27.711") == 27.711
    assert parse.plain_number("1e3") is None
    assert parse.corrected_number('"1,676,757.08"') == 1676757.08
    assert parse.corrected_number("https://github.com/x") is None
    with pytest.raises(DataError, match="f.csv:7"):
        parse.strict_float("details", "f.csv:7")


def test_missing_file_and_missing_column_name_the_file(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(DataError, match="MLPOWER_DATA_DIR"):
        load_results(tmp_path)
    broken = tmp_path / DATACENTER
    broken.write_text("Public ID,Result\n1,2\n")
    with pytest.raises(DataError, match=rf"{DATACENTER}:1: header lacks column"):
        read_table(broken, INFERENCE_COLUMNS)


def test_a_corrupted_row_is_an_error_naming_file_and_line(tmp_path: Path, data_dir: Path) -> None:
    """A datacenter BERT Offline throughput that is not a number: fig 8 (strict parsing upstream) refuses it."""
    for name in (
        DATACENTER,
        TRAINING,
        "data_cleaned_inference_edge.csv",
        "data_cleaned_tiny.csv",
        "data_performance.csv",
    ):
        shutil.copyfile(data_dir / name, tmp_path / name)
    lines = (tmp_path / DATACENTER).read_text().splitlines(keepends=True)
    target = next(
        i
        for i, line in enumerate(lines)
        if ",bert-99.9,offline," in line.lower() and "samples/s" in line and '"' not in line
    )
    fields = lines[target].split(",")
    fields[7] = "n/a"
    lines[target] = ",".join(fields)
    (tmp_path / DATACENTER).write_text("".join(lines))
    from mlpower.figures.histograms import compute_fig8

    with pytest.raises(DataError, match=rf"{DATACENTER}:{target + 1}: Result 'n/a' is not a number"):
        compute_fig8(load_results(tmp_path), "paper")
    # Corrected mode skips the row with the reason recorded, and says so.
    data = compute_fig8(load_results(tmp_path), "corrected")
    assert {"row": f"{DATACENTER}:{target + 1}", "reason": "Result 'n/a' is not a number"} in data.skipped


def _m(line: int, unit: str, key: str = "a", model: str = "m", value: float = 1.0) -> Metric:
    return Metric(
        public_id=key,
        model_raw=model,
        model=model,
        scenario="Offline",
        version="v1",
        date="1/1/2021",
        unit=unit,
        text=str(value),
        value=value,
        ref=f"f.csv:{line}",
        line=line,
    )


def test_paper_join_is_a_cross_product_and_matches_missing_keys() -> None:
    perf = [_m(2, "samples/s", value=10), _m(4, "samples/s", value=20)]
    power = [_m(3, "Watts", value=1), _m(5, "Watts", value=2)]
    pairs = paper_join(perf, power, ("public_id", "model", "scenario"))
    assert [(p.perf.line, p.power.line) for p in pairs] == [(2, 3), (2, 5), (4, 3), (4, 5)]
    tiny_perf = [Metric(None, "x", "x", None, "v1", "d", "Latency in ms", "1", 1.0, "t:2", 2)]
    tiny_power = [Metric(None, "x", "x", None, "v1", "d", "Energy in uJ", "1", 1.0, "t:3", 3)]
    assert len(paper_join(tiny_perf, tiny_power, ("public_id", "scenario"))) == 1  # NaN == NaN, like pandas


def test_file_order_pairing_handles_power_first_and_records_orphans() -> None:
    rows = [
        _m(2, "Watts", value=4954),
        _m(3, "samples/s", value=556234),
        _m(4, "Watts", value=1021),
        _m(5, "samples/s", value=334462),
        _m(6, "samples/s", key="b"),
    ]
    skipped = Skipped()
    pairs = pair_in_file_order(rows, lambda m: m.unit == "samples/s", lambda m: m.unit == "Watts", skipped)
    assert [(p.perf.line, p.power.line) for p in pairs] == [(3, 2), (5, 4)]
    assert skipped.reasons == [{"row": "f.csv:6", "reason": "no adjacent partner row with the same key"}]


def test_duplicates_dropped_and_bare_names_resolved_by_order() -> None:
    rows = [
        _m(2, "samples/s", model="bert", value=9),
        _m(3, "Watts", model="bert", value=3),
        _m(4, "samples/s", model="bert", value=5),
        _m(5, "Watts", model="bert", value=3),
        _m(6, "samples/s", model="bert", value=9),
        _m(7, "Watts", model="bert", value=3),
    ]
    skipped = Skipped()
    pairs = pair_in_file_order(rows, lambda m: m.unit == "samples/s", lambda m: m.unit == "Watts", skipped)
    unique = without_exact_duplicates(pairs, skipped)
    assert len(pairs) == 3 and len(unique) == 2
    assert [p.model for p in resolve_bare_targets(unique, skipped)] == ["bert-99.0", "bert-99.9"]
    assert any("exact duplicate of f.csv:2" in r["reason"] for r in skipped.reasons)


def test_model_names() -> None:
    rename = paper_model_name({"rnnt": "rnn-t", "bert": "bert-99.0"})
    assert rename("RNNT") == "rnn-t" and rename("BERT") == "bert-99.0"
    assert rename("bert-99") == "bert-99"  # whole-cell replace: never unified upstream
    assert corrected_model_name("gptj-99") == "gptj-99.0"
    assert corrected_model_name("3d-unet-99.9") == "3d-unet-99.9"
    assert corrected_model_name("rnnt") == "rnn-t"


def test_corrected_pairs_on_the_data_keep_identical_targets_and_drop_duplicated_blocks(results) -> None:
    """3.0-0066 3D-UNet: two targets with identical results under one bare name are two runs;
    3.1-0109: an exactly repeated block is one run."""
    from mlpower.figures.pairing import PERF_UNITS, POWER_UNITS, corrected_pairs

    rows = metrics_of(results, ("3.0-0066", "3.1-0109"))
    skipped = Skipped()
    pairs = corrected_pairs(
        rows, lambda m: m.unit in PERF_UNITS, lambda m: m.unit in POWER_UNITS, skipped, bare_targets=True
    )
    unet = [p for p in pairs if p.perf.public_id == "3.0-0066" and (p.model or "").startswith("3d-unet")]
    assert sorted(p.model for p in unet) == ["3d-unet-99.0", "3d-unet-99.9"]
    assert unet[0].perf.text == unet[1].perf.text
    bert = [p for p in pairs if p.perf.public_id == "3.1-0109" and p.model == "bert-99.0"]
    assert len(bert) == 1
    assert any("exact duplicate" in r["reason"] for r in skipped.reasons)


def metrics_of(results, ids: tuple[str, ...]) -> list[Metric]:
    from mlpower.figures.pairing import metrics

    return [
        m
        for m in metrics(
            results.datacenter, model=corrected_model_name, value=lambda text, where: parse.corrected_number(text)
        )
        if m.public_id in ids and (m.scenario or "").lower() == "offline"
    ]
