"""The director's in-memory analyzer double (integration tests use the simulator): the shared
``FakeAnalyzer`` with the director's reading type and errors."""

from __future__ import annotations

from mlpower.director.errors import AnalyzerLost, RangeError
from mlpower.director.sources import Reading
from mlpower.testing import FakeAnalyzer


class FakeSource(FakeAnalyzer):
    reading_type = Reading
    lost_error = AnalyzerLost
    range_error = RangeError
