"""``mlpower analytics`` (the service) and ``mlpower check`` (the compliance checker)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def analytics() -> None:
    """Run the analytics service until SIGTERM: bus consumers, the run table and the HTTP API."""
    from mlpower.cli import run

    run(_serve)


def _serve() -> None:
    import signal
    import threading

    from mlpower.bus import connect_service
    from mlpower.cli import setup_logging
    from mlpower.http_serve import HttpServer
    from mlpower.settings import load_settings

    from .app import create_app
    from .service import AnalyticsService
    from .settings import AnalyticsSettings

    settings = load_settings(AnalyticsSettings)
    setup_logging(settings.log_level)
    bus = connect_service(settings, client_name="mlpower-analytics")
    service = AnalyticsService(settings, bus)
    # the HTTP server runs in a thread (see mlpower.http_serve): this thread owns the signals and the order of stopping
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = None
    try:
        server = HttpServer(create_app(service), settings.http_host, settings.http_port, name="analytics",
                            log_level=settings.log_level).start()
        service.start()
        typer.echo(f"analytics HTTP on {server.url}", err=True)
        server.wait(stop)
    finally:
        if server is not None:
            server.stop()
        service.stop()
        bus.close()


def check(
    run_dir: Annotated[Path, typer.Argument(help="the run folder (power/, ranging/, run_1/) or its parent")],
    json_file: Annotated[Path | None, typer.Option("--json", help="also write the report as JSON here")] = None,
    sources_checksums: Annotated[Path | None, typer.Option(
        "--sources-checksums", help="power-dev's sources_checksums.json, for checks 1 and 2")] = None,
    min_duration_s: Annotated[float, typer.Option(help="minimum testing window, seconds")] = 600.0,
) -> None:
    """Check a run folder against the MLPerf power compliance rules; exit 1 when a rule fails."""
    from mlpower.cli import run

    status: list[str] = []

    def body() -> None:
        import json

        from rich.console import Console

        from .check import check_run_dir, load_sources_checksums, render_table, report_json
        from .rules import CheckOptions

        options = CheckOptions(
            sources_checksums=load_sources_checksums(sources_checksums) if sources_checksums else None,
            min_duration_s=min_duration_s,
        )
        report = check_run_dir(run_dir, options)
        render_table(report, Console())
        if json_file is not None:
            json_file.write_text(json.dumps(report_json(report), indent=2), encoding="utf-8")
        status.append(report.verdict)

    run(body)
    if status and status[0] == "fail":
        raise typer.Exit(code=1)  # like power-dev's check.py: 1 when not every check passed
