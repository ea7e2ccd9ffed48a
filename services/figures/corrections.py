"""Why corrected mode differs from paper mode: the declared table of causes, and fig 10's table of
benchmark definition changes.

Every value the two modes plot differently carries the ids of the causes that made it differ
(the figure computations tag each plotted value, and each value a mode leaves out, with the
rule that touched it); the audit groups the differences by these ids. A difference with no
cause is reported as ``unexplained``, and the tests require none on the public data.

Each cause says what upstream's script does, what corrected mode does instead, why (what the
data show), and where that can be checked: upstream's scripts, ``typed_values.json``, or the
table rows the audit lists under the cause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlpower.figures.errors import FiguresError


@dataclass(frozen=True)
class Cause:
    id: str
    title: str  # one line, for the 80-column summary
    figures: tuple[str, ...]
    paper: str  # what upstream's script does
    corrected: str  # what corrected mode does instead
    reason: str  # what the data show
    source: str  # where that is documented


UNEXPLAINED = "unexplained"

CAUSES: tuple[Cause, ...] = (
    Cause(
        "cross-join",
        "5-key merge pairs one system's throughput with another's power",
        ("fig5a", "fig8", "fig10"),
        "inner merge of performance and power rows on Public ID, model, scenario, version and date; "
        "a key that occurs more than once gives the cross product of its rows",
        "pairs each performance row with the adjacent power row of the same key (file order)",
        "submissions with several systems or repeated blocks under one key (3.1-0109, 3.1-0113, "
        "4.1-0049, the datacenter v3.0 bare names) hold distinct runs; a cross pair is an "
        "efficiency no system achieved",
        "upstream fig5a/fig8/fig10 scripts (pandas.merge on the five keys); the rows under this cause",
    ),
    Cause(
        "duplicate-rows",
        "exactly repeated blocks counted more than once",
        ("fig8", "fig10"),
        "keeps both copies of an exactly duplicated block, so its deltas are counted several times",
        "drops a pair whose key, system and both values repeat an earlier pair",
        "3.1-0109 and 3.1-0113 repeat whole blocks byte for byte: one run, listed twice",
        "the tables: 3.1-0109 and 3.1-0113 (rows under this cause)",
    ),
    Cause(
        "tokens-per-sample",
        "Tokens/s divided by a typed-in 292 tokens per sample",
        ("fig5a",),
        "divides every Tokens/s result by 292 before the ratio",
        "keeps each series in the unit of its first round (samples/J or tokens/J) and leaves out "
        "a round measured in the other unit",
        "no table gives tokens per sample; 292 is typed into the script, so a samples/J value "
        "derived from it is not measured",
        "upstream fig5a_datacenter_trends.py; typed_values.json fig5a.tokens_per_sample",
    ),
    Cause(
        "mislabelled-tokens",
        "4.1-0049 labels DLRM-v2 throughput Tokens/s",
        ("fig5a",),
        "divides the mislabelled rows by 292 like real token rates",
        "reads Tokens/s on a non-generative benchmark as samples/s",
        "DLRM-v2 and 3D-UNet produce no tokens; the label is an export error of one submission",
        "the tables: 4.1-0049's dlrm-v2 rows (under this cause)",
    ),
    Cause(
        "v30-bare-names",
        "datacenter v3.0 bare BERT/DLRM/3D-UNet names",
        ("fig8", "fig10"),
        "renames the bare 'bert' to one accuracy target (bert-99.0 in fig 8, bert-99.9 in fig 10) "
        "and leaves 'dlrm' and '3d-unet' unmatched",
        "the first pair of a submission under a bare name is the 99 % run, the second the 99.9 % run",
        "v3.0 exports both targets under one name, in that order",
        "the tables: datacenter v3.0 rows named BERT, DLRM, 3D-UNet; upstream fig8/fig10 renames",
    ),
    Cause(
        "name-spellings",
        "one benchmark under several spellings",
        ("fig10",),
        "lower-cases names only, so 'bert-99' (v4.1) never pairs with 'bert-99.0'",
        "spells each benchmark one way (rnnt -> rnn-t, -99 -> -99.0)",
        "the spellings differ between rounds, not the benchmarks",
        "the tables: Model MLC spellings per round",
    ),
    Cause(
        "fig10-major-versions",
        "fig 10 pairs major versions, not consecutive rounds",
        ("fig10",),
        "compares the first integer of the version, so v1.0 and v1.1 both pair with v2.0 and v2.1, "
        "and no x.0 -> x.1 step is ever counted",
        "pairs each round with the next round of the same system",
        "'the same hardware across versions' is one step from one round to the next",
        "upstream fig10_software_delta_histogram.py; upstream figures.md ('2 consecutive versions')",
    ),
    Cause(
        "fig10-cut",
        "fig 10 drops every delta below a typed-in -50 %",
        ("fig10",),
        "drops deltas below -50 % whatever their cause",
        "drops no value for its size; pairs across a benchmark definition change are excluded "
        "by the declared table instead (benchmark-change)",
        "a blanket cut hides real regressions and keeps nothing out for a reason",
        "upstream fig10_software_delta_histogram.py; typed_values.json fig10.min_delta_percent",
    ),
    Cause(
        "benchmark-change",
        "pair across a benchmark definition change (declared table)",
        ("fig10",),
        "compares such pairs (then cuts them at -50 % with everything else)",
        "excludes a pair whose two rounds straddle a change of the benchmark's dataset, model "
        "or target listed in BENCHMARK_CHANGES",
        "across such a change the workload differs: the delta is not an efficiency change of the "
        "same software on the same hardware",
        "MLPerf Inference change notes, per entry of BENCHMARK_CHANGES",
    ),
    Cause(
        "fig2-typed-max",
        "fig 2 datacenter maximum typed in from a Server row",
        ("fig2",),
        "replaces the Offline maximum by a typed 6280.2 W when it is smaller",
        "the largest Offline power in the table",
        "6280.2 W is 4.1-0049's llama2-70b Server power, outside the Offline selection",
        "upstream fig2_power_scales.py; typed_values.json fig2",
    ),
    Cause(
        "fig6-typed-split",
        "fig 6 compute/interconnect split typed in",
        ("fig6",),
        "plots typed compute and interconnect energies",
        "plots the total energy of the DC-power submissions 4.0-0094/0096/0095",
        "the split is in no public table (it comes from the submissions' notes)",
        "upstream fig6_training_energy.py; typed_values.json fig6",
    ),
    Cause(
        "fig7-typed-rounded",
        "fig 7 datacenter J/sample typed in, rounded",
        ("fig7",),
        "plots J/sample typed to 10 significant digits",
        "computes W / (samples/s) from 4.0-0063's Offline rows",
        "the typed numbers are those rows' values, rounded; the difference is the rounding",
        "upstream fig7_workload_insights.py; typed_values.json fig7",
    ),
    Cause(
        "fig7-llama2-per-token",
        "fig 7 Llama2 typed as J/token x 292 from a Server row",
        ("fig7",),
        "multiplies a Server J/token by a typed 292 and plots it as J/sample",
        "plots 4.0-0063's Offline J/token on its own axis, labelled per token",
        "no table gives tokens per sample, so J/sample cannot be derived; a per-token value on "
        "a per-sample axis misreads by the unknown factor",
        "upstream fig7_workload_insights.py; typed_values.json fig7",
    ),
    Cause(
        "fig7-typed-tiny",
        "fig 7 tiny J/sample typed from another submission",
        ("fig7",),
        "plots typed values said to be 1.2-0004; ResNet's is digit-transposed (27.17 for 27.711)",
        "reads 1.0-9002 (GAP9), the rows the typed values match",
        "1.2-0004's rows hold other values; 1.0-9002's match to the typed precision except ResNet",
        "upstream fig7_workload_insights.py; typed_values.json fig7",
    ),
    Cause(
        "fig7-typed-macs",
        "fig 7 MAC counts typed in",
        ("fig7",),
        "draws typed MAC counts on a second axis",
        "leaves the MAC line out",
        "MAC counts are in no public table",
        "upstream fig7_workload_insights.py; typed_values.json fig7",
    ),
    Cause(
        "fig9-typed-ratios",
        "fig 9 BERT-99.9/99.0 ratios typed in",
        ("fig9",),
        "plots typed ratios",
        "computes Offline efficiency ratios of the named submissions",
        "the typed ratios match neither the Offline nor the Server rows of those submissions",
        "upstream fig9_quantization.py; typed_values.json fig9",
    ),
    Cause(
        "fig11a-typed-ratios",
        "fig 11a ResNet ratios typed in",
        ("fig11a",),
        "plots typed ratios",
        "computes the ratios from the named submissions' ResNet Offline rows",
        "the typed ratios are not derivable from those rows",
        "upstream fig11a_software_optimizations.py; typed_values.json fig11a",
    ),
    Cause(
        "fig11b-proprietary",
        "fig 11b TPU numbers are proprietary",
        ("fig11b",),
        "plots typed TPU ratios",
        "plots nothing and says why",
        "the numbers are in no public table and were not verified by MLPerf Power",
        "upstream fig11b_hardware_optimizations.py and figures.md",
    ),
    Cause(
        "histogram-summary",
        "histogram counts and statistics follow the values",
        ("fig8", "fig10"),
        "summarises its own values",
        "summarises its own values",
        "bins, counts, mean and median change whenever the values do (see the other causes)",
        "numpy.histogram over each mode's values",
    ),
)

BY_ID = {cause.id: cause for cause in CAUSES}


def cause(cause_id: str) -> Cause:
    try:
        return BY_ID[cause_id]
    except KeyError:
        raise FiguresError(f"undeclared cause {cause_id!r}") from None


# --------------------------------------------------------------------------- fig 10


@dataclass(frozen=True)
class BenchmarkChange:
    """A benchmark whose definition changed between two rounds while its name stayed."""

    benchmark: str  # the family as corrected mode spells it, accuracy target removed ("3d-unet")
    changed_in: str  # the first round of the new definition
    change: str
    source: str

    def splits(self, family: str | None, before: str | None, after: str | None) -> bool:
        """Does a pair from round ``before`` to round ``after`` straddle this change?"""
        if family != self.benchmark or before is None or after is None:
            return False
        return round_key(before) < round_key(self.changed_in) <= round_key(after)

    def describe(self) -> str:
        return f"{self.benchmark} {self.changed_in}: {self.change}"


# Only changes MLPerf's change notes list for benchmarks whose name carries across the change.
# Renamed benchmarks never pair (SSD-ResNet34 -> RetinaNet in v2.1, DLRM -> DLRM-v2 in v3.1),
# since a pair needs the same benchmark name on both sides.
BENCHMARK_CHANGES: tuple[BenchmarkChange, ...] = (
    BenchmarkChange(
        "3d-unet",
        "v2.0",
        "dataset BraTS 2019 (brain tumours) -> KiTS 2019 (kidney tumours), with a model trained for it",
        "mlcommons/inference README.md, round tables 'MLPerf Inference v1.1' (3d-unet: BraTS 2019) "
        "and 'MLPerf Inference v2.0' (3d-unet: KiTS19, reference app 3d-unet-kits19); "
        "vision/medical_imaging/3d-unet-kits19/README.md (KiTS19 from the 2022 rounds, BraTS19 up to v1.1)",
    ),
)

_ACCURACY_TARGET = re.compile(r"-99(\.\d+)?$")


def benchmark_family(model: str | None) -> str | None:
    """``3d-unet-99.9`` -> ``3d-unet``; ``dlrm-v2-99.0`` -> ``dlrm-v2``."""
    return None if model is None else _ACCURACY_TARGET.sub("", model)


def round_key(version: str) -> tuple[int, ...]:
    """``v2.1`` -> (2, 1), for ordering rounds."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def change_between(model: str | None, before: str | None, after: str | None) -> BenchmarkChange | None:
    family = benchmark_family(model)
    return next((c for c in BENCHMARK_CHANGES if c.splits(family, before, after)), None)
