"""Errors of the lab orchestration (demo, lab up/run/down)."""

from mlpower.errors import MlpowerError


class LabError(MlpowerError):
    """The lab could not be started, driven or stopped; the message says which part and why."""
