"""``python -m mlpower.director``: the same as ``mlpower director``."""

import typer
from mlpower.director.cli import director

if __name__ == "__main__":
    typer.run(director)
