"""``python -m mlpower.sut_agent``: the same command as ``mlpower agent``."""

import typer
from mlpower.sut_agent.cli import agent

typer.run(agent)
