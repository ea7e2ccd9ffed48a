"""``python -m mlpower.analyzer_sim [sim options]`` runs the simulator; ``... ptd <PTDaemon flags>`` the emulator."""

import sys

import typer
from mlpower.analyzer_sim.cli import ptd, sim

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command(name="sim")(sim)
app.command(name="ptd", context_settings=ptd.context_settings)(ptd)

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("sim", "ptd", "--help"):
        sys.argv.insert(1, "sim")
    app()
