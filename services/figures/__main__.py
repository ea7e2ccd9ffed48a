"""``python -m mlpower.figures``: the figures command group."""

from mlpower.figures.cli import app

if __name__ == "__main__":
    app()
