"""The analytics error hierarchy; the CLI and the service edges translate it once. A damaged or
missing input file is ``mlpower.errors.InputError`` (the run view reads the files)."""

from __future__ import annotations

from mlpower.errors import MlpowerError


class AnalyticsError(MlpowerError):
    """Base of every expected analytics failure."""


class WindowError(AnalyticsError):
    """LoadGen's power window is missing or empty, so no average can be computed honestly."""
