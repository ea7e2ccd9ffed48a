"""``mlpower demo`` and ``mlpower lab up|run|down``."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


def demo(
    out: Path = typer.Option(Path("results/demo"), "--out", help="where the run tree, report and figures go"),
    scenario: str = typer.Option("offline", help="offline, server or singlestream"),
    duration_s: float = typer.Option(5.0, "--duration-s", help="seconds of each LoadGen run (600 is compliant)"),
    interval_s: float = typer.Option(1.0, "--interval-s", help="sample interval of the analyzer"),
    sleep_s: float = typer.Option(1.0, "--sleep-s", help="director pause in each start/stop (10 is compliant)"),
) -> None:
    """Run a complete measurement in one process and print its summary."""
    from mlpower.cli import setup_logging
    from mlpower.lab.demo import DemoOptions, run_demo
    from rich.console import Console

    setup_logging("WARNING")
    run_demo(DemoOptions(out=out, scenario=scenario, duration_s=duration_s, sample_interval_s=interval_s,
                         analyzer_sleep_s=sleep_s), Console())


def runs(
    folders: list[Path] = typer.Argument(None, help="results folders; default: MLPOWER_RESULTS_DIR and the "
                                                     "nearest lab's results", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="one JSON list instead of the table"),
) -> None:
    """List past runs: id, SUT, start (UTC), verdict, average power, efficiency, path."""
    import json

    from mlpower.lab.runs import as_json as runs_json
    from mlpower.lab.runs import past_runs, print_runs
    from rich.console import Console

    roots = list(folders or _default_results())
    found = past_runs(roots)
    if as_json:
        typer.echo(json.dumps(runs_json(found), indent=2))
    else:
        print_runs(Console(), found, roots)


def _default_results() -> list[Path]:
    from mlpower.lab.errors import LabError
    from mlpower.lab.settings import LabSettings
    from mlpower.lab.where import find_lab
    from mlpower.settings import load_settings

    settings = load_settings(LabSettings)
    roots = [settings.results_dir]
    try:
        roots.append(find_lab(settings.workdir) / "volumes" / "results")
    except LabError:
        pass  # no lab here: the results folder alone
    return roots


@app.command("up")
def up(
    workdir: Path = typer.Option(None, "--dir", help="lab folder (logs, volumes, state); default MLPOWER_LAB_DIR"),
    env_file: Path = typer.Option(None, "--env-file", help="compose variables; default deploy/.env.example"),
) -> None:
    """Start the compose lab's services as local processes on RabbitMQ."""
    from mlpower.lab.local_lab import lab_up

    for line in lab_up(workdir=workdir, env_file=env_file):
        typer.echo(line)


@app.command("run")
def run(
    workload: str = typer.Option("builtin:offline", help="what the SUT agent runs"),
    scenario: str = typer.Option("Offline"),
    timeout_s: float = typer.Option(None, "--timeout-s", help="default MLPOWER_RUN_TIMEOUT_S"),
    workdir: Path = typer.Option(None, "--dir", help="lab folder; default: the nearest .lab/ (MLPOWER_LAB_DIR)"),
) -> None:
    """Start a measurement on a running lab, follow it live, print its summary.

    Exits 1 when the verdict is FAIL, 2 when the run failed or a service stopped answering."""
    from mlpower.cli import setup_logging
    from mlpower.lab.report import verdict_text
    from mlpower.lab.run_client import lab_run
    from rich.console import Console

    setup_logging("WARNING")  # the live line, not the bus client's connection chatter
    console = Console()
    outcome = lab_run(console, workload=workload, scenario=scenario, timeout_s=timeout_s, workdir=workdir)
    if not outcome.passed:
        console.print(f"[bold red]verdict {verdict_text(outcome.analyzed)}[/]: exit status 1")
        raise typer.Exit(1)


@app.command("down")
def down(workdir: Path = typer.Option(None, "--dir", help="lab folder; default MLPOWER_LAB_DIR")) -> None:
    """Stop the processes `mlpower lab up` started."""
    from mlpower.lab.local_lab import lab_down

    for line in lab_down(workdir=workdir):
        typer.echo(line)
