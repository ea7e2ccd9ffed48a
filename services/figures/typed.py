"""The values upstream typed into its scripts, read from ``typed_values.json`` (never from code)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

TYPED_FILE = "typed_values.json"


def typed_bytes() -> bytes:
    return resources.files("mlpower.figures").joinpath(TYPED_FILE).read_bytes()


@lru_cache(maxsize=1)
def typed_values() -> dict[str, Any]:
    return json.loads(typed_bytes())


def typed_ref(path: str) -> str:
    """The provenance of a typed value, in the same ``file:where`` form as a table row."""
    return f"{TYPED_FILE}:{path}"
