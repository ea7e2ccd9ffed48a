"""The names of the public result files (kept apart from the loader so that checking whether
anything changed needs neither polars nor the figure code)."""

import hashlib
from pathlib import Path

DATACENTER = "data_cleaned_inference_datacenter.csv"
EDGE = "data_cleaned_inference_edge.csv"
TINY = "data_cleaned_tiny.csv"
TRAINING = "data_cleaned_training.csv"
PERFORMANCE = "data_performance.csv"
ALL_FILES = (DATACENTER, EDGE, TINY, TRAINING, PERFORMANCE)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
