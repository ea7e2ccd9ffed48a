"""The director's error hierarchy; every error is an ``MlpowerError`` with a message fit for a user.

Analyzer sources raise these; the session translates them once (a failed run with the reason).
"""

from __future__ import annotations

from mlpower.errors import MlpowerError


class DirectorError(MlpowerError):
    """Root of the director's errors."""


class ResourceError(DirectorError):
    """An analyzer resource string (or a source option) that names nothing we can open."""


class RangeError(DirectorError):
    """A voltage or current range that the analyzer does not have, or ranges that cannot be derived."""


class AnalyzerError(DirectorError):
    """The analyzer refused or reported an error (its error queue, an ``Error`` reply, a bad identity)."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ReplyParseError(AnalyzerError):
    """A reply that does not parse; ``raw`` keeps the reply exactly as received, for evidence."""

    def __init__(self, message: str, raw: str | bytes, *, t_utc_s: float | None = None) -> None:
        super().__init__(f"{message}: {raw!r}")
        self.raw = raw
        self.t_utc_s = t_utc_s


class AnalyzerLost(AnalyzerError):
    """The analyzer is gone: connection closed, I/O error, process exited, or no reply in time."""


class AnalyzerTimeout(AnalyzerLost):
    """No reply within the timeout. A query the analyzer did not understand also ends here (no reply)."""


class SourceUnavailable(AnalyzerError):
    """A source that this machine does not have (no GPU, no RAPL, no permission); ``reason`` says why."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind} unavailable: {reason}")
        self.kind = kind
        self.reason = reason
