"""``mlpower schemas write|check``: keep the committed JSON Schemas in step with the models."""

from __future__ import annotations

import typer
from mlpower.errors import MlpowerError

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("write")
def write_schemas() -> None:
    """Regenerate shared/schemas/*.json from the models."""
    from mlpower import schema_files

    for path in schema_files.write():
        typer.echo(str(path))


@app.command("check")
def check_schemas() -> None:
    """Fail when the committed schemas differ from the models."""
    from mlpower import schema_files

    drifted = schema_files.drift()
    if drifted:
        raise MlpowerError(f"schemas drifted from the models: {', '.join(drifted)} (run 'mlpower schemas write')")
    typer.echo("schemas match the models")
