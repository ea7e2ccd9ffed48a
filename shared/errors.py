"""The root of every mlpower error; each service derives its own small hierarchy from it."""


class MlpowerError(Exception):
    """An expected failure with a message fit for a user; entry points print it and exit non-zero."""


class SettingsError(MlpowerError):
    """A setting (environment variable) is missing or invalid; the message names it."""


class BusError(MlpowerError):
    """The message bus could not be reached or refused an operation."""


class InputError(MlpowerError):
    """A run's input file is missing, truncated or corrupt; the message names the file (and line)."""


class NotARunError(InputError):
    """A folder that holds no run (no ``power/``, ``ranging/`` or ``run_1/``)."""
