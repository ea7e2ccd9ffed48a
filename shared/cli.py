"""``mlpower``: one command with a sub-command per service and per user task.

The sub-commands are declared in a table of ``module:attribute`` names and imported when the
command line is built; each service's ``cli`` module keeps heavy imports inside its commands so
that ``mlpower --help`` stays fast. ``MlpowerError`` becomes a one-line message and exit status 2
here, and only here.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

import typer
from mlpower.errors import MlpowerError

# (name, "module:attribute", help). An attribute that is a Typer app becomes a command group.
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("sim", "mlpower.analyzer_sim.cli:sim", "Run the WT310E simulator: SCPI on a TCP port (and a pty)."),
    ("ptd", "mlpower.analyzer_sim.cli:ptd", "Run the PTDaemon emulator: PTDaemon's own flags, listed by "
            "'mlpower ptd -h'."),
    ("director", "mlpower.director.cli:director", "Run the director: analyzer control and the power-dev server."),
    ("agent", "mlpower.sut_agent.cli:agent", "Run the SUT agent: workloads in ranging and testing mode."),
    ("analytics", "mlpower.analytics.cli:analytics", "Run the analytics service (energy, efficiency, compliance)."),
    ("check", "mlpower.analytics.cli:check", "Check a run folder against the MLPerf power compliance rules."),
    ("figures", "mlpower.figures.cli:app", "Build, audit and serve the MLPerf Power paper figures."),
    ("demo", "mlpower.lab.cli:demo", "Run a complete measurement in one process and print its summary."),
    ("lab", "mlpower.lab.cli:app", "Start, use and stop a lab of separate processes on RabbitMQ."),
    ("runs", "mlpower.lab.cli:runs", "List past runs: id, SUT, start, verdict, power, efficiency, path."),
    ("deadletters", "mlpower.deadletters_cli:deadletters", "Show or drain the lab's dead letters, with their reasons."),
    ("schemas", "mlpower.schema_cli:app", "Write or check the committed JSON Schemas of the messages."),
)

app = typer.Typer(
    name="mlpower",
    help="mlpower: measure the energy efficiency of ML systems the MLPerf Power way.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _load(target: str) -> Any:
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def _register(root: typer.Typer) -> None:
    for name, target, help_text in SUBCOMMANDS:
        try:
            command = _load(target)
        except (ImportError, AttributeError) as exc:
            _register_missing(root, name, help_text, f"{target}: {exc}")
            continue
        if isinstance(command, typer.Typer):
            root.add_typer(command, name=name, help=help_text)
        else:
            # A command that must see raw arguments (``mlpower ptd`` takes PTDaemon's own flags) says so
            # with a ``context_settings`` attribute.
            root.command(name=name, help=help_text, context_settings=getattr(command, "context_settings", None))(
                command
            )


def _register_missing(root: typer.Typer, name: str, help_text: str, why: str) -> None:
    def unavailable() -> None:
        raise MlpowerError(f"'mlpower {name}' is not available in this installation ({why})")

    root.command(name=name, help=f"{help_text} [unavailable]")(unavailable)


def run(entry: Callable[[], Any]) -> None:
    """Call an entry point, turning expected errors into a one-line message and exit status 2."""
    try:
        entry()
    except MlpowerError as exc:
        typer.echo(f"mlpower: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.Formatter.converter = __import__("time").gmtime  # logs in UTC, like every timestamp here


def main() -> None:
    _register(app)
    run(lambda: app(standalone_mode=True))


if __name__ == "__main__":
    main()
