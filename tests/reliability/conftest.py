"""The reliability suite's summary is printed by ``tests/summaries.py`` (loaded by the root conftest)."""
