"""mlpower: measure the energy efficiency of ML systems the MLPerf Power way."""

__version__ = "0.1.0"
