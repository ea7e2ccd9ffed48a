"""Write and compare the committed JSON Schemas (``shared/schemas/*.json``) with the models."""

from __future__ import annotations

import json
from pathlib import Path

from mlpower.schema import json_schemas

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


def render() -> dict[str, str]:
    return {
        f"{name}.json": json.dumps(schema, indent=2, sort_keys=True) + "\n" for name, schema in json_schemas().items()
    }


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in render().items():
        path = directory / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for stale in set(directory.glob("*.json")) - set(written):
        stale.unlink()
    return written


def drift(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that differ from the models (missing, changed or stale)."""
    expected = render()
    present = {path.name: path.read_text(encoding="utf-8") for path in directory.glob("*.json")}
    changed = [name for name, text in expected.items() if present.get(name) != text]
    stale = [name for name in present if name not in expected]
    return sorted(changed + stale)
