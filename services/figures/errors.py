"""The figures service's errors; the CLI and the HTTP app translate them once, at the edge."""

from mlpower.errors import MlpowerError


class FiguresError(MlpowerError):
    """Something the figures service cannot do, with a message fit for a user."""


class DataError(FiguresError):
    """A results table is missing or malformed; the message names the file (and line)."""


class UnknownFigure(FiguresError):
    """A figure name that is not in the catalogue."""


class DownloadError(FiguresError):
    """Fetching the public CSVs failed or a checksum did not match."""


class NoRunDocuments(FiguresError):
    """A run named by a request or event has no documents under the results folder."""
