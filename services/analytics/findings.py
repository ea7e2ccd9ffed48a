"""What a rule's check function works with: the options of a check, the finding makers bound to
one rule (the rule's severity is stamped on, a check only says pass, fail or not applicable),
and the verdict over findings."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mlpower.runview import RunView, SampleSource, Window
from mlpower.schema import Finding

MIN_DURATION_S = 600.0  # SUBCHK TEST_DURATION_MS = 600000


@dataclass(frozen=True)
class CheckOptions:
    sources_checksums: tuple[dict[str, str], ...] | None = None  # entries of sources_checksums.json
    min_duration_s: float = MIN_DURATION_S
    live: bool = False  # the run is still going: windows that have begun reach to the latest sample


class RuleLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def severity(self) -> Literal["error", "warning"]: ...


class Missing(Exception):  # noqa: N818 - a control-flow signal inside a check, never raised out of run_rule
    """A check needs a part of the run the view lacks or cannot read: the finding names it."""


class Verdicts:
    """Finding makers bound to one rule, so a check function only says what it found.

    ``quick_passes``: live analytics keeps only failures, so a pass is built without validating
    its evidence (the costliest part of a live evaluation); failures are always validated.
    """

    def __init__(self, rule: RuleLike, *, quick_passes: bool = False) -> None:
        self.rule = rule
        self.quick_passes = quick_passes

    def _make(self, status: str, message: str, severity: str, evidence: dict[str, Any]) -> Finding:
        return Finding(rule=self.rule.id, severity=severity, status=status,
                       message=message, evidence=evidence)

    def passed(self, message: str, **evidence: Any) -> Finding:
        if self.quick_passes:
            return _quick_pass(self.rule.id, self.rule.severity)
        return self._make("pass", message, self.rule.severity, evidence)

    def failed(self, message: str, **evidence: Any) -> Finding:
        return self._make("fail", message, self.rule.severity, evidence)

    def not_applicable(self, reason: str, **evidence: Any) -> Finding:
        return self._make("not_applicable", reason, "info", evidence)


@functools.cache
def _quick_pass(rule: str, severity: str) -> Finding:
    """A rule's pass as live analytics sees it: the fact only (its message and evidence are dropped)."""
    return Finding(rule=rule, severity=severity, status="pass", message="passed (live)", evidence={})


def verdict_of(findings: Iterable[Finding]) -> Literal["pass", "fail"]:
    """A run fails on any failed error; warnings and not-applicable checks do not fail it."""
    return "fail" if any(f.status == "fail" and f.severity == "error" for f in findings) else "pass"


# --------------------------------------------------------------------------- what checks read from the view


def required_json(view: RunView, side: str) -> dict[str, Any]:
    """``power/<side>.json`` of the view's tree, or Missing naming why it is not there."""
    data = view.client if side == "client" else view.server
    if data is None:
        relative = f"power/{side}.json"
        raise Missing(view.tree.error_for(relative) if view.tree is not None else f"{relative}: no output tree")
    return data


def loadgen_window(view: RunView, mode: str, options: CheckOptions) -> Window:
    """LoadGen's power window of a mode, or Missing naming why the view has none."""
    window = view.loadgen_window(mode, live=options.live)
    if window is None:
        raise Missing(view.why_no_loadgen_window(mode))
    return window


def judged_window(view: RunView, options: CheckOptions, mode: str = "testing") -> Window:
    """The window sample-quality rules judge: LoadGen's, else the director's phase (stated in the
    evidence as the window's source), or Missing when the view has neither."""
    window = view.loadgen_window(mode, live=options.live) or view.phase_window(mode, live=options.live)
    if window is None:
        raise Missing(view.why_no_loadgen_window(mode) + "; no phase window either")
    return window


def required_samples(view: RunView, mode: str = "testing") -> SampleSource:
    source = view.samples(mode)
    if source is None:
        raise Missing(view.why_no_samples(mode))
    return source


def window_evidence(window: Window) -> dict[str, Any]:
    return {"window_source": window.source, "power_begin_utc_s": window.begin_utc_s,
            "power_end_utc_s": window.end_utc_s}
