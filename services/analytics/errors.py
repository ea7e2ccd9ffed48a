"""The analytics error hierarchy; the CLI and the service edges translate it once."""

from __future__ import annotations

from mlpower.errors import MlpowerError


class AnalyticsError(MlpowerError):
    """Base of every expected analytics failure."""


class InputError(AnalyticsError):
    """An input file is missing, truncated or corrupt; the message names the file (and line)."""


class NotARunError(AnalyticsError):
    """A folder that holds no run (no ``power/``, ``ranging/`` or ``run_1/``)."""


class WindowError(AnalyticsError):
    """LoadGen's power window is missing or empty, so no average can be computed honestly."""
