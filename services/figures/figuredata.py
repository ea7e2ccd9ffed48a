"""What a figure computation returns: the plotted data, its key values, and each value's rows.

``FigureData`` is plain data (JSON-able, picklable): the drawing side never sees a table, and
the audit compares two of them without knowing which figure they belong to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Mode = str  # "paper" or "corrected"
MODES = ("paper", "corrected")


@dataclass
class FigureData:
    name: str
    mode: Mode
    series: dict[str, Any]
    key_values: dict[str, Any]
    # Every plotted value with the rows (``file:line``, or ``typed_values.json:<path>``) it comes from,
    # and the ids of the declared causes (``corrections.CAUSES``) whose rule touched it in this mode.
    points: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Values a rule of this mode left out of the figure, each with its rows and cause.
    excluded: list[dict[str, Any]] = field(default_factory=list)

    def point(
        self, key: str, value: float | None, rows: tuple[str, ...] | list[str], causes: Iterable[str] = ()
    ) -> None:
        self.points[key] = {"value": value, "rows": list(rows), "causes": sorted(set(causes))}

    def exclude(
        self, key: str, value: float | None, rows: tuple[str, ...] | list[str], cause: str, why: str
    ) -> None:
        self.excluded.append({"key": key, "value": value, "rows": list(rows), "cause": cause, "why": why})

    def to_json(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "mode": self.mode,
            "key_values": self.key_values,
            "series": self.series,
            "plotted": self.points,
            "skipped_rows": self.skipped,
            "excluded": self.excluded,
            "notes": self.notes,
        }


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1, 2]}}`` -> ``{"a.b[0]": 1, "a.b[1]": 2}``, for comparing key values."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, (list, tuple)):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


RELATIVE_TOLERANCE = 1e-12  # below this two modes' numbers differ only by rounding (e.g. x / 292 / (y / 292))


def same_value(a: Any, b: Any) -> bool:
    """Equal, or both numbers equal up to rounding noise; NaN equals NaN."""
    if (
        isinstance(a, (int, float))
        and isinstance(b, (int, float))
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0)
    return bool(a == b)
