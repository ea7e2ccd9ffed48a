"""``python -m mlpower.analytics``: the analytics service."""

from mlpower.analytics.cli import analytics

if __name__ == "__main__":
    analytics()
