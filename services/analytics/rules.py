"""The compliance rules, declared once: the 11 checks of power-dev's ``compliance/check.py``
(power-dev-protocol.md §5.2, in order; check 6 is split into its four tests, check 9 into its
errors and its warnings) followed by the other limits of the MLPerf power rules.

Each rule is one row: an id, the rule it enforces with its source, its severity (the only place
a severity is set), the kinds of run it applies to, what it needs of the run, whether live
analytics evaluates it while the run goes on, and a check function over the ``RunView``. A rule
that cannot apply to a run says ``not_applicable`` with the reason; it never passes by default.
``evaluate`` is the one way to judge a run: ``mlpower check``, the analytics service
(``RunAnalyzed``, the API, ``lab run``, the demo) and live analytics all call it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Literal

from mlpower.runview import KIND_NAMES, RunKind, RunView
from mlpower.schema import Finding

from . import powerdev_checks as pd
from . import sample_checks as sc
from .findings import CheckOptions, Missing, Verdicts
from .powerdev_checks import CheckFn

ALL_KINDS = frozenset(RunKind)
POWERDEV = frozenset({RunKind.POWERDEV})


@dataclass(frozen=True)
class Rule:
    id: str
    enforces: str
    severity: Literal["error", "warning"]
    check: CheckFn
    kinds: frozenset[RunKind] = ALL_KINDS  # the kinds of run the rule applies to
    client: bool = False  # needs the power-dev client's files (client.json ...)
    loadgen: bool = False  # needs LoadGen's power window (not the director's phase)
    ptdaemon: bool = False  # only for runs PTDaemon measured
    live: bool = False  # evaluated while the run goes on, over the window so far

    def not_applicable_because(self, view: RunView) -> str | None:
        kind = view.kind
        if kind not in self.kinds:
            missing = "no power-dev client, so no client.json or client log" if self.client else "out of scope"
            return f"{KIND_NAMES[kind]} ({view.kind_evidence}): {missing}"
        if (self.client or self.loadgen) and kind is RunKind.POWERDEV and not view.client_side:
            return ("the director's side of a power-dev session: client.json and LoadGen's logs are in the "
                    "client's output tree (mlpower check that tree)")
        if self.ptdaemon:
            used, why = view.uses_ptdaemon
            if not used:
                return f"PTDaemon-only check: {why}"
        return None


RULES: tuple[Rule, ...] = (
    Rule("client_sources_checksum", "PD-CHK 1: client.json sources equal a sources_checksums.json entry", "error",
         pd.sources("client"), POWERDEV, client=True),
    Rule("server_sources_checksum", "PD-CHK 2: server.json sources equal a sources_checksums.json entry", "error",
         pd.sources("server")),
    Rule("ptd_messages", "PD-CHK 3: PTD commands and replies (model, version 1.11.1, replies, range restore)",
         "error", pd.ptd_messages, ptdaemon=True),
    Rule("uuid", "PD-CHK 4: client and server UUID pairs equal", "error", pd.uuid, POWERDEV, client=True),
    Rule("session_name", "PD-CHK 5: client and server session names equal", "error", pd.session_name, POWERDEV,
         client=True),
    Rule("phase_time_difference", "PD-CHK 6: client and server phase wall times within 0.8 s", "error",
         pd.phase_time_difference, POWERDEV, client=True),
    Rule("loadgen_window_in_phases", "PD-CHK 6: LoadGen power_begin/power_end inside the client's phases", "error",
         pd.loadgen_in_phases, POWERDEV, client=True, loadgen=True),
    Rule("ranging_testing_duration", "PD-CHK 6: testing not more than 50 % shorter than ranging", "warning",
         pd.duration_ratio, loadgen=True),
    Rule("ranging_vs_testing_power", "PD-CHK 6: testing average power not more than 5 % below ranging", "error",
         pd.ranging_vs_testing, loadgen=True),
    Rule("client_server_messages", "PD-CHK 7: client and server message lists and protocol versions agree",
         "error", pd.messages, POWERDEV, client=True),
    Rule("results_checksum", "PD-CHK 8: SHA-1 of the 9 required result files match client/server.json", "error",
         pd.results_checksum, POWERDEV, client=True),
    Rule("ptd_log_messages", "PD-CHK 9: no PTD error outside ranging, no uncertainty warning in the testing window",
         "error", pd.ptd_logs("error"), loadgen=True, ptdaemon=True),
    Rule("ptd_log_warnings", "PD-CHK 9: PTD warnings in the testing window, USB or unexpected ranging errors",
         "warning", pd.ptd_logs("warning"), loadgen=True, ptdaemon=True),
    Rule("ptd_config", "PD-CHK 10: accepted PTD device types in server.json ptd_config", "error", pd.ptd_config,
         ptdaemon=True),
    Rule("debug_disabled", "PD-CHK 11: server debug mode off", "error", pd.debug),
    Rule("files_readable", "input integrity: no truncated or corrupt spl.txt row, JSON or LoadGen line", "error",
         sc.files_readable),
    Rule("loadgen_result_valid", "SUBCHK: the LoadGen performance result is VALID", "error", sc.loadgen_valid,
         loadgen=True),
    Rule("samples_in_window", "SUBCHK get_power_metric: at least one usable sample in run_1's power window",
         "error", sc.samples_in_window, loadgen=True),
    Rule("flagged_samples", "mlpower: flagged samples in the window are counted, never averaged silently",
         "warning", sc.flagged, live=True),
    Rule("sample_interval", "rules: 1 sample per second (Go,1000,0,<mark>)", "error", sc.sample_interval, live=True),
    Rule("coverage", "rules: samples cover the testing window (100 % less one sample interval at each edge), no "
         "gap over 2 s between samples, in every record and every channel", "error", sc.coverage, live=True),
    Rule("uncertainty", "rules: per-sample uncertainty at most 1.00 % in the testing window (the SUT's power and "
         "every channel)", "error", sc.uncertainty, live=True),
    Rule("overrange", "rules: no overrange sample in the testing window (on any channel)", "error", sc.overrange,
         live=True),
    Rule("channel_imbalance", "mlpower (informative): no PSU channel carrying almost nothing while others carry "
         "the SUT", "warning", sc.channel_imbalance),
    Rule("clock_offset", "PD-TS: client-server clock difference at most 400 ms", "error", sc.clock_offset),
    Rule("min_duration", "IP-RULES / SUBCHK: performance run at least 600 s", "error", sc.min_duration,
         loadgen=True),
)
RULES_BY_ID = {rule.id: rule for rule in RULES}
LIVE_RULES: tuple[Rule, ...] = tuple(rule for rule in RULES if rule.live)


def run_rule(rule: Rule, view: RunView, options: CheckOptions) -> Finding:
    """One rule on one run: inapplicable rules and unreadable inputs become findings, never exceptions."""
    finding = _judge(rule, view, options, missing_fails=True)
    assert finding is not None
    return finding


def _judge(rule: Rule, view: RunView, options: CheckOptions, *, missing_fails: bool) -> Finding | None:
    v = Verdicts(rule, quick_passes=not missing_fails)
    reason = rule.not_applicable_because(view)
    if reason is not None:
        return v.not_applicable(reason)
    try:
        return rule.check(view, options, v)
    except Missing as exc:
        return v.failed(str(exc)) if missing_fails else None
    except Exception as exc:  # a check that trips over malformed input fails, as in PD-CHK
        return v.failed(f"unhandled {type(exc).__name__} while checking: {exc}")


def evaluate(view: RunView, options: CheckOptions | None = None, rules: Iterable[Rule] = RULES) -> list[Finding]:
    """Every rule over one run view, in table order."""
    options = options or CheckOptions()
    return [run_rule(rule, view, options) for rule in rules]


def evaluate_live(view: RunView, options: CheckOptions, skip: Collection[str] = ()) -> list[Finding]:
    """The live rules over the run so far (windows that have begun reach to the latest sample). A
    rule with nothing to judge yet (no window, no samples) says nothing rather than failing.
    ``skip``: rules not to evaluate (live analytics reports a rule once: a failed one is done)."""
    live = options if options.live else replace(options, live=True)
    return [f for rule in LIVE_RULES
            if rule.id not in skip and (f := _judge(rule, view, live, missing_fails=False)) is not None]
